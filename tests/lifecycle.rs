//! Starting and stopping: events recorded before `init`, configuration from `.env` and the
//! environment, disabled operation without a token, a second `init`, the guard's flush on drop,
//! and a full queue.
//!
//! The pipeline is process-global, so each test runs its scenario in a fresh process: the test
//! binary itself, re-run with `--exact <test>` and a marker variable. The parent checks the
//! child's exit status and what it wrote to stderr.
//!
//! Where the rows only need counting, the pipeline delivers to memory ([`Memory`]), its lines
//! read through the receiver's schema checks. The tests of configuration (`.env`, the
//! environment, a malformed URL) take the real Events API path, which memory skips, and the
//! tests of time limits need a loopback receiver that hangs: those run against a [`Receiver`].

mod common;

use std::time::Duration;

use common::{Memory, builder_for, in_child, in_own_process};
use mcp_analytics::mcp_tool;
use mcp_analytics_receiver::Receiver;

#[mcp_tool]
fn lifecycle_tool(i: u32) -> u32 {
    i
}

fn emit(n: u32) {
    for i in 0..n {
        lifecycle_tool(i);
    }
}

#[test]
fn events_recorded_before_init_ship_once_it_runs() {
    in_own_process("events_recorded_before_init_ship_once_it_runs", &[], || {
        emit(3);
        assert_eq!(mcp_analytics::stats().enqueued, 3);
        let memory = Memory::new();
        let _analytics = memory.builder().try_init().unwrap();
        mcp_analytics::flush(Duration::from_secs(3)).unwrap();
        assert_eq!(memory.rows().len(), 3);
        assert_eq!(mcp_analytics::stats().sent, 3);
    });
}

#[test]
fn init_reads_dotenv_and_the_environment_wins_over_it() {
    let stderr = in_own_process(
        "init_reads_dotenv_and_the_environment_wins_over_it",
        &[("TB_DATASOURCE", "from_environment")],
        || {
            let receiver = Receiver::builder().datasource("from_environment").build();
            std::fs::write(
                ".env",
                format!(
                    "# as the template's Python example writes it\nTB_API_URL={}/\nTB_WRITE_TOKEN={}\nTB_DATASOURCE=from_file\n",
                    receiver.url(),
                    receiver.token()
                ),
            )
            .unwrap();
            let _analytics = mcp_analytics::init();
            emit(2);
            mcp_analytics::flush(Duration::from_secs(3)).unwrap();
            let rows = receiver.rows();
            assert_eq!(rows.len(), 2, "{:?}", receiver.requests());
            assert!(rows.iter().all(|row| row.datasource == "from_environment"));
        },
    );
    if !in_child() {
        assert_eq!(stderr.matches("mcp-analytics:").count(), 0, "{stderr}");
    }
}

#[test]
fn without_a_token_analytics_is_disabled_and_events_are_dropped() {
    let stderr = in_own_process(
        "without_a_token_analytics_is_disabled_and_events_are_dropped",
        &[],
        || {
            emit(2); // before init: queued, then dropped when init finds no token
            assert!(matches!(
                mcp_analytics::try_init(),
                Err(mcp_analytics::Error::MissingToken)
            ));
            let _analytics = mcp_analytics::init();
            emit(3);
            let stats = mcp_analytics::stats();
            assert_eq!((stats.enqueued, stats.dropped), (0, 5), "{stats:?}");
            assert!(
                mcp_analytics::flush(Duration::from_secs(3)).is_ok(),
                "nothing to flush when disabled"
            );
        },
    );
    if !in_child() {
        assert_eq!(
            stderr.matches("no Tinybird write token").count(),
            1,
            "{stderr}"
        );
        assert!(stderr.contains("analytics is disabled"), "{stderr}");
    }
}

#[test]
fn a_malformed_url_is_reported_clearly() {
    let stderr = in_own_process("a_malformed_url_is_reported_clearly", &[], || {
        let error = mcp_analytics::builder()
            .read_env(false)
            .api_url("api.tinybird.co")
            .token("p.secret-token")
            .try_init()
            .unwrap_err();
        assert!(matches!(error, mcp_analytics::Error::InvalidUrl { .. }));
        let _analytics = mcp_analytics::builder()
            .read_env(false)
            .api_url("api.tinybird.co")
            .token("p.secret-token")
            .init();
    });
    if !in_child() {
        assert!(stderr.contains("`api.tinybird.co`"), "{stderr}");
        assert!(
            stderr.contains("https://api.tinybird.co"),
            "suggests the fix: {stderr}"
        );
        assert!(!stderr.contains("secret"), "{stderr}");
    }
}

#[test]
fn a_second_init_is_refused_while_running_and_allowed_after_shutdown() {
    let stderr = in_own_process(
        "a_second_init_is_refused_while_running_and_allowed_after_shutdown",
        &[],
        || {
            let memory = Memory::new();
            let _first = memory.builder().try_init().unwrap();
            assert!(matches!(
                memory.builder().try_init(),
                Err(mcp_analytics::Error::AlreadyInitialized)
            ));
            let inert = memory.builder().datasource("ignored").init();
            drop(inert); // an inert guard does not stop the running pipeline
            emit(2);
            mcp_analytics::shutdown(Duration::from_secs(3)).unwrap();
            assert_eq!(memory.rows().len(), 2);

            emit(1); // after shutdown: dropped and counted
            assert_eq!(mcp_analytics::stats().dropped, 1);

            let _again = memory.builder().try_init().unwrap();
            emit(4);
            mcp_analytics::shutdown(Duration::from_secs(3)).unwrap();
            assert_eq!(memory.rows().len(), 6);
        },
    );
    if !in_child() {
        assert!(stderr.contains("init() was called again"), "{stderr}");
    }
}

#[test]
fn dropping_the_guard_delivers_everything_queued() {
    in_own_process("dropping_the_guard_delivers_everything_queued", &[], || {
        let memory = Memory::new();
        let analytics = memory
            .builder()
            .max_batch_age(Duration::from_secs(3600))
            .init();
        emit(10_000);
        drop(analytics);
        assert_eq!(memory.rows().len(), 10_000);
        let stats = mcp_analytics::stats();
        assert_eq!((stats.sent, stats.dropped, stats.failed), (10_000, 0, 0));
    });
}

#[test]
fn a_full_queue_drops_counts_and_warns_once() {
    let stderr = in_own_process("a_full_queue_drops_counts_and_warns_once", &[], || {
        // Before init the queue has its default capacity and nothing drains it.
        let capacity = 16_384;
        emit(capacity + 1000);
        let stats = mcp_analytics::stats();
        assert_eq!(stats.enqueued, u64::from(capacity));
        assert_eq!(stats.dropped, 1000);

        // Once running, the queued events ship and nothing is lost beyond the dropped ones.
        let memory = Memory::new();
        let _analytics = memory.builder().try_init().unwrap();
        mcp_analytics::shutdown(Duration::from_secs(3)).unwrap();
        assert_eq!(memory.rows().len(), capacity as usize);
    });
    if !in_child() {
        assert_eq!(stderr.matches("queue is full").count(), 1, "{stderr}");
    }
}

#[test]
fn init_works_inside_any_tokio_runtime_flavor() {
    in_own_process("init_works_inside_any_tokio_runtime_flavor", &[], || {
        let memory = Memory::new();
        let current_thread = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        current_thread.block_on(async {
            let analytics = memory.builder().try_init().unwrap();
            emit(3);
            // Dropping the guard inside the runtime blocks briefly; it must not panic.
            drop(analytics);
        });
        assert_eq!(memory.rows().len(), 3);

        let multi_thread = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        multi_thread.block_on(async {
            let _analytics = memory.builder().try_init().unwrap();
            let tasks: Vec<_> = (0..4).map(|_| tokio::spawn(async { emit(5) })).collect();
            for task in tasks {
                task.await.unwrap();
            }
            mcp_analytics::shutdown(Duration::from_secs(3)).unwrap();
        });
        assert_eq!(memory.rows().len(), 23);
    });
}

#[test]
fn a_shutdown_cut_short_reports_exactly_what_it_gave_up_in_time() {
    in_own_process(
        "a_shutdown_cut_short_reports_exactly_what_it_gave_up_in_time",
        &[],
        || {
            let receiver = Receiver::start();
            receiver.script([mcp_analytics_receiver::Scripted::Hang]);
            let _analytics = builder_for(&receiver)
                .queue_capacity(200_000)
                .max_batch_age(Duration::from_millis(10))
                .shutdown_timeout(Duration::from_millis(500))
                .try_init()
                .unwrap();
            emit(1); // its request hangs
            assert_eq!(
                receiver.wait_for_requests(1, Duration::from_secs(5)).len(),
                1
            );
            emit(100_000); // queued behind it

            let started = std::time::Instant::now();
            let result = mcp_analytics::shutdown(Duration::from_millis(500));
            let took = started.elapsed();
            assert!(took <= Duration::from_millis(800), "{took:?}");
            match result {
                Err(mcp_analytics::Error::Timeout { undelivered, .. }) => {
                    assert_eq!(undelivered, 100_001);
                }
                other => panic!("expected a timeout counting 100001 events, got {other:?}"),
            }
            let at_return = mcp_analytics::stats();
            assert_eq!((at_return.sent, at_return.failed), (0, 100_001));
            // The worker has stopped: nothing is counted after shutdown returned.
            std::thread::sleep(Duration::from_millis(300));
            assert_eq!(mcp_analytics::stats(), at_return);
        },
    );
}

#[test]
fn a_failed_try_init_disables_analytics_as_init_does_and_a_later_init_recovers() {
    let stderr = in_own_process(
        "a_failed_try_init_disables_analytics_as_init_does_and_a_later_init_recovers",
        &[],
        || {
            emit(4); // before init: queued
            let refused = mcp_analytics::builder().read_env(false).try_init();
            assert!(matches!(refused, Err(mcp_analytics::Error::MissingToken)));
            // Nothing piles up behind a failed start: what was queued is counted as dropped,
            // and so is what comes after, until a start succeeds.
            emit(6);
            let stats = mcp_analytics::stats();
            assert_eq!(
                (stats.enqueued, stats.queued, stats.dropped),
                (0, 0, 10),
                "{stats:?}"
            );

            let memory = mcp_analytics::testing::InMemory::new();
            let _analytics = mcp_analytics::builder()
                .deliver_to(&memory)
                .try_init()
                .expect("a later start succeeds");
            emit(2);
            mcp_analytics::flush(Duration::from_secs(10)).unwrap();
            assert_eq!(memory.lines().len(), 2, "delivered again once started");
        },
    );
    if !in_child() {
        // `try_init` returns its error rather than saying it: only the `disabled` warning of
        // the dropped events shows, once.
        assert!(!stderr.contains("no Tinybird write token"), "{stderr}");
        assert_eq!(
            stderr.matches("disabled or shut down").count(),
            1,
            "{stderr}"
        );
    }
}

#[test]
fn an_old_guard_leaves_a_newer_worker_running() {
    in_own_process("an_old_guard_leaves_a_newer_worker_running", &[], || {
        let memory = mcp_analytics::testing::InMemory::new();
        let start = || {
            mcp_analytics::builder()
                .deliver_to(&memory)
                .try_init()
                .unwrap()
        };
        let first = start();
        mcp_analytics::shutdown(Duration::from_secs(10)).unwrap();
        let _second = start();
        drop(first); // shut down explicitly already: the second worker is not its to stop
        emit(5);
        mcp_analytics::flush(Duration::from_secs(10)).expect("the second worker still runs");
        assert_eq!(memory.lines().len(), 5);
    });
}

#[test]
fn flush_and_shutdown_wait_for_the_time_they_are_given() {
    in_own_process(
        "flush_and_shutdown_wait_for_the_time_they_are_given",
        &[],
        || {
            let receiver = Receiver::start();
            receiver.script([mcp_analytics_receiver::Scripted::Hang]);
            // The builder's shutdown timeout is long; the calls below pass their own, shorter.
            let _analytics = builder_for(&receiver)
                .shutdown_timeout(Duration::from_secs(600))
                .max_batch_age(Duration::from_millis(10))
                .try_init()
                .unwrap();
            emit(1);
            let timeout = Duration::from_millis(200);
            match mcp_analytics::flush(timeout) {
                Err(mcp_analytics::Error::Timeout {
                    undelivered,
                    timeout: waited,
                }) => assert_eq!((undelivered, waited), (1, timeout)),
                other => panic!("a flush held by a hanging endpoint times out: {other:?}"),
            }
            match mcp_analytics::shutdown(timeout) {
                Err(mcp_analytics::Error::Timeout {
                    undelivered,
                    timeout: waited,
                }) => assert_eq!((undelivered, waited), (1, timeout)),
                other => panic!("a shutdown held by a hanging endpoint times out: {other:?}"),
            }
            assert_eq!(
                mcp_analytics::stats().failed,
                1,
                "counted by the time it returned"
            );
        },
    );
}
