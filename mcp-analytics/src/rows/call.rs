//! The row of one handler call: what the attribute macros know at compile time (the
//! [`Callsite`]) and what a call adds when it ends (a [`CallRow`]).

use std::fmt;
use std::sync::Arc;

use super::request::ClientInfo;
use super::session::SessionId;

/// Which kind of MCP handler was called.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tool,
    Resource,
    Prompt,
}

impl Kind {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Kind::Tool => "tool",
            Kind::Resource => "resource",
            Kind::Prompt => "prompt",
        }
    }
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Error,
    Panic,
    Cancelled,
}

impl Outcome {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Panic => "panic",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// What is known of an instrumented function at compile time. The macros emit one `static` of
/// it per function, so a row carries a single pointer instead of four strings.
#[doc(hidden)]
#[derive(Debug)]
pub struct Callsite {
    pub(crate) kind: Kind,
    pub(crate) name: &'static str,
    pub(crate) fn_name: &'static str,
    pub(crate) crate_name: &'static str,
    pub(crate) crate_version: &'static str,
}

impl Callsite {
    /// Called by the macros only; `crate_name` and `crate_version` are the instrumented crate's
    /// `CARGO_PKG_NAME` and `CARGO_PKG_VERSION`.
    pub const fn new(
        kind: Kind,
        name: &'static str,
        fn_name: &'static str,
        crate_name: &'static str,
        crate_version: &'static str,
    ) -> Self {
        Self {
            kind,
            name,
            fn_name,
            crate_name,
            crate_version,
        }
    }
}

/// A finished call, waiting in the queue for the worker. Kept to one cache line with its queue
/// slot: what few calls have lives behind one pointer, in [`Details`].
#[derive(Debug)]
pub(crate) struct CallRow {
    pub(crate) callsite: &'static Callsite,
    /// `None`: the process session, filled in by the worker.
    pub(crate) session: Option<SessionId>,
    pub(crate) details: Option<Box<Details>>,
    /// Raw clock ticks.
    pub(crate) started: u64,
    pub(crate) duration_ns: u64,
    pub(crate) outcome: Outcome,
}

/// What only some calls have: a name computed at call time, an error text, a known client.
#[derive(Debug, Default)]
pub(crate) struct Details {
    /// `name = <expr>` or the request's name, replacing `callsite.name`. Shared, so that the
    /// log lines of the call can name it without a copy.
    pub(crate) name: Option<Arc<str>>,
    pub(crate) error: Option<Box<str>>,
    pub(crate) client: Option<Arc<dyn ClientInfo>>,
}

impl CallRow {
    pub(crate) fn name(&self) -> &str {
        self.details
            .as_ref()
            .and_then(|details| details.name.as_deref())
            .unwrap_or(self.callsite.name)
    }

    pub(crate) fn error(&self) -> &str {
        self.details
            .as_ref()
            .and_then(|details| details.error.as_deref())
            .unwrap_or("")
    }

    pub(crate) fn client(&self) -> Option<&dyn ClientInfo> {
        self.details.as_ref()?.client.as_deref()
    }
}

impl fmt::Debug for dyn ClientInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.name(), self.version())
    }
}
