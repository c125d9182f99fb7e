//! The shipper against a strict loopback Events API: the request contract, the rules that close
//! a batch, retries that follow the service's rules, refusals, 413 splitting, pacing, and a
//! shutdown bounded by its deadline.
//!
//! Each test configures the pipeline its own way, so the tests take turns (the pipeline is
//! process-global) and each shuts it down before the next starts.

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::{Delta, Scenario, eventually};
use mcp_analytics::mcp_tool;
use mcp_analytics_receiver::{Receiver, Scripted};

#[mcp_tool]
fn ping(i: u32) -> u32 {
    i
}

#[mcp_tool]
fn fails_loudly(size: usize) -> Result<(), String> {
    Err("x".repeat(size))
}

fn emit(n: u32) {
    for i in 0..n {
        ping(i);
    }
}

#[test]
fn requests_follow_the_events_api_contract() {
    let scenario = Scenario::start(Receiver::start(), |b| b);
    emit(5);
    scenario.flush();
    let requests = scenario.receiver.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let request = &requests[0];
    assert_eq!(request.status, 202);
    assert!(request.gzip, "bodies are gzip'd by default");
    assert_eq!(
        request.content_type.as_deref(),
        Some("application/x-ndjson")
    );
    assert_eq!(request.datasource.as_deref(), Some("mcp_logs"));
    assert!(!request.wait);
    assert_eq!(request.rows, 5);
    assert_eq!(
        request.quarantined, 0,
        "every line fits the mcp_logs schema"
    );
    assert_eq!(scenario.delta().sent, 5);
}

#[test]
fn plain_bodies_when_gzip_is_off() {
    let scenario = Scenario::start(Receiver::start(), |b| b.gzip(false));
    emit(3);
    scenario.flush();
    let requests = scenario.receiver.requests();
    assert_eq!(requests.len(), 1);
    assert!(!requests[0].gzip);
    assert_eq!(requests[0].rows, 3);
}

#[test]
fn wait_for_ack_asks_the_service_to_confirm_the_write() {
    let scenario = Scenario::start(Receiver::start(), |b| b.wait_for_ack(true));
    emit(2);
    scenario.flush();
    let requests = scenario.receiver.requests();
    assert!(requests[0].wait);
    assert_eq!(requests[0].status, 200);
}

#[test]
fn events_land_in_the_configured_datasource() {
    let receiver = Receiver::builder().datasource("tool_calls").build();
    let scenario = Scenario::start(receiver, |b| b.datasource("tool_calls"));
    emit(2);
    scenario.flush();
    let rows = scenario.receiver.rows();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|row| row.datasource == "tool_calls"));
}

#[test]
fn batches_close_on_event_count() {
    let scenario = Scenario::start(Receiver::start(), |b| b.max_batch_events(10));
    emit(35);
    scenario.flush();
    let sizes: Vec<usize> = scenario
        .receiver
        .requests()
        .iter()
        .map(|r| r.rows)
        .collect();
    assert_eq!(sizes.iter().sum::<usize>(), 35);
    assert!(sizes.iter().all(|&n| n <= 10), "{sizes:?}");
    assert!(sizes.len() >= 4, "{sizes:?}");
}

#[test]
fn batches_close_on_age_without_a_flush() {
    let scenario = Scenario::start(Receiver::start(), |b| {
        b.max_batch_age(Duration::from_millis(300))
    });
    let started = Instant::now();
    emit(3);
    let rows = scenario.receiver.wait_for_rows(3, Duration::from_secs(10));
    let waited = started.elapsed();
    assert_eq!(rows.len(), 3);
    assert!(
        waited >= Duration::from_millis(250),
        "shipped before its age: {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    assert_eq!(
        scenario.receiver.requests().len(),
        1,
        "three events, one batch"
    );
}

#[test]
fn batches_close_before_exceeding_their_byte_limit() {
    const LIMIT: usize = 64 * 1024;
    let scenario = Scenario::start(Receiver::start(), |b| b.gzip(false).max_batch_bytes(LIMIT));
    for _ in 0..200 {
        let _ = fails_loudly(900);
    }
    scenario.flush();
    let requests = scenario.receiver.requests();
    assert_eq!(requests.iter().map(|r| r.rows).sum::<usize>(), 200);
    assert!(requests.len() >= 3, "{requests:?}");
    for request in &requests {
        assert!(
            request.body_bytes <= LIMIT,
            "{} > {LIMIT}",
            request.body_bytes
        );
    }
}

#[test]
fn retry_after_in_seconds_is_honored() {
    let scenario = Scenario::start(Receiver::start(), |b| b);
    scenario.receiver.script([Scripted::retry_after(429, "1")]);
    emit(4);
    scenario.flush();
    let requests = scenario.receiver.requests();
    assert_eq!(scenario.statuses(), [429, 202]);
    let waited = requests[1].received_at - requests[0].received_at;
    assert!(waited >= Duration::from_millis(950), "{waited:?}");
    assert_eq!(
        scenario.delta(),
        Delta {
            sent: 4,
            failed: 0,
            retried: 1
        }
    );
}

#[test]
fn retry_after_as_an_http_date_is_honored() {
    let scenario = Scenario::start(Receiver::start(), |b| b);
    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
    scenario.receiver.script([Scripted::retry_after(503, date)]);
    emit(1);
    scenario.flush();
    let requests = scenario.receiver.requests();
    assert_eq!(scenario.statuses(), [503, 202]);
    // An HTTP-date has whole seconds: two seconds ahead is at least one second of waiting.
    let waited = requests[1].received_at - requests[0].received_at;
    assert!(waited >= Duration::from_millis(950), "{waited:?}");
}

#[test]
fn transient_server_errors_are_retried_with_backoff() {
    let scenario = Scenario::start(Receiver::start(), |b| b.max_attempts(5));
    scenario
        .receiver
        .script([500, 502, 503, 504].map(Scripted::status));
    emit(6);
    scenario.flush();
    assert_eq!(scenario.statuses(), [500, 502, 503, 504, 202]);
    assert_eq!(
        scenario.delta(),
        Delta {
            sent: 6,
            failed: 0,
            retried: 4
        }
    );
    let requests = scenario.receiver.requests();
    // Exponential: the third wait is longer than the first (200 ms base, jittered by half).
    let first = requests[1].received_at - requests[0].received_at;
    let third = requests[3].received_at - requests[2].received_at;
    assert!(first >= Duration::from_millis(100), "{first:?}");
    assert!(third >= Duration::from_millis(400), "{third:?}");
}

#[test]
fn refusals_are_final_and_do_not_stop_later_batches() {
    for status in [400, 403, 404, 422] {
        let scenario = Scenario::start(Receiver::start(), |b| b);
        scenario.receiver.script([Scripted::status(status)]);
        emit(3);
        scenario.flush();
        emit(2);
        scenario.flush();
        assert_eq!(scenario.statuses(), [status, 202], "{status}");
        assert_eq!(
            scenario.delta(),
            Delta {
                sent: 2,
                failed: 3,
                retried: 0
            },
            "{status}"
        );
        assert_eq!(scenario.receiver.rows().len(), 2);
    }
}

#[test]
fn a_wrong_token_is_refused_by_the_service_and_counted() {
    let scenario = Scenario::start(Receiver::start(), |b| b.token("p.not-the-right-one"));
    emit(2);
    scenario.flush();
    assert_eq!(scenario.statuses(), [403]);
    assert_eq!(scenario.delta().failed, 2);
}

#[test]
fn too_large_batches_are_split_until_they_fit() {
    let receiver = Receiver::builder().max_body_bytes(3_000).build();
    let scenario = Scenario::start(receiver, |b| b.gzip(false));
    for _ in 0..20 {
        let _ = fails_loudly(200);
    }
    scenario.flush();
    let statuses = scenario.statuses();
    assert!(statuses.contains(&413), "{statuses:?}");
    assert_eq!(scenario.receiver.rows().len(), 20, "{statuses:?}");
    assert_eq!(scenario.delta().failed, 0);
}

#[test]
fn attempts_are_bounded_then_counted_as_failed() {
    let scenario = Scenario::start(Receiver::start(), |b| b.max_attempts(3));
    scenario
        .receiver
        .script([503, 503, 503].map(Scripted::status));
    emit(7);
    scenario.flush();
    assert_eq!(scenario.statuses(), [503, 503, 503]);
    assert_eq!(
        scenario.delta(),
        Delta {
            sent: 0,
            failed: 7,
            retried: 2
        }
    );
    emit(1);
    scenario.flush();
    assert_eq!(
        scenario.statuses(),
        [503, 503, 503, 202],
        "later batches still go"
    );
}

#[test]
fn connection_errors_are_retried_then_counted() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let scenario = Scenario::start(Receiver::start(), |b| b.api_url(url).max_attempts(2));
    emit(3);
    scenario.flush();
    assert_eq!(
        scenario.delta(),
        Delta {
            sent: 0,
            failed: 3,
            retried: 1
        }
    );
}

#[test]
fn requests_are_paced_under_the_rate_limit() {
    let scenario = Scenario::start(Receiver::start(), |b| {
        b.max_requests_per_second(5).max_batch_events(1)
    });
    emit(4);
    scenario.flush();
    let requests = scenario.receiver.requests();
    assert_eq!(requests.len(), 4);
    for pair in requests.windows(2) {
        let gap = pair[1].received_at - pair[0].received_at;
        assert!(gap >= Duration::from_millis(180), "{gap:?}");
    }
}

#[test]
fn shutdown_with_a_hanging_endpoint_returns_within_its_deadline() {
    let scenario = Scenario::start(Receiver::start(), |b| {
        b.shutdown_timeout(Duration::from_secs(1))
            .max_batch_age(Duration::from_millis(50))
    });
    scenario.receiver.script([Scripted::Hang]);
    emit(5);
    let mut scenario = scenario;
    // Give the worker time to send the batch into the hanging request.
    std::thread::sleep(Duration::from_millis(1200));
    let _analytics = scenario.analytics.take().unwrap();
    let started = Instant::now();
    let result = mcp_analytics::shutdown(Duration::from_secs(1));
    let took = started.elapsed();
    // The deadline is 1 s; the slack is for scheduling on a busy machine.
    assert!(took <= Duration::from_millis(1300), "{took:?}");
    match result {
        Err(mcp_analytics::Error::Timeout { undelivered, .. }) => assert_eq!(undelivered, 5),
        other => panic!("expected a timeout that counts the 5 events, got {other:?}"),
    }
    assert_eq!(scenario.delta().failed, 5);
}

#[test]
fn the_next_batches_are_built_while_a_request_is_in_flight_four_at_most() {
    let receiver = Receiver::start();
    receiver.script([Scripted::Delay(Duration::from_millis(1_500))]);
    let scenario = Scenario::start(receiver, |b| b.max_batch_events(100));
    emit(100);
    // The flush ships those 100 in one request, which the receiver holds.
    let flush = std::thread::spawn(|| mcp_analytics::flush(Duration::from_secs(10)));
    assert!(eventually(Duration::from_secs(5), || {
        mcp_analytics::stats().queued == 0
    }));
    // More than a thread's ring holds (1,024): filling it wakes the worker, whenever its own
    // next look at the queue would be.
    emit(1_100);

    // Meanwhile the worker takes four more batches: the queue keeps the rest.
    assert!(
        eventually(Duration::from_secs(5), || mcp_analytics::stats().queued
            == 700),
        "queued: {}",
        mcp_analytics::stats().queued
    );
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        mcp_analytics::stats().queued,
        700,
        "four batches taken, no more"
    );
    assert!(
        !flush.is_finished(),
        "all of this happened while the first request was held"
    );

    flush.join().unwrap().expect("the flush finishes");
    scenario.flush();
    let rows: Vec<usize> = scenario
        .receiver
        .requests()
        .iter()
        .map(|r| r.rows)
        .collect();
    assert_eq!(rows.iter().sum::<usize>(), 1_200, "{rows:?}");
    assert!(rows.iter().all(|&n| n <= 100), "{rows:?}");
    assert_eq!(scenario.delta().sent, 1_200);
}

#[test]
fn a_steady_stream_of_events_does_not_hold_a_flush_back() {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

    let scenario = Scenario::start(Receiver::start(), |b| b.max_batch_events(200));
    let streaming = AtomicBool::new(true);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while streaming.load(Relaxed) {
                emit(1_024);
            }
        });
        std::thread::sleep(Duration::from_millis(200));
        // A flush ships what was queued when it came, not what keeps arriving: while the
        // stream runs the queue never empties, so a flush that waited for it would never be
        // answered `Ok`. The deadline only bounds how long a broken flush hangs the test; no
        // timing margin is asserted (on a busy machine the few batches take what they take).
        let flushed = mcp_analytics::flush(Duration::from_secs(30));
        streaming.store(false, Relaxed);
        flushed.expect("the flush is answered while events keep coming");
    });
    scenario.flush();
    let enqueued = mcp_analytics::stats().enqueued - scenario.stats_before().enqueued;
    assert_eq!(
        scenario.delta().sent,
        enqueued,
        "every queued event was delivered"
    );
}
