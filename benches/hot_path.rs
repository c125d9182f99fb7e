//! The cost a handler pays for being recorded, with no worker running (see `hot_path_live` for
//! the same with the worker live, as in a server): the same function uninstrumented, with
//! `#[mcp_tool]`, with tracing's `#[instrument]` and with fastrace's `#[trace]`, sync and async,
//! on one thread and on two threads calling at once, all in one run.
//!
//! Run: `cargo bench --bench hot_path` (or `cargo xtask bench`, which runs every benchmark and
//! writes `BENCHMARKS.md`).
//!
//! Every subject has a real consumer, so that no one takes a no-op fast path:
//!
//! - `mcp_tool`: events go onto the bounded queue. Each run of calls fits in it and it is emptied
//!   untimed between runs, so every timed call takes the enqueue path a healthy server takes
//!   (the full queue's drop path is cheaper, and would flatter the figure). No worker runs: the
//!   worker's cost is the `pipeline` benchmark's subject.
//! - `tracing`: `#[instrument(skip_all)]` under a `tracing_subscriber` registry with a layer
//!   that records each span's name and duration when it closes. The layer uses the same clock
//!   (quanta) and the same kind of bounded lock-free queue as mcp-analytics, emptied the same
//!   way, so the difference is tracing's own machinery. `skip_all` spares tracing the recording
//!   of arguments, which `#[mcp_tool]` does not do either.
//! - `fastrace`: `#[trace]` with fastrace's collector running and a reporter that discards. The
//!   calls run under a root span opened untimed before each run (as a server's request span
//!   would be, and as fastrace's own benchmarks do), so each call records a child span; a run
//!   fits in fastrace's span queue (10,240), so no span is dropped. Before each run, untimed,
//!   `fastrace::flush()` lets the collector finish with the previous run's spans, as the other
//!   subjects' buffers are emptied untimed.
//!
//! Async functions are polled once to completion without a runtime, as a runtime polls a ready
//! handler, so that no executor's overhead hides the difference.

mod common;
#[path = "common/subjects.rs"]
mod subjects;

use std::sync::LazyLock;
use std::time::Duration;

use common::{Plain, Recorded, Subject, Timed, poll_ready};
use criterion::{Criterion, criterion_group, criterion_main};
use crossbeam_queue::ArrayQueue;
use subjects::*;
use tracing::Subscriber;
use tracing::span::{Attributes, Id};
use tracing_subscriber::layer::{Context as LayerContext, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// What the tracing layer records of a span: as much as an mcp-analytics event.
struct SpanRecord {
    _name: &'static str,
    _duration: Duration,
}

/// Where the tracing layer puts its records: the same queue and capacity as mcp-analytics.
static RECORDED_SPANS: LazyLock<ArrayQueue<SpanRecord>> =
    LazyLock::new(|| ArrayQueue::new(2 * common::RUN as usize));

/// A span's start, kept in its extensions until it closes.
struct Started(quanta::Instant);

/// A `tracing` layer that records every span's name and duration when it closes.
struct RecordingLayer;

impl<S> Layer<S> for RecordingLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, _attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        if let Some(span) = ctx.span(id) {
            span.extensions_mut()
                .insert(Started(quanta::Instant::now()));
        }
    }

    fn on_close(&self, id: Id, ctx: LayerContext<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        // Copied out, so that the extensions' lock is not held while pushing.
        let Some(started) = span.extensions().get::<Started>().map(|started| started.0) else {
            return;
        };
        let _ = RECORDED_SPANS.push(SpanRecord {
            _name: span.metadata().name(),
            _duration: started.elapsed(),
        });
    }
}

/// A function instrumented with tracing: each run starts with the layer's queue emptied.
struct Traced<F>(F);

impl<F: Fn(u64) -> u64 + Sync> Subject for Traced<F> {
    type Run = ();

    fn start_run(&self) {
        while RECORDED_SPANS.pop().is_some() {}
    }

    #[inline]
    fn call(&self, i: u64) -> u64 {
        (self.0)(i)
    }
}

/// Installs the peers' consumers: tracing's registry with the recording layer, and fastrace's
/// collector with the discarding reporter. mcp-analytics needs nothing: without `init()` its
/// events wait in the queue, which the runs empty.
fn install_consumers() {
    tracing_subscriber::registry().with(RecordingLayer).init();
    start_fastrace();
}

/// Benchmarks every subject with `time` (one thread or two) in group `group`.
fn bench_all(c: &mut Criterion, group: &str, time: fn(u64, &dyn Timed) -> Duration) {
    let mut group = c.benchmark_group(group);
    let subjects: [(&str, &dyn Timed); 9] = [
        ("sync/baseline", &Plain(|i| baseline(i, 7))),
        ("sync/mcp_tool", &Recorded(|i| mcp_tool_sync(i, 7))),
        ("sync/mcp_tool_fields", &Recorded(|i| mcp_tool_fields(i, 7))),
        ("sync/tracing", &Traced(|i| tracing_sync(i, 7))),
        (
            "sync/fastrace",
            &FastTraced {
                call: |i| fastrace_sync(i, 7),
                flush_first: true,
            },
        ),
        (
            "async/baseline",
            &Plain(|i| poll_ready(baseline_async(i, 7))),
        ),
        (
            "async/mcp_tool",
            &Recorded(|i| poll_ready(mcp_tool_async(i, 7))),
        ),
        (
            "async/tracing",
            &Traced(|i| poll_ready(tracing_async(i, 7))),
        ),
        (
            "async/fastrace",
            &FastTraced {
                call: |i| poll_ready(fastrace_async(i, 7)),
                flush_first: true,
            },
        ),
    ];
    for (name, subject) in subjects {
        group.bench_function(name, |b| b.iter_custom(|iters| time(iters, subject)));
    }
    group.finish();
}

fn hot_path(c: &mut Criterion) {
    install_consumers();
    bench_all(c, "one_thread", |iters, subject| subject.one_thread(iters));
    bench_all(c, "two_threads", |iters, subject| {
        subject.two_threads(iters)
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = hot_path
}
criterion_main!(benches);
