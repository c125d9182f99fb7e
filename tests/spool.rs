//! The disk spool, in one process: what cannot be delivered now (the endpoint is down, rate
//! limits, a long outage, exit) goes to disk, and a later worker delivers it, each event once.
//! Each test prints one line of figures, visible with `--nocapture`:
//!
//! ```text
//! spool <name>: emitted N, delivered-unique N, duplicated D, discarded X, spooled S, replayed R
//! ```
//!
//! Several processes over one spool (short-lived copies, concurrent starts, `kill -9`, a full
//! disk) are in `spool_processes.rs`; a stdio server driven by the Python SDK is in the
//! end-to-end suite.

mod common;

use std::io::Read as _;
use std::time::{Duration, Instant};

use common::{Scenario, SpoolDir, Tally, builder_for, emit, in_own_process};
use mcp_analytics::{Builder, Stats};
use mcp_analytics_receiver::{Receiver, Row, Scripted};

/// A pipeline spooling to `spool`: batches close quickly.
fn spooling(builder: Builder, spool: &SpoolDir) -> Builder {
    builder
        .spool(true)
        .spool_dir(&spool.0)
        .max_batch_age(Duration::from_millis(20))
}

/// Asserts every emitted name arrived exactly once, and prints the scenario's figures.
#[track_caller]
fn assert_each_once(name: &str, emitted: &[String], rows: &[Row], before: Stats) {
    let tally = Tally::of(emitted, rows);
    let now = mcp_analytics::stats();
    println!(
        "spool {name}: emitted {}, delivered-unique {}, duplicated {}, discarded {}, spooled {}, replayed {}",
        tally.emitted,
        tally.delivered_unique,
        tally.duplicates,
        now.discarded - before.discarded,
        now.spooled - before.spooled,
        now.replayed - before.replayed,
    );
    tally.assert_exactly_once();
}

/// Waits until the spool holds no file, or fails after `timeout`.
#[track_caller]
fn wait_until_empty(spool: &SpoolDir, timeout: Duration) {
    let started = Instant::now();
    while !spool.files().is_empty() {
        assert!(
            started.elapsed() < timeout,
            "the spool still holds {:?}",
            spool.files()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts the next run over `spool`, which sends it at start; returns the `n` rows received
/// once the spool is empty, and shuts that run down.
fn next_run_delivers(receiver: &Receiver, spool: &SpoolDir, n: usize) -> Vec<Row> {
    let next = spooling(builder_for(receiver), spool)
        .try_init()
        .expect("the next run starts");
    let rows = receiver.wait_for_rows(n, Duration::from_secs(30));
    wait_until_empty(spool, Duration::from_secs(30));
    drop(next);
    rows
}

/// Every spooled file's content, decompressed, in name order.
fn spooled_bodies(spool: &SpoolDir) -> Vec<String> {
    spool
        .files()
        .iter()
        .map(|name| {
            let gzipped = std::fs::read(spool.0.join(name)).expect("a spooled file reads");
            let mut body = String::new();
            flate2::read::GzDecoder::new(&gzipped[..])
                .read_to_string(&mut body)
                .expect("a spooled file is whole gzip'd text");
            body
        })
        .collect()
}

/// A token that no row could contain by chance.
const SECRET_TOKEN: &str = "p.spool-test-secret-token-7f3a9c";

#[test]
fn spool_exit_with_the_endpoint_down_then_a_later_run_delivers_once() {
    let spool = SpoolDir::new("down-at-exit");
    let receiver = Receiver::builder().token(SECRET_TOKEN).build();
    let scenario = Scenario::start(receiver, |b| spooling(b, &spool));
    let before = scenario.stats_before();
    scenario.receiver.go_down();
    let emitted = emit(0..170);

    let started = Instant::now();
    let shutdown = mcp_analytics::shutdown(Duration::from_millis(1500));
    let took = started.elapsed();
    assert!(shutdown.is_ok(), "everything is on disk: {shutdown:?}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
    let after = mcp_analytics::stats();
    assert_eq!(after.spooled - before.spooled, 170);
    assert_eq!(after.failed - before.failed, 0);
    assert_eq!(after.dropped - before.dropped, 0);
    assert!(scenario.receiver.rows().is_empty());
    // On disk: the rows as they would be sent, owner-only, and never the token.
    let bodies = spooled_bodies(&spool);
    assert_eq!(
        bodies
            .iter()
            .map(|body| body.lines().count())
            .sum::<usize>(),
        170
    );
    for body in &bodies {
        assert!(!body.contains(SECRET_TOKEN));
        for line in body.lines() {
            serde_json::from_str::<serde_json::Value>(line).expect("each line is a row");
        }
    }
    #[cfg(unix)]
    for name in spool.files() {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(spool.0.join(&name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }

    // The next run, with the endpoint up: it sends the spool at start.
    scenario.receiver.go_up();
    let rows = next_run_delivers(&scenario.receiver, &spool, emitted.len());
    assert_each_once("down-at-exit", &emitted, &rows, before);
    assert_eq!(mcp_analytics::stats().replayed - before.replayed, 170);
}

#[test]
fn spool_exit_during_rate_limiting_then_a_later_run_delivers_once() {
    let spool = SpoolDir::new("rate-limited");
    let receiver = Receiver::start();
    receiver.script([
        Scripted::retry_after(429, "1"),
        Scripted::retry_after(429, "1"),
        Scripted::retry_after(429, "1"),
    ]);
    let mut scenario = Scenario::start(receiver, |b| spooling(b, &spool));
    let before = scenario.stats_before();
    let emitted = emit(0..170);
    // Shutdown begins while the first answer asks to wait: the rows go to disk at once.
    scenario
        .receiver
        .wait_for_requests(1, Duration::from_secs(30));
    drop(scenario.analytics.take());
    let after = mcp_analytics::stats();
    assert_eq!(after.spooled - before.spooled, 170, "{after:?}");
    assert_eq!(after.failed - before.failed, 0);

    let rows = next_run_delivers(&scenario.receiver, &spool, emitted.len());
    assert_each_once("rate-limited", &emitted, &rows, before);
}

#[test]
fn spool_a_long_outage_drains_the_queue_to_disk_and_loses_nothing() {
    let spool = SpoolDir::new("long-outage");
    let scenario = Scenario::start(Receiver::start(), |b| {
        // A small queue and a short retry budget: the outage outlasts both many times over.
        spooling(b, &spool)
            .queue_capacity(1024)
            .max_batch_events(256)
            .max_attempts(2)
    });
    let before = scenario.stats_before();
    scenario.receiver.go_down();
    // Ten queues' worth, at the pace of a busy server: without the spool most would be dropped.
    let mut emitted = Vec::new();
    for round in 0..40 {
        emitted.extend(emit(round * 256..(round + 1) * 256));
        // Wait for the worker to take each round: the queue never overflows because the
        // worker moves what waits to disk, not because the producer slows down for it.
        let taken = common::eventually(Duration::from_secs(30), || {
            mcp_analytics::stats().queued < 512
        });
        assert!(
            taken,
            "the worker keeps taking rows: {:?}",
            mcp_analytics::stats()
        );
    }
    let during = mcp_analytics::stats();
    assert_eq!(during.dropped - before.dropped, 0, "{during:?}");
    assert!(during.spooled - before.spooled > 0, "{during:?}");

    scenario.receiver.go_up();
    let rows = scenario
        .receiver
        .wait_for_rows(emitted.len(), Duration::from_secs(60));
    scenario.flush();
    wait_until_empty(&spool, Duration::from_secs(30));
    assert_each_once("long-outage", &emitted, &rows, before);
}

#[test]
fn spool_an_unwritable_directory_warns_once_and_falls_back() {
    let stderr = in_own_process(
        "spool_an_unwritable_directory_warns_once_and_falls_back",
        &[],
        || {
            // A directory cannot be made under a regular file: what a read-only disk does too.
            let blocker = std::env::temp_dir().join(format!(
                "mcp-analytics-spool-blocker-{}",
                std::process::id()
            ));
            std::fs::write(&blocker, b"not a directory").unwrap();
            let receiver = Receiver::start();
            receiver.go_down();
            let analytics = builder_for(&receiver)
                .spool(true)
                .spool_dir(blocker.join("spool"))
                .max_attempts(1)
                .max_batch_age(Duration::from_millis(10))
                .try_init()
                .expect("analytics starts without its spool");
            emit(0..10);
            let flushed = mcp_analytics::flush(Duration::from_secs(30));
            assert!(flushed.is_ok(), "{flushed:?}");
            emit(10..20);
            drop(analytics);
            let stats = mcp_analytics::stats();
            assert_eq!(stats.spooled, 0);
            assert_eq!(stats.failed, 20, "{stats:?}");
            std::fs::remove_file(&blocker).unwrap();
        },
    );
    if common::in_child() {
        return;
    }
    let warnings = stderr.matches("cannot use the spool at").count();
    assert_eq!(warnings, 1, "{stderr}");
    assert!(stderr.contains("are dropped"), "{stderr}");
}

#[test]
fn spool_over_budget_the_oldest_events_are_discarded_counted_and_warned_once() {
    let stderr = in_own_process(
        "spool_over_budget_the_oldest_events_are_discarded_counted_and_warned_once",
        &[],
        || {
            let spool = SpoolDir::new("over-budget");
            let receiver = Receiver::start();
            receiver.go_down();
            let analytics = spooling(builder_for(&receiver), &spool)
                .spool_max_bytes(1 << 20)
                .max_attempts(1)
                .max_batch_events(2_000)
                .try_init()
                .expect("analytics starts");
            // Far more than a mebibyte of rows, a queue's worth at a time.
            let mut emitted = 0;
            for round in 0..40 {
                emitted += emit(round * 10_000..(round + 1) * 10_000).len();
                let flushed = mcp_analytics::flush(Duration::from_secs(60));
                assert!(flushed.is_ok(), "{flushed:?}");
            }
            drop(analytics);
            let stats = mcp_analytics::stats();
            let on_disk: usize = spooled_bodies(&spool)
                .iter()
                .map(|body| body.lines().count())
                .sum();
            let bytes: u64 = spool
                .files()
                .iter()
                .map(|name| std::fs::metadata(spool.0.join(name)).unwrap().len())
                .sum();
            println!(
                "spool over-budget: emitted {emitted}, spooled {}, discarded {}, on disk {on_disk} \
                 in {bytes} bytes",
                stats.spooled, stats.discarded
            );
            assert_eq!(stats.spooled as usize, emitted, "{stats:?}");
            assert_eq!(stats.dropped + stats.failed, 0, "{stats:?}");
            assert!(stats.discarded > 0, "{stats:?}");
            assert_eq!(on_disk as u64, stats.spooled - stats.discarded);
            assert!(bytes <= 1 << 20, "{bytes}");
        },
    );
    if common::in_child() {
        return;
    }
    assert_eq!(stderr.matches("is full").count(), 1, "{stderr}");
}

#[test]
fn spool_what_the_disk_refuses_at_exit_is_still_sent() {
    let spool = SpoolDir::new("refused-at-exit");
    let scenario = Scenario::start(Receiver::start(), |b| {
        // The batch stays open until shutdown: nothing is sent before.
        spooling(b, &spool).max_batch_age(Duration::from_secs(30))
    });
    let before = scenario.stats_before();
    // The directory opened at start is gone, a file in its place: every write fails, as on a
    // full or read-only disk.
    std::fs::remove_dir_all(&spool.0).unwrap();
    std::fs::write(&spool.0, b"not a directory").unwrap();
    let emitted = emit(0..10);

    let shutdown = mcp_analytics::shutdown(Duration::from_millis(1500));
    let after = mcp_analytics::stats();
    let _ = std::fs::remove_file(&spool.0);
    assert!(shutdown.is_ok(), "the endpoint answers: {shutdown:?}");
    assert_eq!(after.sent - before.sent, 10, "{after:?}");
    assert_eq!(after.spooled - before.spooled, 0, "{after:?}");
    assert_eq!(after.failed - before.failed, 0, "{after:?}");
    let rows = scenario.receiver.rows();
    assert_each_once("refused-at-exit", &emitted, &rows, before);
}
