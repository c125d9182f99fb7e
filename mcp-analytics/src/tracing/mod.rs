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
//! Which events become rows, by default: your crate's at `INFO` and above, every other crate's at
//! `WARN` and above. An SDK's own `INFO` lines (rmcp's as a server starts, on notifications,
//! cancellations and its end) would otherwise outnumber yours; its warnings and errors still ship.
//! Your crate is the package whose `CARGO_PKG_NAME` is read where `layer!()` is written (its
//! library and its default binary, as their module paths name them: `my_server` for the package
//! `my-server`) and the crate `layer!()` is written in (a binary in `src/bin/`, an example, a
//! test). An event's target is matched on whole path segments: `my_server` and `my_server::tools`
//! are yours, `my_server_extra` is not. An event with a target of its own (`info!(target: "audit",
//! ..)`) counts as another crate's. [`Layer::with_level`] sets your crate's level,
//! [`Layer::with_other_crates`] the others', and [`Layer::with_targets`] replaces both with
//! tracing-subscriber's [`Targets`] rules:
//!
//! ```
//! use tracing::Level;
//! use tracing_subscriber::filter::Targets;
//!
//! // Your crate's DEBUG lines too, and nothing of other crates below ERROR.
//! let layer = mcp_analytics::tracing::layer!()
//!     .with_level(Level::DEBUG)
//!     .with_other_crates(Level::ERROR);
//! # drop(layer);
//! // Exactly these rules: `my_server` at DEBUG, rmcp at INFO, the rest at WARN.
//! let targets: Targets = "my_server=debug,rmcp=info,warn".parse()?;
//! let layer = mcp_analytics::tracing::layer!().with_targets(targets);
//! # drop(layer);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A filter of tracing-subscriber given to this layer alone (`layer!().with_filter(filter)`, an
//! `EnvFilter` say) only narrows what it ships: a line ships when that filter and the layer's own
//! rules both let it through. To let such a filter decide alone, open the layer's own rules:
//! `.with_targets(Targets::new().with_default(LevelFilter::TRACE))`.
//!
//! Each row's `level` is the event's level in lower case (`error` counts as an error in the
//! template's metrics), and `record` holds `message` (the formatted message), `funcName`,
//! `target`, `appName` and `version` (your crate's, read where `layer!()` is written),
//! `kind = "log"`, and the event's other fields as a JSON object under `fields`. `funcName` is,
//! inside an instrumented handler, the handler's function (the `funcName` of the call's own row),
//! whatever span is entered around it: an SDK's span, such as rmcp's `serve_inner`, names no
//! function of yours. Outside handlers it is the enclosing span's name, else the event's target.
//! Inside an instrumented handler a row also names the handler (`handler_kind`, `handler`) and
//! carries the call's session. Those keys are not `tool`, `prompt` or `resource` on purpose: the
//! template counts every row with a `tool` as a request of that tool, and log lines must not
//! inflate it.
//!
//! Log lines may take half the queue at most: a storm of them drops log lines (counted in
//! [`Stats::dropped_log_lines`](crate::Stats::dropped_log_lines), and in `dropped`), never the
//! call events that the other half keeps room for. What the library's own worker thread logs
//! (the HTTP client's events) is never turned into rows, so shipping cannot feed itself.
//!
//! Servers that log with the `log` crate: install `tracing-log`'s `LogTracer` and their records
//! arrive as `tracing` events, and here, filtered by the record's own target (`tracing-log`
//! gives them all the target `log`, and the record's in a field).
//!
//! Filtering happens as each event arrives, in this layer alone: your other layers (a `fmt`
//! layer to stderr, say) see every event as before. It is cheap for the lines it drops: a
//! compare of levels, then one of the target's prefix; a dropped line's message is never
//! formatted.

mod fields;
mod filter;

use std::borrow::Cow;

use tracing_core::{Event, Level, LevelFilter, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::clock;
use crate::global;
use crate::rows::log::{App, Handler, LogRow};
use crate::rows::scope::{self, RunningCall};
use filter::Filter;

/// The layer; make one with [`layer!`](crate::tracing::layer), which reads your crate's name and
/// version where it is written.
///
/// ```
/// use tracing_subscriber::prelude::*;
///
/// let layer = mcp_analytics::tracing::layer!().with_level(tracing::Level::WARN);
/// let _subscriber = tracing_subscriber::registry().with(layer);
/// ```
#[derive(Debug, Clone)]
pub struct Layer {
    app: &'static App,
    filter: Filter,
}

impl Layer {
    /// Called by `layer!()` only, with the `module_path!()` where it is written.
    #[doc(hidden)]
    pub const fn __new(app: &'static App, module_path: &'static str) -> Self {
        Self {
            app,
            filter: Filter::new(app.name, module_path),
        }
    }

    /// Ships your crate's events at `level` or more severe (default `INFO`): `WARN` ships its
    /// warnings and errors, `TRACE` everything it logs. Other crates keep their own level
    /// ([`with_other_crates`](Self::with_other_crates)). Takes a `Level` or a `LevelFilter`
    /// (`LevelFilter::OFF`: none of your crate's lines). Without effect under
    /// [`with_targets`](Self::with_targets), whose rules replace it.
    ///
    /// ```
    /// use tracing_subscriber::prelude::*;
    ///
    /// let layer = mcp_analytics::tracing::layer!().with_level(tracing::Level::DEBUG);
    /// tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
    ///     tracing::debug!("shipped: this crate's, at DEBUG");
    ///     tracing::info!(target: "rmcp::service", "not shipped: another crate's, below WARN");
    /// });
    /// // Before `init()`, what the layer ships waits in the queue.
    /// assert_eq!(mcp_analytics::stats().queued, 1);
    /// ```
    #[must_use]
    pub fn with_level(mut self, level: impl Into<LevelFilter>) -> Self {
        self.filter.own(level.into());
        self
    }

    /// Ships the events of every crate but yours at `level` or more severe (default `WARN`):
    /// `INFO` ships your dependencies' `INFO` lines too (rmcp's, as a server starts, say),
    /// `LevelFilter::OFF` none of their lines. Without effect under
    /// [`with_targets`](Self::with_targets), whose rules replace it.
    ///
    /// ```
    /// use tracing_subscriber::prelude::*;
    ///
    /// let layer = mcp_analytics::tracing::layer!().with_other_crates(tracing::Level::INFO);
    /// tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
    ///     tracing::info!(target: "rmcp::service", "shipped: another crate's, at INFO");
    ///     tracing::debug!(target: "hyper::proto", "not shipped: another crate's, at DEBUG");
    /// });
    /// assert_eq!(mcp_analytics::stats().queued, 1);
    /// ```
    #[must_use]
    pub fn with_other_crates(mut self, level: impl Into<LevelFilter>) -> Self {
        self.filter.others(level.into());
        self
    }

    /// Ships exactly what `targets` enables, in place of the default rules (and of
    /// [`with_level`](Self::with_level) and [`with_other_crates`](Self::with_other_crates),
    /// whichever order they are called in). [`Targets`] is tracing-subscriber's filter, with its
    /// own rules: the most specific target that applies sets the level, a target applies to
    /// every target that starts with it (`my_server` also to `my_server_extra`), a bare level
    /// is the default, and with no default, targets it names none of ship nothing. It parses
    /// from `RUST_LOG`'s syntax without field filters (`"my_server=debug,rmcp=info,warn"`), so
    /// it can come from an environment variable of yours.
    ///
    /// ```
    /// use tracing_subscriber::filter::Targets;
    /// use tracing_subscriber::prelude::*;
    ///
    /// let targets: Targets = "my_server=debug,rmcp=info,warn".parse()?;
    /// let layer = mcp_analytics::tracing::layer!().with_targets(targets);
    /// tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
    ///     tracing::debug!(target: "my_server::tools", "shipped");
    ///     tracing::info!(target: "rmcp::service", "shipped");
    ///     tracing::info!(target: "hyper::proto", "not shipped: the default is WARN");
    ///     tracing::info!("not shipped either: no rule names this crate");
    /// });
    /// assert_eq!(mcp_analytics::stats().queued, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_targets(mut self, targets: Targets) -> Self {
        self.filter.targets(targets);
        self
    }

    /// The line's target, if the filter ships the line.
    fn shipped_target(&self, event: &Event<'_>) -> Option<Cow<'static, str>> {
        let metadata = event.metadata();
        let level = metadata.level();
        // A `log` record bridged by `tracing-log` has the target `log`; its own is a field, and
        // the filter applies to that one. Read before anything else of the event, and copied
        // only when the line ships.
        if metadata.target() == "log"
            && metadata.fields().field(fields::LOG_TARGET).is_some()
            && let Some(shipped) = fields::log_target(event, |target| {
                self.filter.ships(target, level).then(|| target.to_owned())
            })
        {
            return shipped.map(Cow::Owned);
        }
        let target = metadata.target();
        self.filter
            .ships(target, level)
            .then_some(Cow::Borrowed(target))
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
        $crate::tracing::Layer::__new(&APP, ::core::module_path!())
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
    // other layer of the subscriber too. For the same reason there is no `max_level_hint`: a
    // layer without one (a `fmt` layer) counts as no opinion, and ours would then cap theirs.
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // The cheapest checks first: most lines a layer drops are too verbose for every rule.
        if !self.filter.may_ship(event.metadata().level()) || scope::on_worker_thread() {
            return;
        }
        let Some(target) = self.shipped_target(event) else {
            return;
        };
        let mut fields = fields::Recorder::default();
        event.record(&mut fields);
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
        // Inside a handler its function names the line (`funcName`), not the span around it, so
        // the span is looked up only outside one.
        let span = match handler {
            Some(_) => None,
            None => ctx.event_span(event).map(|span| span.name()),
        };
        global::push_log(Box::new(LogRow {
            level: level(*event.metadata().level()),
            message: fields.message.take().unwrap_or_default(),
            target,
            span,
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
