//! A known mix of instrumented calls, for checking the Tinybird project's metrics against the
//! truth: `tests/e2e/test_tinybird.py` runs it, loads what it sent into ClickHouse (chdb), runs
//! the `tinybird/` pipes and compares the Prometheus output with what this program did.
//!
//! ```text
//! cargo run --example metrics_workload -- OUTDIR
//! ```
//!
//! Several tools, prompts and resources are called from four sessions (three async, one sync)
//! and outside any session: some calls fail, some panic (caught here), one per async session is
//! cancelled by a timeout, and sleeps spread durations over the latency histogram's buckets.
//! Events go to a loopback Events API receiver started in-process. Writes to OUTDIR:
//!
//! - `mcp_logs.ndjson`: every row the receiver accepted, as received, the log lines of the
//!   `tracing` layer (`kind = "log"`, some written inside a tool) among them;
//! - `truth.json`: every call as this program saw it (kind, name, session, outcome observed
//!   from the call's result, duration measured around the call), independently of analytics.
//!
//! Exits non-zero if a row is missing, so the files always describe the same calls.

use std::future::Future;
use std::panic;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mcp_analytics::session::{in_session, with_session};
use mcp_analytics::{mcp_prompt, mcp_resource, mcp_tool};
use mcp_analytics_receiver::Receiver;
use serde::Serialize;
use tracing_subscriber::prelude::*;

/// The message of every panic this program causes on purpose; the panic hook keeps those quiet.
const INJECTED_PANIC: &str = "injected panic (metrics_workload)";

/// Sleeps of `search`, one per latency bucket from the first (<= 10 ms) to the seventh
/// (<= 500 ms), with margins so that timer slack does not move a call across a bound.
const SEARCH_DELAYS_MS: [u64; 7] = [1, 4, 13, 30, 70, 140, 320];

/// How long a cancelled call gets before its future is dropped.
const CANCEL_AFTER: Duration = Duration::from_millis(30);

/// The sessions whose calls run concurrently, one task each.
const ASYNC_SESSIONS: [&str; 3] = ["session-alpha", "session-beta", "session-gamma"];

/// The session of the calls made from a plain thread.
const SYNC_SESSION: &str = "session-sync";

#[mcp_tool]
async fn search(query: &str, delay: Duration) -> Result<String, String> {
    tokio::time::sleep(delay).await;
    Ok(format!("results for {query}"))
}

#[mcp_tool(name = "fetch-weather")]
async fn weather(city: &str) -> Result<String, String> {
    // Log lines written inside a tool, an error among them: they must not count as calls.
    tracing::info!(city, "looking up the weather");
    tokio::time::sleep(Duration::from_millis(15)).await;
    match city {
        "Atlantis" => {
            tracing::error!(city, "no weather station");
            Err(format!("no weather station in {city}"))
        }
        _ => Ok(format!("sunny in {city}")),
    }
}

#[mcp_tool]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[mcp_tool]
fn divide(a: i64, b: i64) -> Result<i64, String> {
    a.checked_div(b)
        .ok_or_else(|| format!("cannot divide {a} by {b}"))
}

#[mcp_tool]
fn flaky(explode: bool) -> &'static str {
    if explode {
        panic!("{INJECTED_PANIC}");
    }
    "fine"
}

#[mcp_tool(name = "crash-async")]
async fn crash() -> String {
    tokio::task::yield_now().await;
    panic!("{INJECTED_PANIC}")
}

#[mcp_tool(name = "export-report")]
async fn export_report() -> String {
    tokio::time::sleep(Duration::from_millis(500)).await;
    "report".to_owned()
}

#[mcp_prompt]
fn greeting(name: &str) -> String {
    format!("Say hello to {name}.")
}

#[mcp_prompt]
async fn summarize(text: &str) -> Result<String, String> {
    tokio::time::sleep(Duration::from_millis(2)).await;
    if text.is_empty() {
        return Err("nothing to summarize".to_owned());
    }
    Ok(format!("Summarize: {text}"))
}

#[mcp_resource(name = uri)]
fn read_resource(uri: &str) -> Result<String, String> {
    uri.strip_prefix("mem://")
        .map(|key| format!("value of {key}"))
        .ok_or_else(|| format!("unknown resource {uri}"))
}

/// What a call ended with, as the caller saw it.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
enum Outcome {
    Ok,
    Error,
    Panic,
    Cancelled,
}

impl Outcome {
    fn of<T, E>(result: &Result<T, E>) -> Outcome {
        if result.is_ok() {
            Outcome::Ok
        } else {
            Outcome::Error
        }
    }
}

/// One call, as made and observed by this program.
#[derive(Debug, Serialize)]
struct Call {
    kind: &'static str,
    name: String,
    session: String,
    outcome: Outcome,
    /// Measured around the call by the caller: a little more than what the library records.
    measured_ms: f64,
}

/// `truth.json`.
#[derive(Debug, Serialize)]
struct Truth {
    app_name: &'static str,
    version: &'static str,
    calls: Vec<Call>,
}

/// Every call made, from any task or thread.
#[derive(Clone, Default)]
struct Ledger(Arc<Mutex<Vec<Call>>>);

impl Ledger {
    fn record(
        &self,
        (kind, name): (&'static str, &str),
        session: &str,
        started: Instant,
        outcome: Outcome,
    ) {
        let call = Call {
            kind,
            name: name.to_owned(),
            session: session.to_owned(),
            outcome,
            measured_ms: started.elapsed().as_secs_f64() * 1000.0,
        };
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(call);
    }

    /// Times a synchronous call of `handler` (its kind and name, as its event records them),
    /// catching a panic as the outcome `panic`.
    fn call_sync<T, E>(
        &self,
        handler: (&'static str, &str),
        session: &str,
        call: impl FnOnce() -> Result<T, E> + panic::UnwindSafe,
    ) {
        let started = Instant::now();
        let outcome =
            panic::catch_unwind(call).map_or(Outcome::Panic, |result| Outcome::of(&result));
        self.record(handler, session, started, outcome);
    }

    /// Times an asynchronous call of `handler` that returns a `Result`.
    async fn call_async<T, E>(
        &self,
        handler: (&'static str, &str),
        session: &str,
        call: impl Future<Output = Result<T, E>>,
    ) {
        let started = Instant::now();
        let result = call.await;
        self.record(handler, session, started, Outcome::of(&result));
    }

    fn into_calls(self) -> Vec<Call> {
        let mut calls = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut *calls)
    }
}

/// What one async session does; `index` varies the mix a little between sessions.
async fn async_session(ledger: Ledger, session: &'static str, index: usize) {
    for (i, delay_ms) in SEARCH_DELAYS_MS.iter().enumerate() {
        let query = format!("query {index}.{i}");
        let delay = Duration::from_millis(*delay_ms);
        ledger
            .call_async(("tool", "search"), session, search(&query, delay))
            .await;
    }
    for city in ["Oslo", "Lisbon", "Atlantis"] {
        ledger
            .call_async(("tool", "fetch-weather"), session, weather(city))
            .await;
    }
    for i in 0..5 {
        ledger.call_sync(("tool", "add"), session, || Ok::<_, ()>(add(i, i)));
    }
    for b in [1, 0, 2, 0] {
        ledger.call_sync(("tool", "divide"), session, || divide(10, b));
    }
    for explode in [false, true] {
        ledger.call_sync(("tool", "flaky"), session, || Ok::<_, ()>(flaky(explode)));
    }
    if index.is_multiple_of(2) {
        // A panic in an async handler surfaces through its task, as it would in a server.
        let started = Instant::now();
        let joined = tokio::spawn(with_session(session, crash())).await;
        let outcome = match joined {
            Ok(_) => Outcome::Ok,
            Err(error) if error.is_panic() => Outcome::Panic,
            Err(_) => Outcome::Cancelled,
        };
        ledger.record(("tool", "crash-async"), session, started, outcome);
    }
    // A client that gives up: the handler's future is dropped before it finishes.
    let started = Instant::now();
    let outcome = match tokio::time::timeout(CANCEL_AFTER, export_report()).await {
        Ok(_) => Outcome::Ok,
        Err(_elapsed) => Outcome::Cancelled,
    };
    ledger.record(("tool", "export-report"), session, started, outcome);

    for name in ["Ada", "Grace"] {
        ledger.call_sync(("prompt", "greeting"), session, || {
            Ok::<_, ()>(greeting(name))
        });
    }
    for text in ["a long text", ""] {
        ledger
            .call_async(("prompt", "summarize"), session, summarize(text))
            .await;
    }
    let mut uris = vec!["mem://a", "mem://b", "file:///etc/missing"];
    if index == 1 {
        // Quotes and a backslash must survive as Prometheus label values.
        uris.push(r#"mem://notes?q="rust"\n"#);
    }
    for uri in uris {
        ledger.call_sync(("resource", uri), session, || read_resource(uri));
    }
}

/// Calls made from a plain thread: in a `in_session` scope, then outside any session, where the
/// process's session applies.
fn sync_calls(ledger: &Ledger) {
    in_session(SYNC_SESSION, || {
        for i in 0..3 {
            ledger.call_sync(("tool", "add"), SYNC_SESSION, || Ok::<_, ()>(add(i, 1)));
        }
        ledger.call_sync(("tool", "divide"), SYNC_SESSION, || divide(1, 0));
        ledger.call_sync(("prompt", "greeting"), SYNC_SESSION, || {
            Ok::<_, ()>(greeting("Linus"))
        });
    });
    let process_session = mcp_analytics::session::process_session_id();
    for i in 0..2 {
        ledger.call_sync(("tool", "add"), process_session.as_str(), || {
            Ok::<_, ()>(add(i, 2))
        });
    }
}

/// Keeps the injected panics off stderr; any other panic is reported as usual.
fn quiet_injected_panics() {
    let report = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        // `panic!("{..}")` formats its message into a `String` payload.
        let message = info.payload().downcast_ref::<String>();
        if message.map(String::as_str) != Some(INJECTED_PANIC) {
            report(info);
        }
    }));
}

fn main() {
    let Some(out_dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: metrics_workload OUTDIR");
        std::process::exit(2);
    };
    if let Err(error) = run(&out_dir) {
        eprintln!("metrics_workload: {error}");
        std::process::exit(1);
    }
}

fn run(out_dir: &Path) -> Result<(), String> {
    quiet_injected_panics();
    // Log lines through the same pipeline (`kind = "log"` rows).
    tracing_subscriber::registry()
        .with(mcp_analytics::tracing::layer!())
        .init();
    tracing::warn!("workload starting");
    let receiver = Receiver::start();
    let _analytics = mcp_analytics::builder()
        .read_env(false)
        .api_url(receiver.url())
        .token(receiver.token())
        .spool(false)
        .init();

    let ledger = Ledger::default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .map_err(|error| format!("tokio runtime: {error}"))?;
    runtime.block_on(async {
        let tasks: Vec<_> = ASYNC_SESSIONS
            .iter()
            .enumerate()
            .map(|(index, &session)| {
                tokio::spawn(with_session(
                    session,
                    async_session(ledger.clone(), session, index),
                ))
            })
            .collect();
        for task in tasks {
            task.await
                .map_err(|error| format!("a session task failed: {error}"))?;
        }
        Ok::<_, String>(())
    })?;
    let sync_ledger = ledger.clone();
    std::thread::spawn(move || sync_calls(&sync_ledger))
        .join()
        .map_err(|_| "the sync session's thread panicked".to_owned())?;

    mcp_analytics::shutdown(Duration::from_secs(3))
        .map_err(|error| format!("analytics shutdown: {error}"))?;
    let calls = ledger.into_calls();
    let call_rows = receiver
        .rows()
        .iter()
        .filter(|row| row.record_str("kind") != "log")
        .count();
    if call_rows != calls.len() {
        return Err(format!(
            "{} calls made but {call_rows} call rows received (stats: {:?})",
            calls.len(),
            mcp_analytics::stats()
        ));
    }

    std::fs::create_dir_all(out_dir).map_err(|error| format!("{}: {error}", out_dir.display()))?;
    let ndjson = out_dir.join("mcp_logs.ndjson");
    receiver
        .write_ndjson(&ndjson)
        .map_err(|error| format!("{}: {error}", ndjson.display()))?;
    let truth = Truth {
        app_name: env!("CARGO_PKG_NAME"),
        version: env!("CARGO_PKG_VERSION"),
        calls,
    };
    let truth_path = out_dir.join("truth.json");
    let json = serde_json::to_string_pretty(&truth).map_err(|error| error.to_string())?;
    std::fs::write(&truth_path, json)
        .map_err(|error| format!("{}: {error}", truth_path.display()))?;
    println!(
        "{} calls; wrote {} and {}",
        truth.calls.len(),
        ndjson.display(),
        truth_path.display()
    );
    Ok(())
}
