//! Sustained delivery, as a server sees it: events recorded at a fixed rate for a while, by one
//! thread or two, with nothing slowing the handlers down when the worker falls behind. What
//! reaches the Events API, what is dropped (the queue full), and what the worker costs.
//!
//! Run: `cargo bench --bench sustained` (about a minute; or `cargo xtask bench`, which runs
//! every benchmark and writes `BENCHMARKS.md`).
//!
//! Each configuration (1 thread at 100,000, 300,000 and 600,000 events/s; 2 threads at 150,000
//! and 300,000 events/s each) runs [`REPEATS`] times, each run a fresh `try_init` with the
//! default configuration (only the endpoint and its token set, the spool in a fresh temporary
//! directory rather than the user's cache) and a `shutdown` at its end:
//!
//! - [`EVENTS`] events in all, split evenly among the threads, recorded through the real
//!   attributes (tools, a prompt and a resource, one call in 16 failing, sessions rotating);
//! - paced: every 1 ms tick, a thread records the events due by then (its rate / 1,000 a tick,
//!   more when it woke up late, so that the rate holds on average), then sleeps until the next
//!   tick. It never looks at the queue: a handler does not wait for the worker, so when the
//!   queue is full the event is dropped (counted in `stats().dropped`), as in a server;
//! - then `flush()`, which returns once the receiver acknowledged what the worker took.
//!
//! Every event is accounted for (asserted): recorded = delivered directly + dropped + failed +
//! spooled, where delivered directly is what the receiver counted minus what was replayed from
//! the spool. The receiver is the loopback Events API in its light mode (envelope checked, lines
//! counted, not parsed), so that on two cores it leaves the worker its CPU.
//!
//! Per configuration, the run with the median delivered events/s is reported: a busy moment of
//! the machine slows one run of three, and the median leaves it out without picking the best.

mod common;

use std::sync::Barrier;
use std::time::{Duration, Instant};

use common::ThreadCpu;
use common::live::shipping_to;
use common::workload;
use mcp_analytics_receiver::Receiver;
use serde_json::{Value, json};

/// Events per run, all threads together.
const EVENTS: u64 = 1_000_000;
/// Runs per configuration; the median run (by delivered events/s) is reported.
const REPEATS: usize = 3;
/// The pacing tick.
const TICK: Duration = Duration::from_millis(1);
/// (threads, events per second per thread).
const CONFIGURATIONS: [(u64, u64); 5] = [
    (1, 100_000),
    (1, 300_000),
    (1, 600_000),
    (2, 150_000),
    (2, 300_000),
];

/// What one run measured.
#[derive(Debug, Clone)]
struct Run {
    emitted: u64,
    dropped: u64,
    delivered: u64,
    failed: u64,
    spooled: u64,
    /// Requests the receiver answered: with the request pacing (50 a second by default) and the
    /// batch limits, what bounds delivery when the worker's CPU does not.
    requests: u64,
    /// From the first event recorded to `flush()` returning.
    elapsed: Duration,
    /// From the first event recorded to the last.
    emitting: Duration,
    worker_cpu: Duration,
    receiver_cpu: Duration,
}

impl Run {
    fn delivered_per_second(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64()
    }

    fn summary(&self) -> Value {
        let seconds = self.elapsed.as_secs_f64();
        json!({
            "emitted": self.emitted,
            "dropped": self.dropped,
            "delivered": self.delivered,
            "failed": self.failed,
            "spooled": self.spooled,
            "requests": self.requests,
            "requests_per_second": self.requests as f64 / seconds,
            "rows_per_request": self.delivered as f64 / self.requests as f64,
            "delivered_percent": 100.0 * self.delivered as f64 / self.emitted as f64,
            "delivered_per_second": self.delivered_per_second(),
            "emitted_per_second": self.emitted as f64 / self.emitting.as_secs_f64(),
            "elapsed_s": seconds,
            "worker_cores": self.worker_cpu.as_secs_f64() / seconds,
            "receiver_cores": self.receiver_cpu.as_secs_f64() / seconds,
        })
    }
}

/// Records `count` events, the `offset`th of the mix first, at `rate` events a second.
fn emit_paced(offset: u64, count: u64, rate: u64, sessions: &[mcp_analytics::session::SessionId]) {
    let started = Instant::now();
    let mut done = 0;
    loop {
        // Everything due by the end of the current tick: a thread that overslept catches up.
        let tick = started.elapsed().as_micros() as u64 / 1_000;
        let due = ((tick + 1) * rate / 1_000).min(count);
        if due > done {
            workload::calls(offset + done..offset + due, sessions);
            done = due;
        }
        if done == count {
            return;
        }
        let next = started + TICK * (tick + 1) as u32;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

/// One run: a fresh pipeline, `threads` threads at `rate` events/s each, then `flush()`.
fn run(receiver: &Receiver, threads: u64, rate: u64, spool: &std::path::Path) -> Run {
    let _analytics = shipping_to(receiver)
        .spool_dir(spool)
        .try_init()
        .expect("analytics starts");
    let worker = ThreadCpu::find("mcp-analytics").expect("the worker thread is in /proc");
    let receiver_thread =
        ThreadCpu::find("events-api-rec").expect("the receiver thread is in /proc");
    let sessions = workload::sessions();
    let before = mcp_analytics::stats();
    let accepted_before = receiver.accepted_rows() as u64;
    let requests_before = receiver.requests().len();
    let (worker_before, receiver_before) = (worker.used(), receiver_thread.used());

    let start = Barrier::new(threads as usize + 1);
    let share = EVENTS / threads;
    let started = std::thread::scope(|scope| {
        for thread in 0..threads {
            let (start, sessions) = (&start, &sessions);
            scope.spawn(move || {
                start.wait();
                emit_paced(thread * share, share, rate, sessions);
            });
        }
        start.wait();
        Instant::now()
    });
    let emitting = started.elapsed();
    mcp_analytics::flush(Duration::from_secs(60)).expect("the receiver acknowledges");
    let elapsed = started.elapsed();

    let after = mcp_analytics::stats();
    let run = Run {
        emitted: share * threads,
        dropped: after.dropped - before.dropped,
        delivered: receiver.accepted_rows() as u64 - accepted_before,
        failed: after.failed - before.failed,
        spooled: after.spooled - before.spooled,
        requests: (receiver.requests().len() - requests_before) as u64,
        elapsed,
        emitting,
        worker_cpu: worker.used() - worker_before,
        receiver_cpu: receiver_thread.used() - receiver_before,
    };
    let replayed = after.replayed - before.replayed;
    assert_eq!(
        run.emitted,
        run.delivered - replayed + run.dropped + run.failed + run.spooled,
        "every event is delivered, dropped, failed or spooled: {run:?}, replayed {replayed}"
    );
    mcp_analytics::shutdown(Duration::from_secs(30)).expect("the receiver is up");
    run
}

fn main() {
    let receiver = Receiver::builder().count_only(true).build();
    let spool =
        std::env::temp_dir().join(format!("mcp-analytics-sustained-{}", std::process::id()));
    let mut configurations = Vec::new();
    for (threads, rate) in CONFIGURATIONS {
        let mut runs: Vec<Run> = (0..REPEATS)
            .map(|_| {
                let run = run(&receiver, threads, rate, &spool);
                println!(
                    "{threads} x {rate}/s: {} of {} delivered ({:.1}%), {} dropped, {:.0} \
                     delivered/s, {} requests, worker {:.2} cores, receiver {:.2} cores",
                    run.delivered,
                    run.emitted,
                    100.0 * run.delivered as f64 / run.emitted as f64,
                    run.dropped,
                    run.delivered_per_second(),
                    run.requests,
                    run.worker_cpu.as_secs_f64() / run.elapsed.as_secs_f64(),
                    run.receiver_cpu.as_secs_f64() / run.elapsed.as_secs_f64(),
                );
                run
            })
            .collect();
        runs.sort_by(|a, b| {
            a.delivered_per_second()
                .total_cmp(&b.delivered_per_second())
        });
        let mut summary = runs[runs.len() / 2].summary();
        summary["threads"] = threads.into();
        summary["rate_per_thread"] = rate.into();
        summary["runs"] = runs.len().into();
        summary["delivered_per_second_runs"] = runs
            .iter()
            .map(Run::delivered_per_second)
            .collect::<Vec<_>>()
            .into();
        configurations.push(summary);
    }
    let _ = std::fs::remove_dir_all(&spool);
    common::report(
        "sustained",
        &json!({ "events": EVENTS, "repeats": REPEATS, "configurations": configurations }),
    );
}
