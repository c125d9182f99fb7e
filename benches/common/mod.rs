//! What the benchmarks share: timing a function's calls, on one thread or on two at once, with
//! whatever its instrumentation needs around each run of calls kept out of the timing; timing
//! them with the worker live, in rounds interleaved with an uninstrumented twin ([`live`]); the
//! workload a server records ([`workload`]); a thread's CPU time (the worker's, the
//! receiver's); and handing each benchmark's medians to `cargo xtask bench`, which writes
//! `BENCHMARKS.md`.

// Each benchmark compiles this module on its own and uses part of it.
#![allow(dead_code)]

pub mod live;
pub mod workload;

use std::future::Future;
use std::hint::black_box;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Barrier;
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

/// Calls per timed run on one thread: two of the default queue's rings (1,024 events each, of
/// 16,384 in all), so that every timed call has room, as it has in a server whose worker keeps
/// the queue drained, and a run moves to a second ring once, as a busy thread does.
pub const RUN: u64 = 2_048;

/// A benchmarked function, and what its instrumentation needs around a run of calls.
pub trait Subject: Sync {
    /// Held on each calling thread through one run of calls: set up and dropped untimed.
    type Run;

    /// Prepares one run on the calling thread: empties the buffer the calls fill (so every
    /// timed call takes the path a healthy server's calls take, not a full buffer's cheaper
    /// one), or opens the parent span the calls record under.
    fn start_run(&self) -> Self::Run;

    /// One call.
    fn call(&self, i: u64) -> u64;
}

/// A function with nothing to prepare: the uninstrumented baseline.
pub struct Plain<F>(pub F);

impl<F: Fn(u64) -> u64 + Sync> Subject for Plain<F> {
    type Run = ();

    fn start_run(&self) {}

    #[inline]
    fn call(&self, i: u64) -> u64 {
        (self.0)(i)
    }
}

/// A function instrumented with mcp-analytics: each run starts with the event queue emptied.
pub struct Recorded<F>(pub F);

impl<F: Fn(u64) -> u64 + Sync> Subject for Recorded<F> {
    type Run = ();

    fn start_run(&self) {
        mcp_analytics::testing::discard_queued();
    }

    #[inline]
    fn call(&self, i: u64) -> u64 {
        (self.0)(i)
    }
}

/// Times `iters` calls on this thread, in runs of at most [`RUN`].
pub fn timed(iters: u64, subject: &impl Subject) -> Duration {
    timed_runs(iters, subject, None)
}

/// Times `iters` calls on this thread while a second thread makes as many calls of the same
/// function at the same time: the cost of a call under contention for the queue, the clock and
/// the caches. Each run starts on both threads at once (and the next run only once both have
/// finished), so the two threads' timed calls overlap; this thread's time is returned.
pub fn contended(iters: u64, subject: &impl Subject) -> Duration {
    let barrier = Barrier::new(2);
    thread::scope(|scope| {
        scope.spawn(|| timed_runs(iters, subject, Some(&barrier)));
        timed_runs(iters, subject, Some(&barrier))
    })
}

fn timed_runs(iters: u64, subject: &impl Subject, together: Option<&Barrier>) -> Duration {
    let mut elapsed = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let run = RUN.min(iters - done);
        let prepared = subject.start_run();
        if let Some(barrier) = together {
            barrier.wait();
        }
        let started = Instant::now();
        for i in 0..run {
            black_box(subject.call(black_box(i)));
        }
        elapsed += started.elapsed();
        drop(prepared);
        // Neither thread prepares the next run (emptying the shared queue) while the other
        // still makes calls.
        if let Some(barrier) = together {
            barrier.wait();
        }
        done += run;
    }
    elapsed
}

/// The median of `values`; NaN when there are none (a benchmark filtered out).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    mcp_analytics_receiver::percentile(&values, 50.0)
}

/// Prints a benchmark's summary and, when `MCP_ANALYTICS_BENCH_OUT` names a folder (as
/// `cargo xtask bench` does), writes it there as `<name>.json`.
pub fn report(name: &str, summary: &serde_json::Value) {
    println!("\n{name} summary (medians):\n{summary:#}");
    if let Some(folder) = std::env::var_os("MCP_ANALYTICS_BENCH_OUT") {
        let path = PathBuf::from(folder).join(format!("{name}.json"));
        std::fs::create_dir_all(path.parent().expect("a file in a folder"))
            .and_then(|()| std::fs::write(&path, format!("{summary:#}\n")))
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
        println!("written to {}", path.display());
    }
}

/// Polls a future that completes without waiting, as a runtime's poll of a ready handler does,
/// without a runtime's own overhead in the measurement.
pub fn poll_ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("the benchmarked futures never wait"),
    }
}

/// Object-safe timing, so that one table lists subjects of different types; the dynamic call
/// happens once per run of calls, not once per call.
pub trait Timed: Sync {
    fn one_thread(&self, iters: u64) -> Duration;
    fn two_threads(&self, iters: u64) -> Duration;
}

impl<S: Subject> Timed for S {
    fn one_thread(&self, iters: u64) -> Duration {
        timed(iters, self)
    }

    fn two_threads(&self, iters: u64) -> Duration {
        contended(iters, self)
    }
}

/// A thread's CPU time, read from `/proc/self/task/<tid>/schedstat` (nanoseconds on CPU).
pub struct ThreadCpu {
    schedstat: PathBuf,
}

impl ThreadCpu {
    /// The thread of this process whose name starts with `prefix` (Linux shortens thread names
    /// to 15 bytes), if `/proc` shows one within a second: a new thread names itself once it
    /// runs.
    pub fn find(prefix: &str) -> Option<ThreadCpu> {
        let started = Instant::now();
        loop {
            let found = std::fs::read_dir("/proc/self/task")
                .ok()?
                .flatten()
                .find_map(|task| {
                    let name = std::fs::read_to_string(task.path().join("comm")).ok()?;
                    name.starts_with(prefix).then(|| ThreadCpu {
                        schedstat: task.path().join("schedstat"),
                    })
                });
            if found.is_some() || started.elapsed() > Duration::from_secs(1) {
                return found;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn used(&self) -> Duration {
        std::fs::read_to_string(&self.schedstat)
            .ok()
            .and_then(|line| line.split_whitespace().next()?.parse().ok())
            .map_or(Duration::ZERO, Duration::from_nanos)
    }
}
