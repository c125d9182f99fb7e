//! The cost a handler pays for `#[mcp_tool]`: the same function with and without the
//! attribute, sync and async, measured in one run.
//!
//! Run: `cargo bench --bench hot_path`. Each sample times a run of calls short enough to fit in
//! the queue, then empties the queue untimed: the figure is the cost of recording an event with
//! room in the queue, the path every call takes in a healthy server (a full queue's drop path is
//! cheaper, and would flatter the result).

mod common;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use common::timed;
use criterion::{Criterion, criterion_group, criterion_main};
use mcp_analytics::mcp_tool;

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
