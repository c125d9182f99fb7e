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

mod fields;

use std::borrow::Cow;

use tracing_core::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::clock;
use crate::global;
use crate::rows::log::{App, Handler, LogRow};
use crate::rows::scope::{self, RunningCall};

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
    app: &'static App,
    level: Level,
}

impl Layer {
    #[doc(hidden)]
    pub const fn __new(app: &'static App) -> Self {
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
        static APP: $crate::__private::App = $crate::__private::App::new(
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
        scope::track_calls();
    }

    // Filtering happens here, not in `enabled`: a `false` there would hide the event from every
    // other layer of the subscriber too.
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        // `Level` orders by verbosity: TRACE is the greatest.
        if *metadata.level() > self.level || scope::on_worker_thread() {
            return;
        }
        let mut fields = fields::Recorder::default();
        event.record(&mut fields);
        // A `log` record bridged by `tracing-log` has the target `log`; its own is a field.
        let target = fields
            .log_target
            .take()
            .map_or(Cow::Borrowed(metadata.target()), Cow::Owned);
        if target.starts_with("mcp_analytics") {
            return;
        }
        let (running, scoped_session, origin) = scope::for_log_line();
        let (handler, session) = match running {
            Some(RunningCall {
                callsite,
                name,
                session,
            }) => (Some(Handler { callsite, name }), session),
            None => (None, None),
        };
        // Inside a handler, the handler's crate logged; elsewhere, the layer's.
        let (app_name, app_version) = handler
            .as_ref()
            .map_or((self.app.name, self.app.version), |handler| {
                (handler.callsite.crate_name, handler.callsite.crate_version)
            });
        global::push_log(Box::new(LogRow {
            level: level(*metadata.level()),
            message: fields.message.take().unwrap_or_default(),
            target,
            span: ctx.event_span(event).map(|span| span.name()),
            fields: fields.fields,
            app_name,
            app_version,
            handler,
            session: session.or(scoped_session),
            origin,
            logged: clock::ticks(),
        }));
    }
}

fn level(level: Level) -> crate::rows::log::Level {
    use crate::rows::log::Level as Row;
    match level {
        Level::ERROR => Row::Error,
        Level::WARN => Row::Warn,
        Level::INFO => Row::Info,
        Level::DEBUG => Row::Debug,
        Level::TRACE => Row::Trace,
    }
}
