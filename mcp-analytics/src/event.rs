//! One event per handler call: what the macros record, and the guard that records it.
//!
//! The hot path is [`Call::start`] plus [`Call::finish`]: two monotonic clock reads, a clone of
//! the scoped session (if any), and one push onto the lock-free queue. Everything else (wall-clock
//! time, formatting, JSON, compression) happens later, on the worker thread.
//!
//! The clock is quanta's: the CPU's invariant timestamp counter where there is one (about 10 ns a
//! read here, against 25 ns for `std::time::Instant` through the vDSO), the OS's monotonic clock
//! elsewhere. It is read raw, in ticks: a start time is scaled to nanoseconds by the worker,
//! when it needs the wall-clock time, not on the hot path.

use std::fmt::{self, Write as _};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use quanta::Clock;

use crate::outcome::Observed;
use crate::queue;
use crate::request::{ClientInfo, RequestFacts};
use crate::session::{self, SessionId};

/// Longest error text kept per event, in bytes; longer texts are cut at a character boundary and
/// end in `…`.
pub const MAX_ERROR_LEN: usize = 1024;
/// Longest name or session id kept per event, in bytes, cut the same way.
pub const MAX_NAME_LEN: usize = 512;

/// Which kind of MCP handler was called.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tool,
    Resource,
    Prompt,
    /// Not a handler: the log lines of the `tracing` layer.
    Log,
}

impl Kind {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Kind::Tool => "tool",
            Kind::Resource => "resource",
            Kind::Prompt => "prompt",
            Kind::Log => "log",
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
/// it per function, so an event carries a single pointer instead of four strings.
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
pub(crate) struct Event {
    pub(crate) callsite: &'static Callsite,
    /// `None`: the process session, filled in by the worker.
    pub(crate) session: Option<SessionId>,
    pub(crate) details: Option<Box<Details>>,
    /// [`clock`] ticks.
    pub(crate) started: u64,
    pub(crate) duration_ns: u64,
    pub(crate) outcome: Outcome,
}

/// What only some events have: a name computed at call time, an error text, a known client, or
/// what a log line says.
#[derive(Debug, Default)]
pub(crate) struct Details {
    /// `name = <expr>` or the request's name, replacing `callsite.name`. Shared, so that the
    /// log lines of the call can name it without a copy.
    pub(crate) name: Option<Arc<str>>,
    pub(crate) error: Option<Box<str>>,
    pub(crate) client: Option<Arc<dyn ClientInfo>>,
    #[cfg(feature = "tracing")]
    pub(crate) log: Option<Box<crate::tracing::LogLine>>,
}

impl Event {
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

    /// What the `tracing` layer's log line says, when the event is one.
    #[cfg(feature = "tracing")]
    pub(crate) fn log(&self) -> Option<&crate::tracing::LogLine> {
        self.details.as_ref()?.log.as_deref()
    }

    #[cfg(feature = "tracing")]
    pub(crate) fn is_log(&self) -> bool {
        self.log().is_some()
    }

    pub(crate) fn client(&self) -> Option<&dyn ClientInfo> {
        self.details.as_ref()?.client.as_deref()
    }

    pub(crate) fn duration(&self) -> Duration {
        Duration::from_nanos(self.duration_ns)
    }
}

/// Records one call: made on entry, it reports `panic` or `cancelled` from its `Drop` unless
/// [`Call::finish`] saw the call return.
///
/// Panics are told from cancellation without `catch_unwind`: a guard dropped while the thread
/// unwinds sees `std::thread::panicking()`, a pending future that is dropped does not.
#[doc(hidden)]
#[must_use]
pub struct Call {
    callsite: &'static Callsite,
    session: Option<SessionId>,
    details: Option<Box<Details>>,
    /// [`clock`] ticks.
    started: u64,
    finished: bool,
}

impl Call {
    #[inline]
    pub fn start(callsite: &'static Callsite) -> Self {
        Self {
            callsite,
            session: session::current(),
            details: None,
            started: clock().raw(),
            finished: false,
        }
    }

    /// What a handler argument says of its request (see `request`): its session and client,
    /// and, when the attribute names nothing (`name_by_request`), the resource or prompt asked
    /// for. Applied before `named` and `in_session`, which override it.
    pub fn with_request(mut self, facts: Option<&dyn RequestFacts>, name_by_request: bool) -> Self {
        let Some(facts) = facts else {
            return self;
        };
        if let Some(session) = facts.session() {
            self.session = Some(session);
        }
        if let Some(client) = facts.client() {
            self.details().client = Some(client);
        }
        if name_by_request && let Some(name) = facts.handler_name() {
            self.details().name = Some(bounded(&name, MAX_NAME_LEN).into());
        }
        self
    }

    fn details(&mut self) -> &mut Details {
        self.details.get_or_insert_default()
    }

    #[cfg(feature = "tracing")]
    pub(crate) fn callsite(&self) -> &'static Callsite {
        self.callsite
    }

    /// The name given at call time, if any (else the callsite's).
    #[cfg(feature = "tracing")]
    pub(crate) fn name(&self) -> Option<&Arc<str>> {
        self.details.as_ref()?.name.as_ref()
    }

    /// The session given at call time, if any (else the scoped or the process's).
    #[cfg(feature = "tracing")]
    pub(crate) fn session(&self) -> Option<&SessionId> {
        self.session.as_ref()
    }

    /// `name = <expr>`: the call's own name, evaluated on entry.
    pub fn named(mut self, name: &dyn fmt::Display) -> Self {
        self.details().name = Some(bounded(name, MAX_NAME_LEN).into());
        self
    }

    /// `session = <expr>`: an empty value means "not known here" and keeps the scoped session.
    pub fn in_session(mut self, session: &dyn fmt::Display) -> Self {
        let session = bounded(session, MAX_NAME_LEN);
        if !session.is_empty() {
            self.session = Some(SessionId::from(&*session));
        }
        self
    }

    #[inline]
    pub fn finish(mut self, observed: Observed<'_>) {
        let duration_ns = self.elapsed_ns();
        let (outcome, error) = match observed {
            Observed::Success => (Outcome::Ok, None),
            Observed::Failure(failure) => (
                Outcome::Error,
                Some(bounded(&ErrorText(failure), MAX_ERROR_LEN)),
            ),
            Observed::Err(type_name) => (Outcome::Error, Some(Box::from(type_name))),
        };
        self.record(outcome, error, duration_ns);
    }

    #[inline]
    fn elapsed_ns(&self) -> u64 {
        let clock = clock();
        clock.delta_as_nanos(self.started, clock.raw())
    }

    fn record(&mut self, outcome: Outcome, error: Option<Box<str>>, duration_ns: u64) {
        self.finished = true;
        if error.is_some() {
            self.details().error = error;
        }
        queue::push(Event {
            callsite: self.callsite,
            session: self.session.take(),
            details: self.details.take(),
            started: self.started,
            duration_ns,
            outcome,
        });
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.finished {
            let duration_ns = self.elapsed_ns();
            let outcome = if std::thread::panicking() {
                Outcome::Panic
            } else {
                Outcome::Cancelled
            };
            self.record(outcome, None, duration_ns);
        }
    }
}

/// The clock every call reads. Made on first use, which calibrates the timestamp counter against
/// the OS's clock (a millisecond or so): `init()` makes it, so that no handler call pays for it.
pub(crate) fn clock() -> &'static Clock {
    static CLOCK: OnceLock<Clock> = OnceLock::new();
    CLOCK.get_or_init(Clock::new)
}

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("callsite", &self.callsite)
            .field("session", &self.session)
            .field("details", &self.details)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for dyn ClientInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.name(), self.version())
    }
}

/// Displays a failed outcome through [`crate::CallOutcome::fmt_error`].
struct ErrorText<'a>(&'a dyn crate::CallOutcome);

impl fmt::Display for ErrorText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_error(f)
    }
}

/// Formats `value` into at most `limit` bytes. Formatting stops as soon as the limit is reached,
/// so a huge `Display` costs no more than a short one.
pub(crate) fn bounded(value: &dyn fmt::Display, limit: usize) -> Box<str> {
    let mut out = Bounded {
        text: String::new(),
        limit,
    };
    // An error here is either our own "limit reached" or a misbehaving `Display`: keep what
    // was written either way.
    if write!(out, "{value}").is_err() && out.text.len() > limit {
        // Over the limit: cut so that the text and its ellipsis fit within it, whichever
        // piece of the `Display` crossed it.
        let mut cut = limit.saturating_sub(ELLIPSIS.len_utf8());
        while !out.text.is_char_boundary(cut) {
            cut -= 1;
        }
        out.text.truncate(cut);
        out.text.push(ELLIPSIS);
    }
    out.text.into_boxed_str()
}

const ELLIPSIS: char = '…';

/// Collects formatted text up to one byte past its limit (enough to know it was crossed), then
/// stops the formatting.
struct Bounded {
    text: String,
    limit: usize,
}

impl fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.limit + 1 - self.text.len();
        if s.len() < room {
            self.text.push_str(s);
            return Ok(());
        }
        let mut end = room;
        while !s.is_char_boundary(end) {
            end += 1;
        }
        self.text.push_str(&s[..end]);
        Err(fmt::Error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_keeps_short_text_whole() {
        assert_eq!(&*bounded(&"division by zero", 64), "division by zero");
    }

    #[test]
    fn bounded_cuts_at_a_char_boundary_within_the_limit() {
        let long = "é".repeat(100); // 200 bytes
        let cut = bounded(&long, 11);
        assert!(cut.len() <= 11, "{} bytes", cut.len());
        assert!(cut.ends_with('…'));
        assert_eq!(cut.trim_end_matches('…'), "éééé");
    }

    #[test]
    fn bounded_cuts_text_written_in_pieces_within_the_limit() {
        struct Pieces;
        impl fmt::Display for Pieces {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&"a".repeat(10))?;
                f.write_str("bb")?;
                f.write_str("c")
            }
        }
        // Exactly at the limit: whole, no ellipsis.
        assert_eq!(&*bounded(&Pieces, 13), "aaaaaaaaaabbc");
        // One byte over, after earlier pieces filled it: cut back to fit the ellipsis.
        let cut = bounded(&Pieces, 12);
        assert_eq!(&*cut, "aaaaaaaaa…");
        assert!(cut.len() <= 12, "{}", cut.len());
        for limit in 3..=14 {
            assert!(bounded(&Pieces, limit).len() <= limit, "limit {limit}");
        }
    }

    #[test]
    fn bounded_stops_formatting_a_huge_display_early() {
        struct Endless;
        impl fmt::Display for Endless {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                loop {
                    f.write_str("again ")?;
                }
            }
        }
        let text = bounded(&Endless, MAX_ERROR_LEN);
        assert!(text.len() <= MAX_ERROR_LEN);
        assert!(text.starts_with("again again"));
    }

    #[test]
    fn queued_events_stay_small() {
        // The queue stores events inline, each beside an 8-byte stamp: a slot of one 64-byte
        // cache line keeps a burst of calls from touching more memory than it must.
        assert!(
            std::mem::size_of::<Event>() <= 56,
            "{}",
            std::mem::size_of::<Event>()
        );
    }
}
