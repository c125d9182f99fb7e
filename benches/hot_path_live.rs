//! The cost a handler pays for being recorded in a server: the worker live and shipping while
//! the calls are timed. `#[mcp_tool]`, tracing's `#[instrument]` and fastrace's `#[trace]`, sync
//! and async, each against the same function uninstrumented, in one process and one run.
//!
//! Run: `cargo bench --bench hot_path_live` (about 40 seconds; or `cargo xtask bench`, which
//! runs every benchmark and writes `BENCHMARKS.md`). Writes `hot_path_live.json` where
//! `MCP_ANALYTICS_BENCH_OUT` says.
//!
//! How (see `common::live`):
//!
//! - **The worker is live**: analytics starts as a server starts it (the default configuration,
//!   only the endpoint and its token set, spool off) and ships to an in-process loopback Events
//!   API in its light mode, before anything is timed. Nothing empties the queue but the worker.
//! - **Rounds, interleaved**: a round is 500 calls, timed as one; each subject round is paired
//!   with a round of its uninstrumented twin, and the added ns per call is the median over rounds
//!   of (subject round - twin round) / 500, with the 10th and 90th percentiles. The subjects take
//!   turns round by round, so that a busy moment of the machine weighs on all of them alike.
//! - **Paced**: a round starts at most every 2 ms (the thread sleeps in between, untimed): at
//!   most 250,000 events a second, which the worker ships as they come, so that every timed call
//!   takes the enqueue path, never the (cheaper) drop path of a full queue. `stats().dropped` is
//!   read around every round, untimed, and rounds during which it moved are counted and
//!   reported (expected: none).
//!
//! The peers, each with a consumer running as it would in a server:
//!
//! - tracing: `#[instrument(skip_all)]` under a `tracing_subscriber` registry with a layer that
//!   only counts span closes (one atomic add): the least a consumer can do, so that the figure
//!   is tracing's own machinery (span allocation in the registry, dispatch).
//! - fastrace: `#[trace]` with its collector running and a reporter that discards. Each round's
//!   calls record under a root span opened untimed before the round and ended untimed after it
//!   (as a server's request span would be), so each call records one child span. Unlike the
//!   no-worker `hot_path`, nothing waits for the collector between rounds (`fastrace::flush()`):
//!   its thread collects the previous round's spans while the next round runs, as in a server,
//!   just as our worker ships while our calls run. A round (500 spans) fits fastrace's span queue.
//!
//! Async functions are polled once to completion with a no-op waker, as a runtime polls a ready
//! handler, so that no executor's overhead hides the difference.

mod common;
#[path = "common/subjects.rs"]
mod subjects;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use common::Plain;
use common::live::{Live, Pair, Paired, interleaved};
use common::poll_ready;
use serde_json::{Map, Value, json};
use subjects::*;
use tracing::Subscriber;
use tracing::span::Id;
use tracing_subscriber::layer::{Context as LayerContext, Layer};
use tracing_subscriber::prelude::*;

/// Measured rounds per subject; the figures are taken over these.
const ROUNDS: usize = 2_000;
/// Rounds per subject run first and left out: caches, the clock's calibration, the first batches.
const WARM_UP: usize = 100;

/// Spans closed, counted by [`CountingLayer`].
static CLOSED: AtomicU64 = AtomicU64::new(0);

/// A `tracing` layer that only counts span closes.
struct CountingLayer;

impl<S: Subscriber> Layer<S> for CountingLayer {
    fn on_close(&self, _id: Id, _ctx: LayerContext<'_, S>) {
        CLOSED.fetch_add(1, Relaxed);
    }
}

fn main() {
    tracing_subscriber::registry().with(CountingLayer).init();
    start_fastrace();
    let live = Live::start();

    let sync_twin = || Plain(|i| baseline(i, 7));
    let async_twin = || Plain(|i| poll_ready(baseline_async(i, 7)));
    let subjects: [(&str, &dyn Paired); 6] = [
        (
            "sync/mcp_tool",
            &Pair(Plain(|i| mcp_tool_sync(i, 7)), sync_twin()),
        ),
        (
            "async/mcp_tool",
            &Pair(Plain(|i| poll_ready(mcp_tool_async(i, 7))), async_twin()),
        ),
        (
            "sync/tracing",
            &Pair(Plain(|i| tracing_sync(i, 7)), sync_twin()),
        ),
        (
            "async/tracing",
            &Pair(Plain(|i| poll_ready(tracing_async(i, 7))), async_twin()),
        ),
        (
            "sync/fastrace",
            &Pair(
                FastTraced {
                    call: |i| fastrace_sync(i, 7),
                    flush_first: false,
                },
                sync_twin(),
            ),
        ),
        (
            "async/fastrace",
            &Pair(
                FastTraced {
                    call: |i| poll_ready(fastrace_async(i, 7)),
                    flush_first: false,
                },
                async_twin(),
            ),
        ),
    ];

    let before = live.settle();
    let closed_before = CLOSED.load(Relaxed);
    let paired: Vec<&dyn Paired> = subjects.iter().map(|(_, subject)| *subject).collect();
    let figures = interleaved(&paired, ROUNDS, WARM_UP);
    let after = live.settle();

    // Each subject's calls reached its consumer: one event or one closed span per call.
    let calls = ((ROUNDS + WARM_UP) as u64) * common::live::ROUND;
    let mcp_subjects = 2;
    assert_eq!(
        after.enqueued + after.dropped - before.enqueued - before.dropped,
        mcp_subjects * calls,
        "every recorded call was enqueued or dropped"
    );
    assert_eq!(CLOSED.load(Relaxed) - closed_before, 2 * calls);

    let mut results = Map::new();
    for ((name, _), rounds) in subjects.iter().zip(&figures) {
        results.insert((*name).to_owned(), rounds.summary());
    }
    let summary = json!({
        "round_calls": common::live::ROUND,
        "round_period_ms": common::live::ROUND_PERIOD.as_secs_f64() * 1e3,
        "rounds": ROUNDS,
        "dropped": after.dropped - before.dropped,
        "sent": after.sent - before.sent,
        "subjects": Value::Object(results),
    });
    common::report("hot_path_live", &summary);
}
