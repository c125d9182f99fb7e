//! Many producers at once, and shutdown while they produce: every event is delivered exactly
//! once or counted, nothing deadlocks, and a handler never waits on the network, whether the
//! endpoint is up, down or hanging.
//!
//! The pipeline is process-global and these scenarios size it differently, so each runs in a
//! process of its own ([`common::in_own_process`]), under a watchdog that ends the child if the
//! scenario does not finish in time (a deadlock fails the test instead of hanging it). The child
//! writes its measurements to stderr as `figure:` lines; the parent prints them (visible with
//! `--nocapture`).
//!
//! The exactly-once, shutdown-under-load and million-event scenarios deliver to memory
//! ([`common::Memory`]), their lines read through the loopback Events API's schema checks; the
//! scenarios with a dead or hanging endpoint run against HTTP, which is what they are about.

mod common;

// The soak example's logic, run here with fewer events: see `soak_memory_stays_bounded_...`.
#[allow(dead_code)]
#[path = "../examples/soak.rs"]
mod soak;

use std::net::TcpListener;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use common::{Memory, builder_for, eventually, in_own_process};
use mcp_analytics::{Error, mcp_tool};
use mcp_analytics_receiver::{Receiver, Scripted};

/// Longest any scenario may take, debug build included; past it the child exits with an error.
const WATCHDOG: Duration = Duration::from_secs(240);

/// Events per producer in the exactly-once scenarios.
const PER_THREAD: u32 = 50_000;

/// Prefix of the lines a child writes for the parent to print.
const FIGURE: &str = "figure:";

/// One event per call, named by its producer, with its sequence number as session: a test
/// can tell exactly which events of which producer arrived, and how many times.
#[mcp_tool(name = producer, session = seq)]
fn produce(producer: &str, seq: u32) -> u32 {
    seq
}

#[mcp_tool(name = producer, session = seq)]
async fn produce_async(producer: &str, seq: u32) -> u32 {
    seq
}

#[mcp_tool]
fn plain(i: u64) -> u64 {
    i
}

/// Runs `scenario` in a child process under the watchdog; in the parent, prints the child's
/// figures.
fn isolated(test: &'static str, scenario: impl FnOnce()) {
    let stderr = in_own_process(test, &[], || {
        let _watchdog = Watchdog::arm(test, WATCHDOG);
        scenario();
    });
    for line in stderr.lines().filter(|line| line.starts_with(FIGURE)) {
        println!("{test}: {line}");
    }
}

/// Ends the process with an error unless dropped within its limit.
struct Watchdog {
    _disarm: mpsc::Sender<()>,
}

impl Watchdog {
    fn arm(test: &'static str, limit: Duration) -> Self {
        let (disarm, disarmed) = mpsc::channel::<()>();
        thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = disarmed.recv_timeout(limit) {
                eprintln!("{test}: did not finish within {limit:?} (deadlock?)");
                std::process::exit(3);
            }
        });
        Self { _disarm: disarm }
    }
}

fn figure(text: std::fmt::Arguments<'_>) {
    eprintln!("{FIGURE} {text}");
}

/// A loopback port nothing listens on: connections to it are refused.
fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// Asserts that memory got every event of `producers` producers × `per_producer` events exactly
/// once (`produce*` rows named `{prefix}{p}` with session `seq`), that nothing else arrived, and
/// that every line fits the datasource ([`Memory::rows`] panics otherwise).
fn assert_each_event_once(memory: &Memory, prefix: &str, producers: usize, per_producer: u32) {
    let rows = memory.rows();
    let mut seen = vec![vec![0_u8; per_producer as usize]; producers];
    let mut strangers = 0;
    for row in &rows {
        let producer = row
            .record_str("tool")
            .strip_prefix(prefix)
            .and_then(|p| p.parse::<usize>().ok());
        let seq = row.session.parse::<usize>().ok();
        match (producer, seq) {
            (Some(p), Some(s)) if p < producers && s < per_producer as usize => {
                seen[p][s] = seen[p][s].saturating_add(1);
            }
            _ => strangers += 1,
        }
    }
    let mut problems = Vec::new();
    for (p, counts) in seen.iter().enumerate() {
        let missing = counts.iter().filter(|&&c| c == 0).count();
        let duplicated = counts.iter().filter(|&&c| c > 1).count();
        if missing + duplicated > 0 {
            problems.push(format!(
                "{prefix}{p}: {missing} missing, {duplicated} duplicated"
            ));
        }
    }
    assert!(
        problems.is_empty() && strangers == 0,
        "{} rows for {} events; {strangers} unexpected rows; {problems:?}",
        rows.len(),
        producers * per_producer as usize
    );
    assert_eq!(rows.len(), producers * per_producer as usize);
}

/// `threads` std threads emit [`PER_THREAD`] events each at once, into a queue that holds them
/// all; the guard's drop delivers everything.
fn threads_deliver_every_event_exactly_once(test: &'static str, threads: usize) {
    isolated(test, || {
        let total = threads as u64 * u64::from(PER_THREAD);
        let memory = Memory::new();
        let _analytics = memory
            .builder()
            .queue_capacity((total as usize).next_power_of_two())
            .shutdown_timeout(Duration::from_secs(120))
            .try_init()
            .unwrap();

        let start = Barrier::new(threads + 1);
        let started = thread::scope(|scope| {
            for t in 0..threads {
                let start = &start;
                scope.spawn(move || {
                    let name = format!("thread-{t}");
                    start.wait();
                    for seq in 0..PER_THREAD {
                        produce(&name, seq);
                    }
                });
            }
            start.wait();
            Instant::now()
        });
        let emitting = started.elapsed();
        let stopping = Instant::now();
        mcp_analytics::shutdown(Duration::from_secs(120)).expect("everything delivered in time");
        let stopping = stopping.elapsed();

        let stats = mcp_analytics::stats();
        assert_eq!(
            (stats.enqueued, stats.sent, stats.dropped, stats.failed),
            (total, total, 0, 0),
            "{stats:?}"
        );
        assert_each_event_once(&memory, "thread-", threads, PER_THREAD);
        figure(format_args!(
            "{threads} threads × {PER_THREAD} events: emitted in {emitting:?} \
             ({:.0} ns per event per thread), then shutdown delivered the rest in {stopping:?}",
            emitting.as_nanos() as f64 / f64::from(PER_THREAD)
        ));
    });
}

#[test]
fn one_thread_delivers_every_event_exactly_once() {
    threads_deliver_every_event_exactly_once("one_thread_delivers_every_event_exactly_once", 1);
}

#[test]
fn two_threads_deliver_every_event_exactly_once() {
    threads_deliver_every_event_exactly_once("two_threads_deliver_every_event_exactly_once", 2);
}

#[test]
fn eight_threads_deliver_every_event_exactly_once() {
    threads_deliver_every_event_exactly_once("eight_threads_deliver_every_event_exactly_once", 8);
}

#[test]
fn tokio_tasks_on_four_workers_deliver_every_event_exactly_once() {
    const TASKS: usize = 64;
    const PER_TASK: u32 = 5_000;
    isolated(
        "tokio_tasks_on_four_workers_deliver_every_event_exactly_once",
        || {
            let total = TASKS as u64 * u64::from(PER_TASK);
            let memory = Memory::new();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(4)
                .enable_all()
                .build()
                .unwrap();
            let started = Instant::now();
            runtime.block_on(async {
                let _analytics = memory
                    .builder()
                    .queue_capacity((total as usize).next_power_of_two())
                    .shutdown_timeout(Duration::from_secs(120))
                    .try_init()
                    .unwrap();
                let tasks: Vec<_> = (0..TASKS)
                    .map(|t| {
                        tokio::spawn(async move {
                            let name = format!("task-{t}");
                            for seq in 0..PER_TASK {
                                produce_async(&name, seq).await;
                                if seq % 64 == 0 {
                                    // Let the tasks interleave on the workers.
                                    tokio::task::yield_now().await;
                                }
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
                // Inside the runtime, as a server's `main` would.
                mcp_analytics::shutdown(Duration::from_secs(120))
                    .expect("everything delivered in time");
            });
            let elapsed = started.elapsed();

            let stats = mcp_analytics::stats();
            assert_eq!(
                (stats.enqueued, stats.sent, stats.dropped, stats.failed),
                (total, total, 0, 0),
                "{stats:?}"
            );
            assert_each_event_once(&memory, "task-", TASKS, PER_TASK);
            figure(format_args!(
                "{TASKS} tasks × {PER_TASK} events on 4 workers: emitted and delivered in {elapsed:?}"
            ));
        },
    );
}

#[test]
fn shutdown_under_load_accounts_for_every_event() {
    const THREADS: usize = 8;
    /// Events each thread emits before the shutdown starts (so there is load to cut through).
    const BEFORE: u64 = 20_000;
    /// Events each thread emits once it has seen the shutdown finish (all dropped, counted).
    const AFTER: u64 = 1_000;
    isolated("shutdown_under_load_accounts_for_every_event", || {
        let memory = Memory::new();
        let _analytics = memory
            .builder()
            .max_batch_age(Duration::from_millis(20))
            .shutdown_timeout(Duration::from_secs(30))
            .try_init()
            .unwrap();

        let shut_down = AtomicBool::new(false);
        let emitted = AtomicU64::new(0);
        let loaded = Barrier::new(THREADS + 1);
        let (result, stopping) = thread::scope(|scope| {
            for t in 0..THREADS {
                let (shut_down, emitted, loaded) = (&shut_down, &emitted, &loaded);
                scope.spawn(move || {
                    let name = format!("load-{t}");
                    let mut seq: u32 = 0;
                    let mut emit = |n: u64| {
                        for _ in 0..n {
                            produce(&name, seq);
                            seq = seq.wrapping_add(1);
                        }
                        emitted.fetch_add(n, Relaxed);
                    };
                    emit(BEFORE);
                    loaded.wait();
                    // Keep emitting while the guard is dropped, in small steps so that the
                    // count is exact whenever the flag is seen.
                    while !shut_down.load(Relaxed) {
                        emit(16);
                    }
                    emit(AFTER);
                });
            }
            loaded.wait();
            let stopping = Instant::now();
            let result = mcp_analytics::shutdown(Duration::from_secs(30));
            let stopping = stopping.elapsed();
            shut_down.store(true, Relaxed);
            (result, stopping)
        });
        let emitted = emitted.load(Relaxed);
        result.expect("the shutdown delivers what is queued in time");

        let stats = mcp_analytics::stats();
        let accounted = stats.sent + stats.dropped + stats.failed;
        let stranded = stats.enqueued - stats.sent - stats.failed;
        figure(format_args!(
            "{THREADS} threads emitted {emitted} events; shutdown took {stopping:?}; \
             sent {} + dropped {} + failed {} = {accounted}; enqueued {}; \
             left in the queue after shutdown: {stranded}",
            stats.sent, stats.dropped, stats.failed, stats.enqueued
        ));
        // Every event recorded is either enqueued or dropped.
        assert_eq!(stats.enqueued + stats.dropped, emitted, "{stats:?}");
        // And after the shutdown, every enqueued event is sent or failed: none is left behind in
        // the queue, unseen.
        assert_eq!(
            accounted,
            emitted,
            "{} events unaccounted for (enqueued, but neither sent nor failed: still in the \
             queue after the worker's final drain): {stats:?}",
            emitted.saturating_sub(accounted)
        );
        let received = memory.rows().len() as u64;
        assert_eq!(received, stats.sent, "sent means received");
    });
}

#[test]
fn a_million_events_are_all_delivered_when_the_guard_drops() {
    const EVENTS: u64 = 1_000_000;
    isolated(
        "a_million_events_are_all_delivered_when_the_guard_drops",
        || {
            let memory = Memory::new();
            let analytics = memory
                .builder()
                .queue_capacity(1 << 20)
                .shutdown_timeout(Duration::from_secs(180))
                .try_init()
                .unwrap();
            let started = Instant::now();
            for i in 0..EVENTS {
                plain(i);
            }
            let emitting = started.elapsed();
            let sent_before_drop = mcp_analytics::stats().sent;
            let dropping = Instant::now();
            drop(analytics);
            let dropping = dropping.elapsed();

            let stats = mcp_analytics::stats();
            assert_eq!(
                (stats.sent, stats.dropped, stats.failed),
                (EVENTS, 0, 0),
                "{stats:?}"
            );
            // Every line fits the datasource, or `rows` panics saying which does not.
            let received = memory.rows().len();
            assert_eq!(received as u64, EVENTS);
            figure(format_args!(
                "emitted {EVENTS} in {emitting:?}; {sent_before_drop} were delivered by then; \
                 the guard's drop delivered the other {} in {dropping:?} ({} batches in all)",
                EVENTS - sent_before_drop,
                memory.batches()
            ));
        },
    );
}

/// Emits `n` events against a dead endpoint with a 1 s shutdown timeout, once the worker is
/// busy retrying; returns the guard, ready to be dropped or shut down.
fn against_a_dead_endpoint(url: String, n: u64) -> mcp_analytics::Guard {
    let analytics = mcp_analytics::builder()
        .read_env(false)
        .api_url(url)
        .token("test-token")
        .spool(false)
        .max_batch_age(Duration::from_millis(10))
        .shutdown_timeout(Duration::from_secs(1))
        .try_init()
        .unwrap();
    for i in 0..n {
        plain(i);
    }
    // The worker has tried, failed, and is waiting to retry: the shutdown must cut that short.
    let deadline = Instant::now() + Duration::from_secs(10);
    while mcp_analytics::stats().retried == 0 {
        assert!(Instant::now() < deadline, "the worker never retried");
        thread::sleep(Duration::from_millis(5));
    }
    analytics
}

#[test]
fn shutdown_with_the_endpoint_down_returns_within_its_timeout_and_counts_the_loss() {
    const EVENTS: u64 = 1_000;
    isolated(
        "shutdown_with_the_endpoint_down_returns_within_its_timeout_and_counts_the_loss",
        || {
            // A receiver that has stopped: its port refuses connections.
            let receiver = Receiver::start();
            let url = receiver.url();
            receiver.shutdown();
            let _analytics = against_a_dead_endpoint(url, EVENTS);

            let started = Instant::now();
            let result = mcp_analytics::shutdown(Duration::from_secs(1));
            let elapsed = started.elapsed();
            figure(format_args!(
                "shutdown() with the endpoint down took {elapsed:?}: {result:?}"
            ));
            assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
            match result {
                Err(Error::Timeout { undelivered, .. }) => assert_eq!(undelivered, EVENTS),
                other => panic!("expected a timeout counting {EVENTS} events: {other:?}"),
            }
            let stats = mcp_analytics::stats();
            assert_eq!(
                (stats.sent, stats.failed, stats.dropped),
                (0, EVENTS, 0),
                "{stats:?}"
            );
        },
    );
}

#[test]
fn dropping_the_guard_with_the_endpoint_down_returns_within_its_timeout() {
    const EVENTS: u64 = 1_000;
    let test = "dropping_the_guard_with_the_endpoint_down_returns_within_its_timeout";
    let stderr = in_own_process(test, &[], || {
        let _watchdog = Watchdog::arm(test, WATCHDOG);
        let analytics = against_a_dead_endpoint(closed_port_url(), EVENTS);
        let started = Instant::now();
        drop(analytics);
        let elapsed = started.elapsed();
        figure(format_args!(
            "the guard's drop with the endpoint down took {elapsed:?}"
        ));
        assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
        let stats = mcp_analytics::stats();
        assert_eq!((stats.sent, stats.failed), (0, EVENTS), "{stats:?}");
    });
    if !common::in_child() {
        for line in stderr.lines().filter(|line| line.starts_with(FIGURE)) {
            println!("{test}: {line}");
        }
        // The drop cannot return the loss, so it says it on stderr.
        assert!(
            stderr.contains(&format!(
                "shutdown: {EVENTS} events were not delivered within 1s"
            )),
            "{stderr}"
        );
    }
}

#[test]
fn handlers_never_wait_on_a_hanging_endpoint() {
    const CALLS: u64 = 100_000;
    isolated("handlers_never_wait_on_a_hanging_endpoint", || {
        let receiver = Receiver::start();
        receiver.script(std::iter::repeat_n(Scripted::Hang, 100));
        let _analytics = builder_for(&receiver)
            .queue_capacity(1 << 17)
            .max_batch_age(Duration::from_millis(10))
            .request_timeout(Duration::from_secs(60))
            .shutdown_timeout(Duration::from_millis(500))
            .try_init()
            .unwrap();
        // Get the worker stuck in a request that is never answered.
        plain(0);
        let held = receiver.wait_for_requests(1, Duration::from_secs(10));
        assert_eq!(held.len(), 1, "the worker sent its first batch");

        let started = Instant::now();
        let mut slowest = Duration::ZERO;
        for i in 0..CALLS {
            let call = Instant::now();
            plain(i);
            slowest = slowest.max(call.elapsed());
        }
        let elapsed = started.elapsed();

        let requests = receiver.requests();
        assert!(
            requests.iter().all(|r| r.status == 0),
            "the endpoint stayed unanswering throughout: {requests:?}"
        );
        let stats = mcp_analytics::stats();
        assert_eq!(stats.sent, 0, "{stats:?}");
        assert_eq!(stats.dropped, 0, "every call was enqueued: {stats:?}");
        // `enqueued` reads as taken + queued, two reads the worker can fall between while it
        // takes its one batch ahead of the hanging request: wait until the count reads whole.
        assert!(
            eventually(Duration::from_secs(10), || mcp_analytics::stats().enqueued
                == CALLS + 1),
            "{:?}",
            mcp_analytics::stats()
        );
        figure(format_args!(
            "{CALLS} calls with the endpoint hanging: {elapsed:?} in all, {:.0} ns per call, \
             slowest call {slowest:?} (the request timeout is 60 s)",
            elapsed.as_nanos() as f64 / CALLS as f64
        ));
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");

        // The shutdown is bounded by its own timeout, not by the hanging request's.
        let stopping = Instant::now();
        let result = mcp_analytics::shutdown(Duration::from_millis(500));
        let stopping = stopping.elapsed();
        figure(format_args!("shutdown took {stopping:?}: {result:?}"));
        assert!(matches!(result, Err(Error::Timeout { .. })), "{result:?}");
        assert!(stopping < Duration::from_secs(1), "{stopping:?}");
    });
}

#[test]
fn soak_memory_stays_bounded_with_the_endpoint_down() {
    isolated("soak_memory_stays_bounded_with_the_endpoint_down", || {
        let report = soak::run(1_000_000);
        for line in report.to_string().lines() {
            figure(format_args!("{line}"));
        }
        let problems = report.problems();
        assert!(problems.is_empty(), "{problems:?}\n{report}");
    });
}
