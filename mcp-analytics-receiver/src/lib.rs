//! A strict, in-process, loopback implementation of Tinybird's Events API, for the workspace's
//! tests, examples and benchmarks, and for this crate's binary, `mcp-analytics-receiver`, which
//! prints what a server sends to it.
//!
//! [`Receiver::start`] serves `POST /v0/events` on `127.0.0.1` from its own thread and keeps every
//! accepted [`Row`] and every request ([`RequestLog`]) for inspection. It enforces the contract a
//! real Tinybird workspace does (token, datasource, `Content-Length`, gzip, NDJSON, the `mcp_logs`
//! schema), and then some, so that a client bug shows up as a failed request rather than as
//! silently ingested garbage. [`Receiver::script`] injects failures (error statuses with
//! `Retry-After`, delays, hangs, connection resets, or a seeded random mix of them:
//! [`Scripted::random_mix`]) to exercise the client's retry and timeout paths, and
//! [`Receiver::go_down`] / [`Receiver::go_up`] take the whole endpoint away and bring it back on
//! the same port. [`summary::Table`] sums the accepted calls up per handler.
//! [`ReceiverBuilder::count_only`] is a light mode for benchmarks: the same envelope checks, the
//! lines counted rather than parsed.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! let receiver = mcp_analytics_receiver::Receiver::start();
//! // Point the client at `receiver.url()` with `receiver.token()`, make it send, then:
//! let rows = receiver.wait_for_rows(1, Duration::from_secs(5));
//! assert_eq!(rows[0].level, "info");
//! ```

#![warn(missing_docs)]

mod endpoint;
mod model;
mod rng;
mod schema;
mod server;
mod state;
pub mod summary;
#[cfg(test)]
mod test_client;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use endpoint::Endpoint;
pub use model::{RequestLog, Row, Scripted};
use state::{Config, ExitNotice, Planned, Shared};

/// The token [`Receiver::start`] accepts.
pub const DEFAULT_TOKEN: &str = "test-token";

/// The datasource [`Receiver::start`] accepts: the one the Tinybird MCP analytics template
/// defines.
pub const DEFAULT_DATASOURCE: &str = "mcp_logs";

/// The default body size limit, on the wire (compressed when gzipped): 10 MiB, in line with the
/// Events API's per-request limit.
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// How long dropping a [`Receiver`] waits for its server thread before giving up on it.
const JOIN_TIMEOUT: Duration = Duration::from_secs(2);

/// How long [`Receiver::go_down`] and [`Receiver::go_up`] wait for the server thread to comply.
const TRANSITION_TIMEOUT: Duration = Duration::from_secs(5);

/// How long [`Receiver::go_up`] keeps trying to bind its port while something else holds it.
const REBIND_PATIENCE: Duration = Duration::from_secs(1);

/// A running loopback Events API server. Dropping it (or [`Receiver::shutdown`]) stops it.
///
/// The server runs on its own thread with its own single-threaded tokio runtime, so it works the
/// same from plain `#[test]`s, `#[tokio::test]`s of either flavour, examples and benchmarks.
#[must_use = "the server stops as soon as the Receiver is dropped"]
pub struct Receiver {
    shared: Arc<Shared>,
    addr: SocketAddr,
    /// `None` once stopped.
    server: Option<JoinHandle<()>>,
    /// Serializes [`Receiver::go_down`] and [`Receiver::go_up`].
    transitions: Mutex<()>,
}

/// Configures a [`Receiver`]; see [`Receiver::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct ReceiverBuilder {
    token: String,
    datasources: Vec<String>,
    max_body_bytes: usize,
    port: u16,
    keep_rows: bool,
    count_only: bool,
}

impl Receiver {
    /// Starts a receiver accepting token [`DEFAULT_TOKEN`] for datasource [`DEFAULT_DATASOURCE`].
    ///
    /// # Panics
    ///
    /// If the server cannot be set up (no loopback socket, no thread); see
    /// [`ReceiverBuilder::try_build`] to handle that instead.
    pub fn start() -> Receiver {
        Receiver::builder().build()
    }

    /// A builder, to choose the token, the datasources and the body size limit.
    pub fn builder() -> ReceiverBuilder {
        ReceiverBuilder {
            token: DEFAULT_TOKEN.to_owned(),
            datasources: Vec::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            port: 0,
            keep_rows: true,
            count_only: false,
        }
    }

    /// The base URL, `http://127.0.0.1:PORT`, without a trailing slash: what a client takes as
    /// its Tinybird host.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The token the receiver accepts.
    pub fn token(&self) -> &str {
        &self.shared.config.token
    }

    /// Every accepted row so far, in arrival order.
    pub fn rows(&self) -> Vec<Row> {
        self.shared.lock().rows.clone()
    }

    /// The accepted rows from the `index`-th on (0-based), in arrival order: what arrived since
    /// a caller that has `index` rows already last looked, without copying those again, which
    /// [`Receiver::rows`] would do on every look of a long-running receiver.
    pub fn rows_from(&self, index: usize) -> Vec<Row> {
        self.shared
            .lock()
            .rows
            .get(index..)
            .map_or_else(Vec::new, <[Row]>::to_vec)
    }

    /// Waits until at least `n` rows have been accepted, or `timeout` has elapsed, and returns
    /// every accepted row either way: on timeout the caller's assertion on the count reports
    /// what did arrive.
    pub fn wait_for_rows(&self, n: usize, timeout: Duration) -> Vec<Row> {
        self.shared
            .wait_until(timeout, |store| store.rows.len() >= n)
            .rows
            .clone()
    }

    /// How many rows have been accepted so far, whether or not they are kept (see
    /// [`ReceiverBuilder::keep_rows`]).
    pub fn accepted_rows(&self) -> usize {
        self.shared.lock().accepted_rows
    }

    /// Waits until at least `n` rows have been accepted, or `timeout` has elapsed, and returns
    /// how many were accepted either way. Works whether or not rows are kept.
    pub fn wait_for_accepted_rows(&self, n: usize, timeout: Duration) -> usize {
        self.shared
            .wait_until(timeout, |store| store.accepted_rows >= n)
            .accepted_rows
    }

    /// One entry per HTTP request received so far, rejected ones included, in arrival order.
    pub fn requests(&self) -> Vec<RequestLog> {
        self.shared.lock().requests.clone()
    }

    /// The request log from the `index`-th entry on (0-based), like [`Receiver::rows_from`].
    pub fn requests_from(&self, index: usize) -> Vec<RequestLog> {
        self.shared
            .lock()
            .requests
            .get(index..)
            .map_or_else(Vec::new, <[RequestLog]>::to_vec)
    }

    /// Waits until at least `n` requests have been logged, or `timeout` has elapsed, and returns
    /// the whole request log either way. Useful to observe retries and scripted failures, which
    /// accept no rows.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<RequestLog> {
        self.shared
            .wait_until(timeout, |store| store.requests.len() >= n)
            .requests
            .clone()
    }

    /// Queues canned answers for the next requests, one per request in order, after any already
    /// queued. They apply before any validation, whatever the request.
    ///
    /// # Panics
    ///
    /// On a [`Scripted::Status`] whose status is outside 200..=599 or whose `Retry-After` is not
    /// a valid header value.
    #[track_caller]
    pub fn script(&self, responses: impl IntoIterator<Item = Scripted>) {
        // Validated before locking, so that a bad script panics here without touching the queue.
        let mut planned = Vec::new();
        for scripted in responses {
            planned.push(Planned::new(scripted));
        }
        self.shared.lock().script.extend(planned);
    }

    /// How many scripted answers are still waiting for their request: one is taken as soon as a
    /// request reaches the handler, before anything is read of its body.
    pub fn scripted_left(&self) -> usize {
        self.shared.lock().script.len()
    }

    /// Writes every accepted row's raw NDJSON line to `path`, one per line, in arrival order;
    /// e.g. to keep what a test or example sent for later inspection.
    ///
    /// # Errors
    ///
    /// If the file cannot be created or written.
    pub fn write_ndjson(&self, path: &Path) -> io::Result<()> {
        let mut ndjson = String::new();
        for row in &self.shared.lock().rows {
            ndjson.push_str(&row.raw);
            ndjson.push('\n');
        }
        std::fs::write(path, ndjson)
    }

    /// Takes the endpoint down, as if the service had crashed: the listening socket is closed, so
    /// connecting is refused ("connection refused", which a client knows sent nothing), and every
    /// open connection is broken off with an RST, idle or mid-request. A request in flight gets
    /// no answer and stores nothing (one held by [`Scripted::Hang`] or waiting in a
    /// [`Scripted::Delay`] included; the latter is logged with status 0). Accepted rows, the
    /// request log and the script are kept. Returns once the socket is closed and every
    /// connection is gone; a no-op when already down.
    ///
    /// # Panics
    ///
    /// If the server thread does not comply within a few seconds.
    #[track_caller]
    pub fn go_down(&self) {
        let _turn = self
            .transitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.shared.want_up(false);
        let store = self.shared.wait_until(TRANSITION_TIMEOUT, |store| {
            store.server_exited || (!store.listening && store.open_connections == 0)
        });
        assert!(
            store.server_exited || (!store.listening && store.open_connections == 0),
            "the receiver did not go down within {TRANSITION_TIMEOUT:?} (listening: {}, open \
             connections: {})",
            store.listening,
            store.open_connections
        );
    }

    /// Brings the endpoint back after [`Receiver::go_down`], listening on the same port (so
    /// [`Receiver::url`] is unchanged) and serving as before: rows, request log and script are
    /// those of before. A no-op when already up.
    ///
    /// # Panics
    ///
    /// If [`Receiver::try_go_up`] fails.
    #[track_caller]
    pub fn go_up(&self) {
        self.try_go_up()
            .unwrap_or_else(|error| panic!("the receiver cannot go up again: {error}"));
    }

    /// Like [`Receiver::go_up`], reporting failure instead of panicking.
    ///
    /// The port is bound again at once: std's `TcpListener::bind` sets `SO_REUSEADDR` on Unix, on
    /// the first socket as on this one, and Linux lets a socket with it bind over connections in
    /// `TIME_WAIT` that inherited it from theirs (the receiver's unit tests check this with such
    /// connections), so no `socket2` is needed. While the endpoint is down the port is free,
    /// though, and another socket may take it in the meantime (an ephemeral port picked by the
    /// system); binding is retried for about a second before giving up.
    ///
    /// # Errors
    ///
    /// If the port cannot be bound again, or the server thread has stopped or does not start
    /// listening within a few seconds.
    pub fn try_go_up(&self) -> io::Result<()> {
        let _turn = self
            .transitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.shared.availability().up {
            return Ok(());
        }
        let bound = bind_again(self.addr)?;
        bound.set_nonblocking(true)?;
        self.shared.update(|store| store.handoff = Some(bound));
        self.shared.want_up(true);
        let store = self.shared.wait_until(TRANSITION_TIMEOUT, |store| {
            store.server_exited || store.listening
        });
        if store.listening {
            Ok(())
        } else if store.server_exited {
            Err(io::Error::other("the receiver's server has stopped"))
        } else {
            Err(io::Error::other(format!(
                "the receiver did not listen again within {TRANSITION_TIMEOUT:?}"
            )))
        }
    }

    /// Whether the endpoint is up: true from the start until [`Receiver::go_down`], and again
    /// after [`Receiver::go_up`].
    pub fn is_up(&self) -> bool {
        self.shared.availability().up
    }

    /// Stops the server and joins its thread, like dropping the receiver; reads better at the end
    /// of a test. Requests still held by [`Scripted::Hang`] are released (with a 503).
    pub fn shutdown(self) {
        drop(self);
    }

    /// Bounded: in-flight requests get about a second to finish, and if the thread is somehow
    /// still running after [`JOIN_TIMEOUT`] it is left behind with a warning rather than hanging
    /// the test.
    fn stop(&mut self) {
        let Some(server) = self.server.take() else {
            return;
        };
        self.shared.request_shutdown();
        // `JoinHandle::join` has no timeout, so wait for the thread's exit notice first.
        let exited = self
            .shared
            .wait_until(JOIN_TIMEOUT, |store| store.server_exited)
            .server_exited;
        if !exited {
            eprintln!(
                "mcp-analytics-receiver: the server thread did not stop within \
                 {JOIN_TIMEOUT:?}; leaving it behind"
            );
        } else if server.join().is_err() {
            eprintln!("mcp-analytics-receiver: the server thread panicked");
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

impl fmt::Debug for Receiver {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Receiver")
            .field("url", &self.url())
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl ReceiverBuilder {
    /// The token to accept as `Authorization: Bearer <token>` (default [`DEFAULT_TOKEN`]).
    pub fn token(mut self, token: impl Into<String>) -> ReceiverBuilder {
        self.token = token.into();
        self
    }

    /// A datasource to accept; call it once per datasource. Without any call, only
    /// [`DEFAULT_DATASOURCE`] is accepted. Every datasource has the `mcp_logs` schema.
    pub fn datasource(mut self, datasource: impl Into<String>) -> ReceiverBuilder {
        self.datasources.push(datasource.into());
        self
    }

    /// The largest body accepted, in bytes on the wire (default [`DEFAULT_MAX_BODY_BYTES`]);
    /// larger requests get a 413.
    pub fn max_body_bytes(mut self, max_body_bytes: usize) -> ReceiverBuilder {
        self.max_body_bytes = max_body_bytes;
        self
    }

    /// The loopback port to listen on (default 0: any free port). Always 127.0.0.1.
    pub fn port(mut self, port: u16) -> ReceiverBuilder {
        self.port = port;
        self
    }

    /// Whether accepted rows are kept for [`Receiver::rows`] (default `true`). With `false`,
    /// every request is still validated and parsed line by line, and [`Receiver::accepted_rows`]
    /// counts what was accepted, but the rows are not stored: for throughput benchmarks, where
    /// millions of stored rows would cost the receiver more than the client under test.
    pub fn keep_rows(mut self, keep_rows: bool) -> ReceiverBuilder {
        self.keep_rows = keep_rows;
        self
    }

    /// The light mode (default `false`: strict). With `true`, the receiver still enforces the
    /// envelope of the contract (path, method, token, datasource, `Content-Length`, the body size
    /// limit, gzip when `Content-Encoding` says so, one NDJSON line per row with no empty line)
    /// and answers 200 or 202 as the strict mode does, but counts the lines instead of parsing
    /// each against the `mcp_logs` schema, and keeps no rows ([`Receiver::accepted_rows`] counts
    /// them; [`Receiver::rows`] stays empty). For benchmarks on a small machine, where parsing
    /// every line would take the CPU from the client under test: the strict receiver needs more
    /// CPU per event than the worker that sends them.
    pub fn count_only(mut self, count_only: bool) -> ReceiverBuilder {
        self.count_only = count_only;
        self
    }

    /// Starts the receiver.
    ///
    /// # Panics
    ///
    /// If [`ReceiverBuilder::try_build`] fails.
    #[track_caller]
    pub fn build(self) -> Receiver {
        self.try_build().unwrap_or_else(|error| {
            panic!("cannot start the loopback Events API receiver: {error}")
        })
    }

    /// Starts the receiver, reporting setup failures instead of panicking. The socket is bound
    /// before this returns, so [`Receiver::url`] is immediately usable.
    ///
    /// # Errors
    ///
    /// If the loopback socket, the tokio runtime or the server thread cannot be set up.
    pub fn try_build(self) -> io::Result<Receiver> {
        let mut datasources = self.datasources;
        if datasources.is_empty() {
            datasources.push(DEFAULT_DATASOURCE.to_owned());
        }
        let config = Config {
            token: self.token,
            datasources,
            max_body_bytes: self.max_body_bytes,
            keep_rows: self.keep_rows,
            count_only: self.count_only,
        };

        let std_listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, self.port))?;
        let addr = std_listener.local_addr()?;
        std_listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // Registering the socket needs the runtime's reactor, hence `enter`; the listener then
        // moves to the server thread together with the runtime it belongs to.
        let listener = {
            let _runtime_context = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener)?
        };

        let shared = Arc::new(Shared::new(config));
        let endpoint = Endpoint::new(Arc::clone(&shared), listener, addr);
        let server = thread::Builder::new()
            .name(format!("events-api-receiver-{}", addr.port()))
            .spawn({
                let exit_notice = ExitNotice(Arc::clone(&shared));
                let shared = Arc::clone(&shared);
                // `run` drops the runtime before returning; only then does the notice go out.
                move || {
                    let _exit_notice = exit_notice;
                    server::run(runtime, endpoint, shared);
                }
            })?;
        Ok(Receiver {
            shared,
            addr,
            server: Some(server),
            transitions: Mutex::new(()),
        })
    }
}

/// Binds `addr` again for [`Receiver::try_go_up`], retrying while the port is taken.
fn bind_again(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let started = Instant::now();
    loop {
        match std::net::TcpListener::bind(addr) {
            Err(error)
                if error.kind() == io::ErrorKind::AddrInUse
                    && started.elapsed() < REBIND_PATIENCE =>
            {
                thread::sleep(Duration::from_millis(20));
            }
            bound => return bound,
        }
    }
}

/// The `p`-th percentile of `sorted_values` (ascending) by the nearest-rank method: the smallest
/// value such that at least `p` percent of the values are less than or equal to it. `p` is a
/// percentage in `0.0..=100.0` (e.g. `95.0` for p95); `0.0` gives the minimum. Returns NaN for an
/// empty slice.
///
/// # Panics
///
/// If `p` is outside `0.0..=100.0` (including NaN).
pub fn percentile(sorted_values: &[f64], p: f64) -> f64 {
    assert!(
        (0.0..=100.0).contains(&p),
        "percentile: p must be a percentage in 0..=100, got {p}"
    );
    debug_assert!(
        sorted_values.is_sorted_by(|a, b| a <= b),
        "percentile: values must be sorted ascending"
    );
    let count = sorted_values.len();
    if count == 0 {
        return f64::NAN;
    }
    // Rank = ceil(p * n / 100), 1-based. Multiplying before dividing keeps whole percentiles
    // exact (p95 of 20 values is rank 19, not 20 through a rounding error in 0.95 * 20).
    let rank = (p * count as f64 / 100.0).ceil() as usize;
    sorted_values[rank.clamp(1, count) - 1]
}
