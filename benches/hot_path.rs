//! The cost a handler pays for `#[mcp_tool]`: the same function with and without the
//! attribute, sync and async, measured in one run.
//!
//! Run: `cargo bench --bench hot_path`. Each sample times a run of calls short enough to fit in
//! the queue, then empties the queue untimed: the figure is the cost of recording an event with
//! room in the queue, the path every call takes in a healthy server (a full queue's drop path is
//! cheaper, and would flatter the result).

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use mcp_analytics::mcp_tool;

/// Calls per timed run: well under the default queue capacity (16384).
const RUN: u64 = 8_192;

#[inline(never)]
fn baseline(a: u64, b: u64) -> u64 {
    a.wrapping_mul(31).wrapping_add(b)
}

#[mcp_tool]
#[inline(never)]
fn instrumented(a: u64, b: u64) -> u64 {
    a.wrapping_mul(31).wrapping_add(b)
}

#[inline(never)]
async fn baseline_async(a: u64, b: u64) -> u64 {
    a.wrapping_mul(31).wrapping_add(b)
}

#[mcp_tool]
#[inline(never)]
async fn instrumented_async(a: u64, b: u64) -> u64 {
    a.wrapping_mul(31).wrapping_add(b)
}

/// Polls a future that completes without waiting, as a runtime's poll of a ready handler does,
/// without a runtime's own overhead in the measurement.
fn poll_ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("the benchmarked futures never wait"),
    }
}

/// Times `iters` calls of `call` in runs that fit the queue, emptying it between runs.
fn timed(iters: u64, mut call: impl FnMut(u64) -> u64) -> Duration {
    let mut elapsed = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let run = RUN.min(iters - done);
        mcp_analytics::__private::discard_queued();
        let started = Instant::now();
        for i in 0..run {
            black_box(call(black_box(i)));
        }
        elapsed += started.elapsed();
        done += run;
    }
    elapsed
}

fn hot_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("call");
    group.bench_function("sync/baseline", |b| {
        b.iter_custom(|iters| timed(iters, |i| baseline(i, 7)));
    });
    group.bench_function("sync/mcp_tool", |b| {
        b.iter_custom(|iters| timed(iters, |i| instrumented(i, 7)));
    });
    group.bench_function("async/baseline", |b| {
        b.iter_custom(|iters| timed(iters, |i| poll_ready(baseline_async(i, 7))));
    });
    group.bench_function("async/mcp_tool", |b| {
        b.iter_custom(|iters| timed(iters, |i| poll_ready(instrumented_async(i, 7))));
    });
    group.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
