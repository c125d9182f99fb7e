//! Usage analytics for Rust MCP servers: one attribute per handler, events shipped in batches to
//! Tinybird's Events API, in the wire format of Tinybird's "MCP Server Analytics" template.
//!
//! ```no_run
//! use mcp_analytics::{mcp_prompt, mcp_resource, mcp_tool};
//!
//! #[mcp_tool]
//! async fn add(a: i64, b: i64) -> Result<i64, String> {
//!     a.checked_add(b).ok_or_else(|| "overflow".to_owned())
//! }
//!
//! #[mcp_resource(name = uri)]
//! fn read_file(uri: &str) -> std::io::Result<String> {
//!     std::fs::read_to_string(uri.trim_start_matches("file://"))
//! }
//!
//! #[mcp_prompt]
//! fn greeting(name: &str) -> String {
//!     format!("Say hello to {name}.")
//! }
//!
//! fn main() {
//!     // Reads TB_API_URL and TB_WRITE_TOKEN from the environment or `.env`.
//!     let _analytics = mcp_analytics::init();
//!     // ... serve ...
//! } // dropping the guard delivers what is queued, within the shutdown timeout
//! ```
//!
//! Each call records one event: kind, name, function, duration (monotonic clock), outcome
//! (`ok`, `error`, `panic`, `cancelled`), error text (or the panic's message), session, and the
//! instrumented crate's name and version. The handler never blocks and never waits on the
//! network: the event goes onto a bounded lock-free queue, and a background thread batches,
//! compresses and ships it, with retries that follow the Events API's rules. What cannot be
//! delivered now (an outage, rate limits, the process exiting) goes to a bounded disk spool and
//! is delivered later, once, by this process or the server's next run ([`Builder::spool`]).
//! See [`stats`] for what happened to events.
//!
//! A panic's message comes from a panic hook that `init` chains in front of the one set before
//! (yours, or the default one printing to stderr, which run as before); a hook set after `init`
//! replaces it, so set yours first (see [`Builder::panic_messages`]).
//!
//! More, on request: your own dimensions (`fields(..)` on the attribute, a [`Dimensions`]
//! scope), the user a call acts for (`user = ..`, hashed with [`Builder::hash_users`]), and a
//! call's arguments and result (`capture(arguments, result)`). Nothing that could be personal
//! data is recorded by default, and what is captured is redacted before it is queued
//! ([`Builder::redact_with`], [`Builder::capture_limit`]). [`Builder::before_send`] sees every
//! row, on the worker thread, to amend or drop it.
//!
//! The library writes nothing to stdout (the MCP stdio transport): its few diagnostics go to
//! stderr, each said once.
//!
//! With the `rmcp` feature, `mcp_analytics::rmcp::instrument!(server)` records every request an
//! rmcp server serves (handshakes, listings, rejected calls, notifications, sessions), and puts
//! each request's client and session in view of the attributes inside it.
//!
//! Log lines too, with the `tracing` feature: see the `mcp_analytics::tracing` module (three
//! lines in `main`).
//!
//! With the `testing` feature, `testing::InMemory` takes the place of the Events API, to
//! check in your own tests what your server records.
//!
//! TLS to the Events API is one of three features, as reqwest's and sentry's users know them:
//! - `rustls` (default): rustls with the ring provider and Mozilla's roots (webpki-roots),
//!   the same on every machine. The lightest sound choice: ring builds a few C and assembly
//!   files with a C compiler in seconds, needs no system library, and keeps the binary small.
//! - `rustls-aws-lc`: rustls with the aws-lc-rs provider (FIPS-capable), Mozilla's roots. Its
//!   `aws-lc-sys` compiles a large C library (a C compiler, and CMake on some targets): most of a
//!   minute of build and megabytes of binary more.
//! - `native-tls`: the platform's TLS and trust store (OpenSSL on Linux, which needs its headers
//!   and `pkg-config` to build): for hosts whose own CAs must be trusted.
//!
//! To choose another, turn off the default features (`default-features = false`); with several
//! enabled, `native-tls` wins over `rustls-aws-lc`, which wins over `rustls`. With none, only
//! `http://` URLs (a local receiver) are accepted: [`try_init`] refuses `https://` ones with
//! [`Error::InvalidUrl`], and [`init`] says so on stderr and stays disabled. The
//! proxy named by `HTTPS_PROXY`, `HTTP_PROXY` or `ALL_PROXY` is used unless `NO_PROXY` exempts
//! the host; it must be an `http://` proxy, reached with CONNECT.
//!
//! Architecture, one module per job: `rows` (what a call or a log line records, and the scope
//! it runs in), made safe by `capture` and `redact` on the recording thread → `global` (the
//! lock-free queue and the process-wide state) → `worker` (the thread that drains it) →
//! `batch` and `wire` (batching, NDJSON, gzip; `before_send`, your hook, on each line) →
//! `delivery` (the Events API: HTTP, retries, rate limits; or memory), and `spool` for what
//! cannot be delivered now. `config` resolves the settings, `lifecycle` starts and stops the
//! worker, `stats` counts what became of every row, `panic_hook` keeps a panicking call's
//! message.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

mod batch;
mod before_send;
mod capture;
mod clock;
mod config;
mod delivery;
mod diag;
mod error;
mod global;
mod instrument;
mod lifecycle;
mod panic_hook;
mod queue;
mod redact;
#[cfg(feature = "rmcp")]
#[cfg_attr(docsrs, doc(cfg(feature = "rmcp")))]
pub mod rmcp;
mod rows;
mod spool;
mod stats;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
#[cfg(feature = "tracing")]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
pub mod tracing;
mod wire;
mod worker;

use std::time::Duration;

pub use before_send::Event;
pub use config::Builder;
pub use error::Error;
pub use lifecycle::Guard;
pub use rows::dimensions::Dimensions;
pub use rows::fields::{FieldValue, ToFieldValue};
pub use rows::outcome::CallOutcome;
pub use stats::Stats;

/// Which MCP session a call belongs to.
///
/// Resolution order, most specific first: the attribute's `session = <expr>`; then the innermost
/// scope, set with [`with_session`](session::with_session) (around a future) or
/// [`in_session`](session::in_session) (around a closure), or by the rmcp server wrapper around
/// each request; then what the handler's request says (streamable HTTP's `mcp-session-id`; over
/// HTTP without one, no session: an empty `session`); then one id per process: a stdio MCP
/// server process serves exactly one session.
pub mod session {
    pub use crate::rows::scope::{Scoped, in_session, with_session};
    pub use crate::rows::session::{SessionId, process_session_id};
}

/// How much one row keeps: longer texts are cut at a character boundary and end in `…`; fields
/// past the most a call keeps are counted.
pub mod limits {
    pub use crate::rows::fields::{MAX_FIELD_LEN, MAX_FIELDS};
    pub use crate::rows::text::{MAX_ERROR_LEN, MAX_INTENT_LEN, MAX_NAME_LEN};
}

/// Records each call of a tool handler: `#[mcp_tool]`, `#[mcp_tool(name = "…")]`.
///
/// Works on free functions and methods, sync or `async`, generic or not, on its own or stacked
/// with rmcp's `#[tool]` in either order. The function's signature is unchanged.
///
/// Arguments, all optional:
/// - `name = "literal"`: the event name; default: the function's name.
/// - `name = <expr>`: a name computed on entry, with the arguments in scope (any `Display`).
/// - `session = <expr>`: the call's session id (any `Display`; empty means "not known here").
/// - `crate = path`: where this crate is, when it is used through a re-export.
///
/// ```
/// use mcp_analytics::mcp_tool;
///
/// #[mcp_tool]
/// fn add(a: i64, b: i64) -> i64 {
///     a + b
/// }
///
/// #[mcp_tool(name = "run-select-query")]
/// async fn query(sql: String) -> Result<String, std::io::Error> {
///     Ok(format!("ran {sql}"))
/// }
///
/// struct Server;
///
/// impl Server {
///     #[mcp_tool(session = session_id)]
///     fn echo(&self, session_id: &str, text: String) -> String {
///         text
///     }
/// }
/// # assert_eq!(add(1, 2), 3);
/// ```
///
/// Other crates (`rust-mcp-sdk`) export attributes of the same name: write the path,
/// `#[mcp_analytics::mcp_tool]`, to be explicit.
pub use mcp_analytics_macros::mcp_tool;

/// Records each call of a resource handler; resources are usually named by the URI read.
///
/// Takes the same arguments as [`mcp_tool`].
///
/// ```
/// use mcp_analytics::mcp_resource;
///
/// #[mcp_resource(name = uri)]
/// fn read(uri: &str) -> Result<String, String> {
///     Err(format!("no resource at {uri}"))
/// }
/// # assert!(read("file:///nothing").is_err());
/// ```
pub use mcp_analytics_macros::mcp_resource;

/// Records each call of a prompt handler.
///
/// Takes the same arguments as [`mcp_tool`].
///
/// ```
/// use mcp_analytics::mcp_prompt;
///
/// #[mcp_prompt(name = "code-review")]
/// async fn review(language: &str) -> String {
///     format!("Review this {language} code.")
/// }
/// ```
pub use mcp_analytics_macros::mcp_prompt;

/// Starts analytics from the environment: `TB_API_URL` (default `https://api.tinybird.co`),
/// `TB_WRITE_TOKEN`, and optionally `TB_DATASOURCE` (default `mcp_logs`), each read from the
/// process environment or else from `.env` in the working directory.
///
/// Never fails and never panics: without a token, or with a bad setting, it says why once on
/// stderr and stays disabled (events are counted as dropped). Use [`try_init`] to handle errors,
/// [`builder`] for other settings. A second call while running warns and changes nothing; after
/// [`shutdown`], `init` starts again.
///
/// ```
/// let _analytics = mcp_analytics::init();
/// ```
pub fn init() -> Guard {
    builder().init()
}

/// Starts analytics from the environment, like [`init`], or says why not.
///
/// ```
/// match mcp_analytics::try_init() {
///     Ok(_analytics) => { /* serve with analytics */ }
///     Err(error) => eprintln!("analytics off: {error}"),
/// }
/// ```
pub fn try_init() -> Result<Guard, Error> {
    builder().try_init()
}

/// Settings beyond the environment: datasource, batching, timeouts, queue size. The same as
/// [`Builder::default`].
///
/// ```
/// let _analytics = mcp_analytics::builder()
///     .datasource("mcp_logs")
///     .queue_capacity(65_536)
///     .init();
/// ```
pub fn builder() -> Builder {
    Builder::default()
}

/// Ships every event recorded so far, waiting at most `timeout`. `Ok` means each is delivered,
/// spooled to disk for a later delivery, or counted as failed; when analytics is disabled or
/// shut down there is nothing to ship.
/// `Err(Timeout)` says how many were still on their way; they go on being shipped.
///
/// ```
/// use std::time::Duration;
///
/// let _analytics = mcp_analytics::init();
/// let _ = mcp_analytics::flush(Duration::from_secs(2));
/// ```
pub fn flush(timeout: Duration) -> Result<(), Error> {
    lifecycle::flush(timeout)
}

/// Ships what is queued, waiting at most `timeout`, then stops the worker: with the spool,
/// what is undelivered is written to disk first, then delivered as far as the time allows, and
/// the rest waits on disk for the next run (counted in [`Stats::spooled`], not as given up).
/// Events recorded afterwards are counted as dropped, until the next `init`. What dropping the [`Guard`] does
/// with [`Builder::shutdown_timeout`]; call it yourself where the guard cannot drop (a
/// `static`, `std::process::exit`), or to see the outcome. `Err(Timeout)` says how many events
/// were given up, each counted in [`Stats::failed`] by the time it returns.
///
/// ```
/// use std::time::Duration;
///
/// let analytics = mcp_analytics::init();
/// std::mem::forget(analytics); // say, kept in a static
/// let _ = mcp_analytics::shutdown(Duration::from_secs(2));
/// ```
pub fn shutdown(timeout: Duration) -> Result<(), Error> {
    lifecycle::shutdown(timeout)
}

/// The pipeline's counters: enqueued, sent, dropped, failed, retried, batches.
///
/// ```
/// let stats = mcp_analytics::stats();
/// println!("{} events sent, {} dropped", stats.sent, stats.dropped);
/// ```
pub fn stats() -> Stats {
    stats::COUNTERS.snapshot(global::queued)
}

/// What the attribute macros expand to. Not public API: no stability guarantees.
#[doc(hidden)]
pub mod __private {
    pub use crate::capture::probe::{ViaNoJson, ViaSerialize, ViaSerializeOk};
    pub use crate::instrument::Call;
    #[cfg(feature = "rmcp")]
    pub use crate::rmcp::sites::ServerSites;
    pub use crate::rows::call::{Callsite, Kind};
    pub use crate::rows::fields::{FieldValue, ToFieldValue};
    pub use crate::rows::log::App;
    pub use crate::rows::outcome::{
        Observed, Probe, ViaAnything, ViaCallOutcome, ViaNestedOutcome, ViaResult,
    };
    pub use crate::rows::request::{ClientInfo, RequestFacts, ViaNoFacts, ViaRequestFacts};
    pub use crate::rows::scope::{Active, Scoped};

    /// Calls `f` once. The expansion of a sync body passes its closure through here so that
    /// the closure is inferred as `FnOnce` and may return borrows of what it captured.
    #[inline(always)]
    pub fn call_once<R>(f: impl FnOnce() -> R) -> R {
        f()
    }
}
