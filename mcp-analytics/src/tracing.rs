//! Log lines to Tinybird too: a [`tracing_subscriber::Layer`] that turns `tracing` events into rows
//! of the same datasource, through the same queue, batches and requests as handler calls.
//!
//! Three lines in `main`, beside `mcp_analytics::init()`:
//!
//! ```
//! use tracing_subscriber::prelude::*;
//!
//! tracing_subscriber::registry()
//!     .with(mcp_analytics::tracing::layer!())
//!     .init();
//! # tracing::info!(user = "ada", "logged in");
//! ```
//!
//! Each event at or above the layer's level (`INFO` unless [`Layer::with_level`] says otherwise)
//! becomes one row: `level` is the event's level in lower case (`error` counts as an error in
//! the template's metrics), and `record` holds `message` (the formatted message), `funcName` (the
//! enclosing span's name, else the event's target), `target`, `appName` and `version` (your
//! crate's, read where `layer!()` is written), `kind = "log"`, and the event's other fields as a
//! JSON object under `fields`. Inside an instrumented handler a row also names the handler
//! (`handler_kind`, `handler`) and carries the call's session. Those keys are not `tool`,
//! `prompt` or `resource` on purpose: the template counts every row with a `tool` as a request of
//! that tool, and log lines must not inflate it.
//!
//! Log lines may take half the queue at most: a storm of them drops log lines (counted in
//! [`Stats::dropped_log_lines`](crate::Stats::dropped_log_lines), and in `dropped`), never the
//! call events that the other half keeps room for. What the library's own worker thread logs
//! (the HTTP client's events) is never turned into rows, so shipping cannot feed itself.
//!
//! Servers that log with the `log` crate: install `tracing-log`'s `LogTracer` and their records
//! arrive as `tracing` events, and here.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};
use tracing_core::field::{Field, Visit};
use tracing_core::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::context::{self, CallInfo};
use crate::event::{self, Callsite, Details, Outcome, bounded};
use crate::session;

/// Longest message kept per log line, in bytes (cut like error texts, ending in `…`).
const MAX_MESSAGE_LEN: usize = 4096;
/// Longest text kept per field value, in bytes.
const MAX_FIELD_LEN: usize = crate::MAX_ERROR_LEN;

/// The layer; make one with [`layer!`](crate::tracing::layer), which reads your crate's name and
/// version where it is written.
///
/// ```
/// use tracing_subscriber::prelude::*;
///
/// let layer = mcp_analytics::tracing::layer!().with_level(tracing::Level::WARN);
/// let _subscriber = tracing_subscriber::registry().with(layer);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Layer {
    app: &'static Callsite,
    level: Level,
}

impl Layer {
    #[doc(hidden)]
    pub const fn __new(app: &'static Callsite) -> Self {
        Self {
            app,
            level: Level::INFO,
        }
    }

    /// Ships events at `level` or more severe (default `INFO`): `WARN` ships warnings and
    /// errors, `TRACE` everything.
    ///
    /// ```
    /// let layer = mcp_analytics::tracing::layer!().with_level(tracing::Level::DEBUG);
    /// # drop(layer);
    /// ```
    #[must_use]
    pub const fn with_level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }
}

/// A [`Layer`] for your crate: `mcp_analytics::tracing::layer!()`. Rows carry the name and
/// version of the crate where it is written, as the handler attributes do.
///
/// ```
/// use tracing_subscriber::prelude::*;
///
/// let _subscriber = tracing_subscriber::registry().with(mcp_analytics::tracing::layer!());
/// ```
#[doc(inline)]
pub use crate::__tracing_layer as layer;

#[doc(hidden)]
#[macro_export]
macro_rules! __tracing_layer {
    () => {{
        static APP: $crate::__private::Callsite = $crate::__private::Callsite::new(
            $crate::__private::Kind::Log,
            "",
            "",
            ::core::env!("CARGO_PKG_NAME"),
            ::core::env!("CARGO_PKG_VERSION"),
        );
        $crate::tracing::Layer::__new(&APP)
    }};
}

impl<S> tracing_subscriber::Layer<S> for Layer
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
{
    fn on_layer(&mut self, _subscriber: &mut S) {
        // From now on, handlers mark themselves as running, for the lines logged inside them.
        context::enable();
    }

    // Filtering happens here, not in `enabled`: a `false` there would hide the event from every
    // other layer of the subscriber too.
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        // `Level` orders by verbosity: TRACE is the greatest.
        if *metadata.level() > self.level || context::is_worker_thread() {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        // A `log` record bridged by `tracing-log` has the target `log`; its own is a field.
        let target = fields
            .log_target
            .take()
            .map_or(Cow::Borrowed(metadata.target()), Cow::Owned);
        if target.starts_with("mcp_analytics") {
            return;
        }
        let (handler, call_session) = match context::innermost() {
            Some(CallInfo {
                callsite,
                name,
                session,
            }) => (Some(Handler { callsite, name }), session),
            None => (None, None),
        };
        // Inside a handler, the handler's crate logged; elsewhere, the layer's.
        let callsite = handler
            .as_ref()
            .map_or(self.app, |handler| handler.callsite);
        let log = LogLine {
            level: *metadata.level(),
            message: fields.message.take().unwrap_or_default(),
            target,
            span: ctx.event_span(event).map(|span| span.name()),
            fields,
            handler,
        };
        crate::queue::push_log(event::Event {
            callsite,
            session: call_session.or_else(session::current),
            details: Some(Box::new(Details {
                log: Some(Box::new(log)),
                ..Details::default()
            })),
            started: event::clock().raw(),
            duration_ns: 0,
            outcome: Outcome::Ok,
        });
    }
}

/// What a log line says, kept with its event until the worker encodes it.
#[derive(Debug)]
pub(crate) struct LogLine {
    level: Level,
    message: Box<str>,
    target: Cow<'static, str>,
    /// The enclosing span's name.
    span: Option<&'static str>,
    fields: Fields,
    /// The instrumented call it was written in.
    handler: Option<Handler>,
}

#[derive(Debug)]
struct Handler {
    callsite: &'static Callsite,
    name: Option<Arc<str>>,
}

impl LogLine {
    /// The row's `level`: the template counts `error` as an error.
    pub(crate) fn level(&self) -> &'static str {
        match self.level {
            Level::ERROR => "error",
            Level::WARN => "warn",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        }
    }

    /// The row's `record`, for the event that carries this line.
    pub(crate) fn record<'a>(&'a self, event: &'a event::Event) -> impl Serialize + 'a {
        let handler_name = self.handler.as_ref().map_or("", |handler| {
            handler.name.as_deref().unwrap_or(handler.callsite.name)
        });
        LogRecord {
            app_name: event.callsite.crate_name,
            func_name: self.span.unwrap_or(&self.target),
            version: event.callsite.crate_version,
            message: &self.message,
            kind: "log",
            target: &self.target,
            handler_kind: self
                .handler
                .as_ref()
                .map_or("", |handler| handler.callsite.kind.as_str()),
            handler: handler_name,
            fields: &self.fields,
        }
    }
}

/// The `record` of a log line. As for calls, keys without a value are left out.
#[derive(serde::Serialize)]
struct LogRecord<'a> {
    #[serde(rename = "appName")]
    app_name: &'a str,
    #[serde(rename = "funcName")]
    func_name: &'a str,
    version: &'a str,
    message: &'a str,
    kind: &'static str,
    target: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    handler_kind: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    handler: &'a str,
    #[serde(skip_serializing_if = "Fields::is_empty")]
    fields: &'a Fields,
}

/// An event's fields: its message apart, the others in the order recorded.
#[derive(Debug, Default)]
struct Fields {
    message: Option<Box<str>>,
    /// The target of a bridged `log` record.
    log_target: Option<String>,
    values: Vec<(&'static str, Value)>,
}

/// Fields `tracing-log` adds to a bridged `log` record: its target is kept as the line's, the
/// others (where in the source it was logged) are left out, as `tracing`'s own events have none.
const LOG_FIELDS: [&str; 4] = ["log.target", "log.module_path", "log.file", "log.line"];

/// A field's value, as JSON will hold it.
#[derive(Debug)]
enum Value {
    Text(Box<str>),
    Signed(i64),
    Unsigned(u64),
    Float(f64),
    Bool(bool),
}

impl Fields {
    fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn text(&mut self, field: &Field, value: &dyn fmt::Display) {
        match field.name() {
            "message" => self.message = Some(bounded(value, MAX_MESSAGE_LEN)),
            "log.target" => self.log_target = Some(value.to_string()),
            _ => self.value(field, || Value::Text(bounded(value, MAX_FIELD_LEN))),
        }
    }

    fn value(&mut self, field: &Field, value: impl FnOnce() -> Value) {
        if !LOG_FIELDS.contains(&field.name()) {
            self.values.push((field.name(), value()));
        }
    }
}

/// Shows a `Debug` value through `Display`, for [`bounded`].
struct DebugText<'a>(&'a dyn fmt::Debug);

impl fmt::Display for DebugText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.text(field, &DebugText(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, &value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.text(field, &value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.value(field, || Value::Signed(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.value(field, || Value::Unsigned(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.value(field, || Value::Float(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.value(field, || Value::Bool(value));
    }
}

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.values.len()))?;
        for (name, value) in &self.values {
            match value {
                Value::Text(text) => map.serialize_entry(name, text)?,
                Value::Signed(n) => map.serialize_entry(name, n)?,
                Value::Unsigned(n) => map.serialize_entry(name, n)?,
                // JSON has no NaN or infinity: serde_json writes `null` for them.
                Value::Float(x) => map.serialize_entry(name, x)?,
                Value::Bool(b) => map.serialize_entry(name, b)?,
            }
        }
        map.end()
    }
}
