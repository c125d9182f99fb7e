//! The row of one handler call, and the guard that records it.
//!
//! The hot path is [`Call::start`] plus [`Call::finish`]: two raw clock reads, a clone of the
//! scoped session (if any), and one push onto the lock-free queue. Everything else (wall-clock
//! time, formatting, JSON, compression) happens later, on the worker thread.

use std::fmt;
use std::sync::Arc;

use super::Outcome;
use super::outcome::{CallOutcome, Observed};
use super::request::{ClientInfo, RequestFacts};
use super::scope::{self, SessionId};
use super::text::{MAX_ERROR_LEN, MAX_NAME_LEN, bounded};
use crate::{clock, global};

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
    /// Raw [`clock`] ticks.
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
    /// Raw [`clock`] ticks.
    started: u64,
    finished: bool,
}

impl Call {
    #[inline]
    pub fn start(callsite: &'static Callsite) -> Self {
        Self {
            callsite,
            session: scope::current_session(),
            details: None,
            started: clock::ticks(),
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

    pub(crate) fn callsite(&self) -> &'static Callsite {
        self.callsite
    }

    /// The name given at call time, if any (else the callsite's).
    pub(crate) fn name(&self) -> Option<&Arc<str>> {
        self.details.as_ref()?.name.as_ref()
    }

    /// The session given at call time, if any (else the scoped or the process's).
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
        let clock = clock::clock();
        clock.delta_as_nanos(self.started, clock.raw())
    }

    fn record(&mut self, outcome: Outcome, error: Option<Box<str>>, duration_ns: u64) {
        self.finished = true;
        if error.is_some() {
            self.details().error = error;
        }
        global::push_call(CallRow {
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

/// Displays a failed outcome through [`CallOutcome::fmt_error`].
pub(crate) struct ErrorText<'a>(pub(crate) &'a dyn CallOutcome);

impl fmt::Display for ErrorText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_error(f)
    }
}
