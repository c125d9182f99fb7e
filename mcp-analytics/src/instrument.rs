//! What the attribute macros put around a handler: the [`Call`] guard that records one call.
//!
//! The hot path is [`Call::start`] plus [`Call::finish`]: two raw clock reads, a clone of the
//! scoped session (if any), and one push onto the lock-free queue. Everything else (wall-clock
//! time, formatting, JSON, compression) happens later, on the worker thread.

use std::fmt;

use crate::clock;
use crate::global;
use crate::rows::call::Outcome;
use crate::rows::call::{CallRow, Callsite, Details};
use crate::rows::outcome::{ErrorText, Observed};
use crate::rows::request::RequestFacts;
use crate::rows::scope::{self, Active, Running, RunningCall, Scoped};
use crate::rows::session::SessionId;
use crate::rows::text::{MAX_ERROR_LEN, MAX_NAME_LEN, bounded};

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
    /// Raw clock ticks.
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

    /// Marks this call as the one running on this thread, until the guard drops: a sync
    /// handler's body runs under it.
    #[inline]
    pub fn activate(&self) -> Active {
        Active::enter(self)
    }

    /// An async handler's body, polled with this call marked as running.
    #[inline]
    pub fn scoped<F>(&self, body: F) -> Scoped<'_, F> {
        Scoped::call(self, body)
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

impl Running for Call {
    fn running(&self) -> RunningCall {
        RunningCall {
            callsite: self.callsite,
            name: self
                .details
                .as_ref()
                .and_then(|details| details.name.clone()),
            session: self.session.clone(),
        }
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
