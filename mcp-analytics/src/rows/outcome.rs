//! Telling a failed call from a successful one, by the type the handler returns.
//!
//! "Failed" is not only `Result::Err`: rmcp's `CallToolResult` with `is_error: Some(true)` is a
//! failure too. So the macros ask the return type through [`CallOutcome`], chosen at compile time
//! by autoref specialization: a type implementing [`CallOutcome`] decides for itself, any other
//! `Result` fails on `Err`, and every other type is a success.

use std::fmt;

/// A handler's return type that can report a failed call.
///
/// Implemented for `Result<T, E>` where `E: Display` (the error text is `E`'s `Display`).
/// Implement it for your own return types so `#[mcp_tool]` records their failures:
///
/// ```
/// use std::fmt;
/// use mcp_analytics::CallOutcome;
///
/// struct Reply {
///     status: u16,
///     body: String,
/// }
///
/// impl CallOutcome for Reply {
///     fn is_error(&self) -> bool {
///         self.status >= 400
///     }
///
///     fn fmt_error(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
///         write!(f, "{}: {}", self.status, self.body)
///     }
/// }
///
/// #[mcp_analytics::mcp_tool]
/// fn fetch() -> Reply {
///     Reply { status: 404, body: "no such page".into() }
/// }
/// # assert!(fetch().is_error());
/// ```
pub trait CallOutcome {
    /// Whether this value reports a failed call.
    fn is_error(&self) -> bool;

    /// Writes the error text recorded with a failed call; called only when
    /// [`is_error`](CallOutcome::is_error) is true. The default writes nothing.
    fn fmt_error(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let _ = f;
        Ok(())
    }
}

impl<T, E: fmt::Display> CallOutcome for Result<T, E> {
    fn is_error(&self) -> bool {
        self.is_err()
    }

    fn fmt_error(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ok(_) => Ok(()),
            Err(error) => fmt::Display::fmt(error, f),
        }
    }
}

impl<T: CallOutcome + ?Sized> CallOutcome for &T {
    fn is_error(&self) -> bool {
        (**self).is_error()
    }

    fn fmt_error(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt_error(f)
    }
}

impl<T: CallOutcome + ?Sized> CallOutcome for Box<T> {
    fn is_error(&self) -> bool {
        (**self).is_error()
    }

    fn fmt_error(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt_error(f)
    }
}

/// What the macros learned of a call's return value.
#[doc(hidden)]
pub enum Observed<'a> {
    Success,
    Failure(&'a dyn CallOutcome),
    /// An `Err` whose error type has no `Display`: its type name stands for the text.
    Err(&'static str),
}

/// The receiver of the macros' autoref-specialization probes. For outcomes,
/// `(&&&Probe(&value)).__mcp_analytics_observe()` resolves to the first of
/// [`ViaNestedOutcome`], [`ViaCallOutcome`], [`ViaResult`], [`ViaAnything`] that applies; the
/// request probe (`super::request`) uses it the same way.
#[doc(hidden)]
pub struct Probe<'a, T>(pub &'a T);

// Not derived: derives would require `T: Clone`, and a probe is a shared reference whatever `T`.
impl<T> Clone for Probe<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Probe<'_, T> {}

/// `Result<T, E>` where the `Ok` value can itself report a failure (rmcp's
/// `Result<CallToolResult, ErrorData>`): failed if `Err`, or if the `Ok` value says so.
#[doc(hidden)]
pub trait ViaNestedOutcome {
    fn __mcp_analytics_observe(&self) -> Observed<'_>;
}

impl<T: CallOutcome, E: fmt::Display> ViaNestedOutcome for &&Probe<'_, Result<T, E>> {
    fn __mcp_analytics_observe(&self) -> Observed<'_> {
        match self.0 {
            Err(_) => Observed::Failure(self.0),
            Ok(value) if value.is_error() => Observed::Failure(value),
            Ok(_) => Observed::Success,
        }
    }
}

#[doc(hidden)]
pub trait ViaCallOutcome {
    fn __mcp_analytics_observe(&self) -> Observed<'_>;
}

impl<T: CallOutcome> ViaCallOutcome for &Probe<'_, T> {
    fn __mcp_analytics_observe(&self) -> Observed<'_> {
        if self.0.is_error() {
            Observed::Failure(self.0)
        } else {
            Observed::Success
        }
    }
}

#[doc(hidden)]
pub trait ViaResult {
    fn __mcp_analytics_observe(&self) -> Observed<'_>;
}

impl<T, E> ViaResult for Probe<'_, Result<T, E>> {
    fn __mcp_analytics_observe(&self) -> Observed<'_> {
        match self.0 {
            Ok(_) => Observed::Success,
            Err(_) => Observed::Err(std::any::type_name::<E>()),
        }
    }
}

#[doc(hidden)]
pub trait ViaAnything {
    fn __mcp_analytics_observe(self) -> Observed<'static>;
}

impl<T> ViaAnything for Probe<'_, T> {
    fn __mcp_analytics_observe(self) -> Observed<'static> {
        Observed::Success
    }
}

/// Displays a failed outcome through [`CallOutcome::fmt_error`].
pub(crate) struct ErrorText<'a>(pub(crate) &'a dyn CallOutcome);

impl fmt::Display for ErrorText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_error(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observe_kind(observed: Observed<'_>) -> &'static str {
        match observed {
            Observed::Success => "success",
            Observed::Failure(_) => "failure",
            Observed::Err(_) => "err",
        }
    }

    struct Reply(bool);

    impl CallOutcome for Reply {
        fn is_error(&self) -> bool {
            self.0
        }
    }

    /// What the macros' probe makes of `value`.
    macro_rules! observe {
        ($value:expr) => {
            observe_kind((&&&Probe(&$value)).__mcp_analytics_observe())
        };
    }

    // The "needless" borrows are the point: their number selects the probe.
    #[allow(clippy::needless_borrow)]
    #[test]
    fn specialization_picks_the_most_specific_probe() {
        struct NoDisplay;
        let displayed: Result<u8, String> = Err("boom".into());
        let undisplayed: Result<u8, NoDisplay> = Err(NoDisplay);
        let fine: Result<u8, String> = Ok(1);
        let failed_inside: Result<Reply, String> = Ok(Reply(true));
        let fine_inside: Result<Reply, String> = Ok(Reply(false));
        let failed_outside: Result<Reply, String> = Err("refused".into());

        assert_eq!(observe!(displayed), "failure");
        assert_eq!(observe!(undisplayed), "err");
        assert_eq!(observe!(fine), "success");
        assert_eq!(observe!(42_u32), "success");
        assert_eq!(observe!(Reply(true)), "failure");
        assert_eq!(observe!(failed_inside), "failure");
        assert_eq!(observe!(fine_inside), "success");
        assert_eq!(observe!(failed_outside), "failure");
    }
}
