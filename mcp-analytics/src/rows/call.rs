//! The row of one call: what is known at compile time (the [`Callsite`]: an attribute's
//! handler, or one method of the server wrapper) and what a call adds when it ends (a
//! [`CallRow`]). Handler calls, the server's other requests, notifications, session starts and
//! ends, and finished tasks all travel as call rows: they differ in their [`Kind`].

use std::fmt;
use std::sync::Arc;

use super::fields::{Fields, Resolved};
use super::request::Origin;
use super::session::SessionId;

/// What a row is about. The first three are handler calls, the rows the template counts as
/// requests; the others come from the server wrapper.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tool,
    Resource,
    Prompt,
    /// Any other request: `initialize`, `tools/list`, `ping`, ...
    Request,
    /// A notification from the client: `notifications/initialized`, `notifications/cancelled`.
    Notification,
    /// A session's start (`name` "start") or end ("end", with the session's duration).
    Session,
    /// A task (SEP-2663) that reached its final status.
    Task,
    /// An agent's report that no tool does what it was asked: a `tools/call` of the tool the
    /// wrapper's `missing_capability_tool` option adds, answered by the wrapper. Not a handler
    /// call: the template must not count it as a call of a tool.
    MissingCapability,
}

impl Kind {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Kind::Tool => "tool",
            Kind::Resource => "resource",
            Kind::Prompt => "prompt",
            Kind::Request => "request",
            Kind::Notification => "notification",
            Kind::Session => "session",
            Kind::Task => "task",
            Kind::MissingCapability => "missing_capability",
        }
    }

    /// The MCP method of a row of this kind, where the kind says it: a handler call, or a
    /// missing-capability report (a `tools/call` the wrapper answers).
    pub(crate) const fn handler_method(self) -> Option<&'static str> {
        match self {
            Kind::Tool | Kind::MissingCapability => Some("tools/call"),
            Kind::Resource => Some("resources/read"),
            Kind::Prompt => Some("prompts/get"),
            _ => None,
        }
    }
}

/// How a call ended. The server wrapper's rows (`rmcp` feature) have the last two.
#[cfg_attr(not(feature = "rmcp"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Error,
    Panic,
    Cancelled,
    /// The server asked the client for input; the call resumes in a later request (2026-07-28).
    InputRequired,
    /// The server made a task of the call, which the client polls (SEP-2663).
    Task,
}

impl Outcome {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Panic => "panic",
            Outcome::Cancelled => "cancelled",
            Outcome::InputRequired => "input_required",
            Outcome::Task => "task",
        }
    }

    /// How a call ends that never returned: its guard dropped while the thread unwinds (a
    /// panic; the guard does not catch it), or dropped unpolled (the caller gave up on it).
    pub(crate) fn unfinished() -> Outcome {
        if std::thread::panicking() {
            Outcome::Panic
        } else {
            Outcome::Cancelled
        }
    }

    /// Whether the server failed: the template counts these rows as errors.
    pub(crate) const fn is_failure(self) -> bool {
        matches!(self, Outcome::Error | Outcome::Panic)
    }
}

/// What kind of error ended a call, as OpenTelemetry's `error.type` (server wrapper rows).
#[cfg_attr(not(feature = "rmcp"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorType {
    /// A tool result with `isError`.
    Tool,
    /// A JSON-RPC error answered to the request, by its code.
    JsonRpc(i32),
    /// The handler panicked.
    Panic,
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorType::Tool => f.write_str("tool_error"),
            ErrorType::JsonRpc(code) => write!(f, "{code}"),
            ErrorType::Panic => f.write_str("panic"),
        }
    }
}

/// What is known of an instrumented function at compile time. The macros emit one `static` of
/// it per function, so a row carries a single pointer instead of four strings.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
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

/// What only some calls have: a name computed at call time, an error text, what is known of
/// the request, the dimensions given to the call, and what only the server wrapper's rows
/// carry.
#[derive(Debug, Default)]
pub(crate) struct Details {
    /// `name = <expr>` or the request's name, replacing `callsite.name`. Shared, so that the
    /// log lines of the call can name it without a copy.
    pub(crate) name: Option<Arc<str>>,
    pub(crate) error: Option<Box<str>>,
    pub(crate) error_type: Option<ErrorType>,
    pub(crate) origin: Option<Arc<Origin>>,
    /// The handler's own duration, when an attribute's call joined the wrapper's row (whose
    /// duration covers the whole request).
    pub(crate) handler_duration_ns: Option<u64>,
    /// What a listing returned (names of tools, prompts, resources), when it changed.
    pub(crate) listed: Option<Box<[Box<str>]>>,
    /// Links between the rows of one call that spans requests (input required, tasks).
    pub(crate) link: Option<Box<Link>>,
    /// The innermost [`Dimensions`](crate::Dimensions) scope's user and fields.
    pub(crate) dimensions: Option<Arc<Resolved>>,
    /// `user = <expr>`, as recorded (hashed if so configured).
    pub(crate) user: Option<Arc<str>>,
    /// `fields(..)`: the call's own.
    pub(crate) fields: Fields,
    /// What was captured on request, redacted: arguments and result.
    pub(crate) captured: Option<Box<Captured>>,
}

/// A call's arguments and result, captured on request and redacted before the row is queued.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Captured {
    pub(crate) arguments: Option<serde_json::Value>,
    pub(crate) result: Option<serde_json::Value>,
}

/// Ties together the requests of one call: an answer that asks for input and the request that
/// resumes it, a task and its final status.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Link {
    /// A short digest of the `requestState` an `input_required` answer gave the client.
    pub(crate) continuation: Option<Box<str>>,
    /// The digest of the `requestState` this request brought back: the call it resumes.
    pub(crate) resumes: Option<Box<str>>,
    /// The task a call became, or whose end this row records.
    pub(crate) task_id: Option<Box<str>>,
    /// From the start of the first request of the call to this row's end, when it spans
    /// requests.
    pub(crate) total_duration_ns: Option<u64>,
}

/// What an attribute's call reports to the server wrapper's row it joined: its own view of the
/// call, and what it was given (`details`: its name, user, fields, dimensions).
#[cfg_attr(not(feature = "rmcp"), allow(dead_code))]
#[derive(Debug)]
pub(crate) struct HandlerReport {
    pub(crate) callsite: &'static Callsite,
    pub(crate) details: Option<Box<Details>>,
    pub(crate) outcome: Outcome,
    pub(crate) error: Option<Box<str>>,
    pub(crate) duration_ns: u64,
}

impl Details {
    /// Takes what a joined handler's call was given (its name, user, fields and scope), which
    /// is more specific than what the request says.
    #[cfg_attr(not(feature = "rmcp"), allow(dead_code))]
    pub(crate) fn adopt(&mut self, handler: Details) {
        if handler.name.is_some() {
            self.name = handler.name;
        }
        if handler.user.is_some() {
            self.user = handler.user;
        }
        if handler.dimensions.is_some() {
            self.dimensions = handler.dimensions;
        }
        if !handler.fields.is_empty() {
            self.fields = handler.fields;
        }
        // The wrapper's capture, of the request as the client sent it, comes first.
        if let Some(theirs) = handler.captured {
            let ours = self.captured.get_or_insert_default();
            ours.arguments = ours.arguments.take().or(theirs.arguments);
            ours.result = ours.result.take().or(theirs.result);
        }
    }
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

    pub(crate) fn origin(&self) -> Option<&Origin> {
        self.details.as_ref()?.origin.as_deref()
    }

    /// The user the call acted for, most specific source first: the call's own, its scope's,
    /// the request's.
    pub(crate) fn user(&self) -> Option<&str> {
        let details = self.details.as_deref()?;
        details
            .user
            .as_deref()
            .or_else(|| details.dimensions.as_ref()?.user.as_deref())
            .or_else(|| details.origin.as_ref()?.user.as_deref())
    }

    /// The call's fields, least specific source first (a later one replaces an earlier one of
    /// the same name): the request's, its scope's, the call's own.
    pub(crate) fn field_sources(&self) -> [Option<&Fields>; 3] {
        let Some(details) = self.details.as_deref() else {
            return [None; 3];
        };
        [
            details.origin.as_deref().map(|origin| &origin.fields),
            details
                .dimensions
                .as_deref()
                .map(|dimensions| &dimensions.fields),
            Some(&details.fields),
        ]
    }
}
