//! What a handler pays for `#[mcp_tool]` when the Events API is up, hanging, or down: the same
//! function, in the same run, with the worker running against each endpoint in turn. The
//! handler never waits on the network, so the three should cost the same.
//!
//! Run: `cargo bench --bench outage`. As in `hot_path`, each sample times a run of calls short
//! enough to fit in the queue and then empties the queue untimed, so every timed call takes the
//! enqueue path (a full queue's drop path is cheaper and would flatter an outage). Here the
//! worker runs meanwhile, pointed at:
//!
//! - **up**: a live loopback receiver. It first ingests a real event (checked), then answers
//!   `202 Accepted` to every request without storing rows: millions of calls would otherwise
//!   pile up gigabytes of rows in it. The worker does its full work: drain, encode, gzip, POST.
//! - **hanging**: a receiver that accepts each request and never answers.
//! - **down**: a loopback port nothing listens on: every connection is refused and retried.
//!
//! Besides criterion's own report, prints the median ns per call of each at the end (and hands
//! them to `cargo xtask bench`).

mod common;

use std::net::TcpListener;
use std::sync::Mutex;
use std::time::Duration;

use criterion::Criterion;
use mcp_analytics::{Guard, mcp_tool};
use mcp_analytics_receiver::{Receiver, Scripted};

/// Criterion's samples per benchmark; the medians are taken over these.
const SAMPLES: usize = 50;

#[mcp_tool]
#[inline(never)]
fn instrumented(a: u64, b: u64) -> u64 {
    a.wrapping_mul(31).wrapping_add(b)
}

/// Nanoseconds per call of each `iter_custom` invocation of the benchmark running now.
static PER_CALL: Mutex<Vec<f64>> = Mutex::new(Vec::new());

/// Times `iters` calls, keeping each invocation's figure for the medians.
fn timed(iters: u64) -> Duration {
    let elapsed = common::timed(iters, &common::Recorded(|i| instrumented(i, 7)));
    if iters > 0 {
        PER_CALL
            .lock()
            .unwrap()
            .push(elapsed.as_nanos() as f64 / iters as f64);
    }
    elapsed
}

/// Runs one benchmark and returns the median of its measured samples (criterion's warm-up
/// invocations come first and are left out), or `None` if it was filtered out.
fn bench(c: &mut Criterion, name: &str) -> Option<f64> {
    PER_CALL.lock().unwrap().clear();
    c.bench_function(name, |b| b.iter_custom(timed));
    let per_call = PER_CALL.lock().unwrap();
    let measured = per_call[per_call.len().saturating_sub(SAMPLES)..].to_vec();
    (!measured.is_empty()).then(|| common::median(measured))
}

fn start(url: &str, token: &str, shutdown_timeout: Duration) -> Guard {
    mcp_analytics::builder()
        .read_env(false)
        .api_url(url)
        .token(token)
        // The in-memory bound alone: what the handler pays while the queue fills and drops.
        .spool(false)
        .shutdown_timeout(shutdown_timeout)
        .try_init()
        .expect("analytics starts")
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(SAMPLES);
    let mut medians = Vec::new();

    // (a) Up.
    {
        let receiver = Receiver::start();
        let _analytics = start(&receiver.url(), receiver.token(), Duration::from_secs(10));
        instrumented(1, 2);
        mcp_analytics::flush(Duration::from_secs(10)).expect("the receiver is up");
        assert_eq!(receiver.rows().len(), 1, "a real event went through");
        let accepted = r#"{"successful_rows":0,"quarantined_rows":0}"#;
        receiver.script(std::iter::repeat_n(
            Scripted::Status {
                status: 202,
                retry_after: None,
                body: accepted.to_owned(),
            },
            100_000,
        ));
        let before = mcp_analytics::stats();
        let median = bench(&mut c, "outage/up");
        let after = mcp_analytics::stats();
        if median.is_some() {
            assert!(after.sent > before.sent, "the worker shipped meanwhile");
            assert_eq!(after.failed, before.failed);
        }
        medians.push(("up", median));
        mcp_analytics::shutdown(Duration::from_secs(10)).expect("the receiver is up");
    }

    // (b) Hanging: the worker's request is held unanswered throughout.
    {
        let receiver = Receiver::start();
        receiver.script(std::iter::repeat_n(Scripted::Hang, 1_000));
        let _analytics = start(
            &receiver.url(),
            receiver.token(),
            Duration::from_millis(300),
        );
        instrumented(1, 2);
        mcp_analytics::flush(Duration::from_millis(100)).expect_err("the endpoint hangs");
        let held = receiver.wait_for_requests(1, Duration::from_secs(10));
        assert!(
            held.len() == 1 && held[0].status == 0,
            "the request is held: {held:?}"
        );
        let before = mcp_analytics::stats();
        medians.push(("hanging", bench(&mut c, "outage/hanging")));
        let after = mcp_analytics::stats();
        assert!(receiver.requests().iter().all(|r| r.status == 0));
        assert_eq!(after.sent, before.sent, "nothing was answered");
        let _ = mcp_analytics::shutdown(Duration::from_millis(300)); // times out, as it must
    }

    // (c) Down: connections refused.
    {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
            listener.local_addr().unwrap().port()
        };
        let _analytics = start(
            &format!("http://127.0.0.1:{port}"),
            "test-token",
            Duration::from_millis(300),
        );
        let before = mcp_analytics::stats();
        let median = bench(&mut c, "outage/down");
        let after = mcp_analytics::stats();
        if median.is_some() {
            assert!(after.retried > before.retried, "the worker was retrying");
            assert_eq!(after.sent, before.sent);
        }
        medians.push(("down", median));
        let _ = mcp_analytics::shutdown(Duration::from_millis(300)); // times out, as it must
    }

    c.final_summary();
    let summary: serde_json::Map<String, serde_json::Value> = medians
        .into_iter()
        .map(|(endpoint, median)| (endpoint.to_owned(), median.into()))
        .collect();
    common::report("outage", &summary.into());
}
