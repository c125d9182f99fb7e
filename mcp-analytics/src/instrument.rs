//! What the attribute macros put around a handler: the [`Call`] guard that records one call;
//! and what the server wrapper puts around a request: a [`ServingCall`].
//!
//! The hot path is [`Call::start`] plus [`Call::finish`]: two raw clock reads, a clone of the
//! scoped session (if any), and one push onto the lock-free queue. Everything else (wall-clock
//! time, formatting, JSON, compression) happens later, on the worker thread.
//!
//! Inside a request the server wrapper serves, the first attribute call of the request's kind
//! (the tool of a `tools/call`) makes no row of its own: it reports to the wrapper's, which
//! then carries both views, so that each call is one row.

use std::fmt;
use std::sync::Arc;

use crate::capture::{self, user};
use crate::clock;
use crate::global;
use crate::panic_hook;
use crate::rows::call::{
    CallRow, Callsite, Captured, Details, ErrorType, HandlerReport, Kind, Outcome,
};
use crate::rows::fields::{FieldValue, Fields, Resolved};
use crate::rows::outcome::{ErrorText, Observed};
use crate::rows::request::RequestFacts;
use crate::rows::scope::{self, Active, Inherited, Running, RunningCall, Scoped, Serving};
use crate::rows::served::ServedRequest;
use crate::rows::session::SessionId;
use crate::rows::text::{MAX_ERROR_LEN, MAX_NAME_LEN, bounded, bounded_str};

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
    /// The request of the server wrapper this call is the handler of: it reports there.
    joined: Option<Arc<ServedRequest>>,
}

impl Call {
    #[inline]
    pub fn start(callsite: &'static Callsite) -> Self {
        if !scope::in_scope() {
            // Outside every scope, the common case: nothing to inherit.
            return Self {
                callsite,
                session: None,
                details: None,
                started: clock::ticks(),
                finished: false,
                joined: None,
            };
        }
        Self::start_in_scope(callsite)
    }

    /// [`Call::start`] inside a scope: a session, a request the wrapper serves, dimensions.
    #[inline(never)]
    fn start_in_scope(callsite: &'static Callsite) -> Self {
        let Inherited {
            session,
            served,
            dimensions,
        } = scope::inherited();
        let mut call = Self {
            callsite,
            session,
            details: None,
            started: clock::ticks(),
            finished: false,
            joined: None,
        };
        if served.is_some() || dimensions.is_some() {
            call.inherit(served, dimensions);
        }
        call
    }

    /// Inside a request the wrapper serves: join its row, or take what it knows of the request;
    /// inside a [`Dimensions`](crate::Dimensions) scope: take its user and fields. Out of line:
    /// most calls come here never, and keep `start` small.
    #[cold]
    #[inline(never)]
    fn inherit(&mut self, served: Option<Arc<ServedRequest>>, dimensions: Option<Arc<Resolved>>) {
        if let Some(served) = served {
            if served.claim(self.callsite.kind) {
                self.joined = Some(served);
            } else {
                self.details().origin = Some(Arc::clone(&served.origin));
            }
        }
        if dimensions.is_some() {
            self.details().dimensions = dimensions;
        }
    }

    /// What a handler argument says of its request (see `request`): its session and client,
    /// and, when the attribute names nothing (`name_by_request`), the resource or prompt asked
    /// for. What the scope says (a session scope, the request the wrapper serves) comes first;
    /// `named` and `in_session`, applied after, override both.
    pub fn with_request(mut self, facts: Option<&dyn RequestFacts>, name_by_request: bool) -> Self {
        let Some(facts) = facts else {
            return self;
        };
        if self.session.is_none()
            && let Some(session) = facts.session()
        {
            self.session = Some(session);
        }
        let origin_known =
            self.joined.is_some() || self.details.as_ref().is_some_and(|d| d.origin.is_some());
        if !origin_known && let Some(origin) = facts.origin() {
            self.details().origin = Some(Arc::new(origin));
        }
        if name_by_request && let Some(name) = facts.handler_name() {
            self.details().name = Some(Arc::from(bounded_str(name, MAX_NAME_LEN)));
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

    /// `user = <expr>`: the user the call acts for; an empty value names none.
    pub fn for_user(mut self, user: &dyn fmt::Display) -> Self {
        let user = user::recorded_display(user);
        if user.is_some() {
            self.details().user = user;
        }
        self
    }

    /// `fields(..)`: the call's own fields, evaluated on entry.
    pub fn with_fields<const N: usize>(mut self, fields: [(&'static str, FieldValue); N]) -> Self {
        self.details().fields = Fields(Vec::from(fields));
        self
    }

    /// `capture(arguments)`: each argument's JSON, by name (`None`: its type is not
    /// `Serialize`), redacted now, before anything is queued.
    pub fn with_arguments<const N: usize>(
        mut self,
        arguments: [(&'static str, Option<serde_json::Value>); N],
    ) -> Self {
        let object = arguments
            .into_iter()
            .filter_map(|(name, value)| Some((name.to_owned(), value?)))
            .collect::<serde_json::Map<_, _>>();
        if let Some(arguments) = capture::value(serde_json::Value::Object(object)) {
            self.details().captured.get_or_insert_default().arguments = Some(arguments);
        }
        self
    }

    /// [`Call::finish`] with `capture(result)`: the returned value's JSON, redacted.
    pub fn finish_with_result(mut self, observed: Observed<'_>, result: Option<serde_json::Value>) {
        if let Some(result) = result.and_then(capture::value) {
            self.details().captured.get_or_insert_default().result = Some(result);
        }
        self.finish(observed);
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
        self.forget_recorded();
    }

    /// Ends a guard whose call [`record`](Self::record) has recorded: `record` took the row's
    /// parts but the session of a call that reported to the wrapper, which goes now, and the
    /// guard's own `Drop` (which would find `finished` set) and drop glue are skipped, a fair
    /// part of a call's cost otherwise.
    #[inline]
    fn forget_recorded(mut self) {
        debug_assert!(self.finished && self.details.is_none() && self.joined.is_none());
        drop(self.session.take());
        std::mem::forget(self);
    }

    #[inline]
    fn elapsed_ns(&self) -> u64 {
        let clock = clock::clock();
        clock.delta_as_nanos(self.started, clock.raw())
    }

    /// Records the call's row. In line, for the common case (no error text, no wrapper's row to
    /// join); the rest out of line.
    #[inline]
    fn record(&mut self, outcome: Outcome, error: Option<Box<str>>, duration_ns: u64) {
        if error.is_some() || self.joined.is_some() {
            self.record_rare(outcome, error, duration_ns);
        } else {
            global::push_call(self.row(outcome, duration_ns));
        }
    }

    #[cold]
    #[inline(never)]
    fn record_rare(&mut self, outcome: Outcome, error: Option<Box<str>>, duration_ns: u64) {
        if let Some(served) = self.joined.take() {
            self.finished = true;
            self.report_to(&served, outcome, error, duration_ns);
            return;
        }
        if error.is_some() {
            self.details().error = error;
        }
        global::push_call(self.row(outcome, duration_ns));
    }

    /// The call joined `served`'s row: it reports there instead of making its own. Out of line,
    /// as `inherit`.
    #[cold]
    #[inline(never)]
    fn report_to(
        &mut self,
        served: &ServedRequest,
        outcome: Outcome,
        error: Option<Box<str>>,
        duration_ns: u64,
    ) {
        served.report(HandlerReport {
            callsite: self.callsite,
            details: self.details.take(),
            outcome,
            error,
            duration_ns,
        });
    }

    fn row(&mut self, outcome: Outcome, duration_ns: u64) -> CallRow {
        self.finished = true;
        CallRow {
            callsite: self.callsite,
            session: self.session.take(),
            details: self.details.take(),
            started: self.started,
            duration_ns,
            outcome,
        }
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
            let (outcome, error) = unfinished(self.started);
            self.record(outcome, error, duration_ns);
        }
    }
}

/// How a call that started at `started` ends without returning: `panic`, with the panic's
/// message when the hook kept one for it (see `panic_hook`), or `cancelled`.
fn unfinished(started: u64) -> (Outcome, Option<Box<str>>) {
    let outcome = Outcome::unfinished();
    let error = match outcome {
        Outcome::Panic => panic_hook::message_since(started),
        _ => None,
    };
    (outcome, error)
}

/// How a request the server wrapper served ended, as the wrapper saw it.
// The rows of the server wrapper (`rmcp` feature).
#[cfg_attr(not(feature = "rmcp"), allow(dead_code))]
#[derive(Debug)]
pub(crate) struct Ending {
    pub(crate) outcome: Outcome,
    pub(crate) error: Option<Box<str>>,
    pub(crate) error_type: Option<ErrorType>,
}

#[cfg_attr(not(feature = "rmcp"), allow(dead_code))]
impl Ending {
    pub(crate) const OK: Ending = Ending {
        outcome: Outcome::Ok,
        error: None,
        error_type: None,
    };
}

/// The row of one request the server wrapper serves. The request's handler runs inside it
/// ([`ServingCall::serve`]), where calls inherit its session and origin, and the handler's
/// attribute, if any, reports to it instead of making a row of its own.
#[cfg_attr(not(feature = "rmcp"), allow(dead_code))]
#[derive(Debug)]
pub(crate) struct ServingCall {
    call: Call,
    served: Arc<ServedRequest>,
}

#[cfg_attr(not(feature = "rmcp"), allow(dead_code))]
impl ServingCall {
    /// Starts the row of a request: `name` is what the request names (a tool, a prompt, a URI),
    /// when it names one.
    pub(crate) fn start(
        callsite: &'static Callsite,
        served: Arc<ServedRequest>,
        name: Option<&str>,
    ) -> Self {
        let call = Call {
            callsite,
            session: served.session.clone(),
            details: Some(Box::new(Details {
                name: name.map(|name| Arc::from(bounded_str(name, MAX_NAME_LEN))),
                origin: Some(Arc::clone(&served.origin)),
                // A server served inside a `Dimensions` scope: its requests are in it too.
                dimensions: scope::inherited_dimensions(),
                ..Details::default()
            })),
            started: clock::ticks(),
            finished: false,
            joined: None,
        };
        Self { call, served }
    }

    /// Adds to what the request's row captured.
    pub(crate) fn capture(&mut self, add: impl FnOnce(&mut Captured)) {
        add(self.call.details().captured.get_or_insert_default());
    }

    /// `body`, run inside the request.
    pub(crate) fn serve<F>(&self, body: F) -> Scoped<'_, F> {
        Scoped::served(self, body)
    }

    /// Ends the request as `ending` says, with what the handler's attribute reported, and
    /// returns its row.
    pub(crate) fn end(mut self, ending: Ending) -> CallRow {
        let duration_ns = self.call.elapsed_ns();
        let outcome = self.merge(ending);
        self.call.row(outcome, duration_ns)
    }

    /// The wrapper's view, completed by the handler's: the handler's outcome (read off its
    /// return type) unless the request failed otherwise, its name first, and its error text
    /// unless the answer was a JSON-RPC error (whose message the wrapper has without the code,
    /// which `error_type` holds).
    fn merge(&mut self, ending: Ending) -> Outcome {
        let report = self.served.take_report();
        let callsite = report
            .as_ref()
            .map_or(self.call.callsite, |report| report.callsite);
        let details = self.call.details();
        details.error_type = ending.error_type;
        let mut outcome = ending.outcome;
        let mut error = ending.error;
        if let Some(report) = report {
            if outcome == Outcome::Ok {
                outcome = report.outcome;
            }
            let json_rpc = matches!(ending.error_type, Some(ErrorType::JsonRpc(_)));
            if report.error.is_some() && !json_rpc {
                error = report.error;
            }
            if let Some(given) = report.details {
                details.adopt(*given);
            }
            details.handler_duration_ns = Some(report.duration_ns);
        }
        // What failed without a JSON-RPC error: a panic, or a tool that said so.
        if details.error_type.is_none() {
            details.error_type = match outcome {
                Outcome::Panic => Some(ErrorType::Panic),
                Outcome::Error if callsite.kind == Kind::Tool => Some(ErrorType::Tool),
                _ => None,
            };
        }
        details.error = error;
        self.call.callsite = callsite;
        outcome
    }
}

impl Running for ServingCall {
    fn running(&self) -> RunningCall {
        self.call.running()
    }
}

impl Serving for ServingCall {
    fn served(&self) -> &Arc<ServedRequest> {
        &self.served
    }
}

impl Drop for ServingCall {
    fn drop(&mut self) {
        if !self.call.finished {
            let duration_ns = self.call.elapsed_ns();
            let (outcome, error) = unfinished(self.call.started);
            let outcome = self.merge(Ending {
                outcome,
                error,
                error_type: None,
            });
            global::push_call(self.call.row(outcome, duration_ns));
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
