//! Log lines through the `tracing` layer: every level, the fields, the handler a line was
//! written in (sync, async, nested, in a span) and the function that names it, the level filter,
//! the share of the queue log lines may take, and no feedback from the worker's own thread. Which
//! crates' lines ship, and how to choose, is `tests/log_filters.rs`.
//!
//! Each test installs the layer as its thread's default subscriber and takes its turn on the
//! process-global pipeline. Most deliver to memory ([`MemoryScenario`]), their lines read
//! through the receiver's schema checks; the two that need HTTP run against the strict loopback
//! Events API ([`Scenario`]): the queue-share test holds the worker in hanging requests, and the
//! no-feedback test counts on the HTTP client logging about each request it makes.

mod common;

use std::time::Duration;

use common::{MemoryScenario, Scenario};
use mcp_analytics::session::{in_session, with_session};
use mcp_analytics::{mcp_prompt, mcp_tool};
use mcp_analytics_receiver::{Receiver, Row};
use serde_json::{Value, json};
use tracing::Level;
use tracing_subscriber::prelude::*;

/// The layer of this crate, at `level`.
fn layer(level: Level) -> mcp_analytics::tracing::Layer {
    mcp_analytics::tracing::layer!().with_level(level)
}

/// Runs `f` with `layer` as this thread's subscriber, then ships what it queued and returns the
/// rows that arrived.
fn logged(
    scenario: &MemoryScenario,
    layer: mcp_analytics::tracing::Layer,
    f: impl FnOnce(),
) -> Vec<Row> {
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, f);
    scenario.flush();
    scenario.memory.rows()
}

fn logs(rows: &[Row]) -> Vec<&Row> {
    rows.iter()
        .filter(|row| row.record_str("kind") == "log")
        .collect()
}

fn fields(row: &Row) -> &serde_json::Map<String, Value> {
    row.record["fields"].as_object().expect("a `fields` object")
}

#[test]
fn every_level_becomes_a_row_with_its_level_in_lower_case() {
    let scenario = MemoryScenario::start(|b| b);
    let rows = logged(&scenario, layer(Level::TRACE), || {
        tracing::error!("disk full");
        tracing::warn!("disk almost full");
        tracing::info!("disk checked");
        tracing::debug!("disk probed");
        tracing::trace!("disk polled");
    });
    let lines: Vec<(&str, &str)> = logs(&rows)
        .iter()
        .map(|row| (row.level.as_str(), row.record_str("message")))
        .collect();
    assert_eq!(
        lines,
        [
            ("error", "disk full"),
            ("warn", "disk almost full"),
            ("info", "disk checked"),
            ("debug", "disk probed"),
            ("trace", "disk polled"),
        ]
    );
    for row in logs(&rows) {
        assert_eq!(row.record_str("appName"), "mcp-analytics-dev");
        assert_eq!(row.record_str("version"), env!("CARGO_PKG_VERSION"));
        assert_eq!(row.record_str("target"), "logs");
        assert_eq!(row.record_str("funcName"), "logs", "no span: the target");
        assert_eq!(
            row.session,
            mcp_analytics::session::process_session_id().as_str()
        );
        for key in [
            "tool",
            "prompt",
            "resource",
            "handler",
            "handler_kind",
            "fields",
        ] {
            assert!(!row.record.contains_key(key), "{key} on {}", row.raw);
        }
    }
}

#[test]
fn the_level_filter_keeps_only_what_is_as_severe() {
    let scenario = MemoryScenario::start(|b| b);
    let rows = logged(&scenario, layer(Level::WARN), || {
        tracing::error!("kept");
        tracing::warn!("kept too");
        tracing::info!("left out");
        tracing::debug!("left out");
    });
    let levels: Vec<&str> = logs(&rows).iter().map(|row| row.level.as_str()).collect();
    assert_eq!(levels, ["error", "warn"]);

    // The default is INFO.
    let scenario = {
        drop(scenario);
        MemoryScenario::start(|b| b)
    };
    let rows = logged(&scenario, mcp_analytics::tracing::layer!(), || {
        tracing::info!("kept");
        tracing::debug!("left out");
    });
    let levels: Vec<&str> = logs(&rows).iter().map(|row| row.level.as_str()).collect();
    assert_eq!(levels, ["info"]);
}

#[test]
fn fields_are_a_json_object_with_their_types() {
    let scenario = MemoryScenario::start(|b| b);
    let rows = logged(&scenario, layer(Level::INFO), || {
        let error = std::io::Error::other("timed out");
        tracing::info!(
            user = "ada",
            attempts = 3u64,
            delta = -2i64,
            ratio = 0.5,
            cached = false,
            tags = ?["a", "b"],
            error = &error as &dyn std::error::Error,
            "logged in after {} tries",
            3
        );
    });
    let log = logs(&rows)[0];
    assert_eq!(log.record_str("message"), "logged in after 3 tries");
    assert_eq!(
        Value::Object(fields(log).clone()),
        json!({
            "user": "ada",
            "attempts": 3,
            "delta": -2,
            "ratio": 0.5,
            "cached": false,
            "tags": "[\"a\", \"b\"]",
            "error": "timed out",
        })
    );
}

#[mcp_tool]
fn lookup(city: &str) -> Result<u32, String> {
    tracing::info!(city, "looking up");
    if city.is_empty() {
        tracing::error!("no city given");
        return Err("no city".to_owned());
    }
    Ok(7)
}

#[mcp_tool(name = "slow-echo")]
async fn slow_echo(text: String) -> String {
    tracing::info!("before the await");
    tokio::task::yield_now().await;
    tracing::info!("after the await");
    text
}

#[mcp_prompt]
fn greet(name: &str) -> String {
    // A call made inside another: its lines name it, and the outer's resume after it.
    lookup(name).ok();
    tracing::info!("greeting");
    format!("hello {name}")
}

#[test]
fn lines_written_in_a_handler_name_it_and_carry_its_session() {
    let scenario = MemoryScenario::start(|b| b);
    let rows = logged(&scenario, layer(Level::INFO), || {
        in_session("session-sync", || {
            lookup("Lisbon").unwrap();
            lookup("").unwrap_err();
            greet("ada");
        });
        tracing::info!("outside any handler");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(with_session("session-async", slow_echo("hi".into())));
    });
    let lines: Vec<(&str, &str, &str, &str)> = logs(&rows)
        .iter()
        .map(|row| {
            (
                row.record_str("message"),
                row.record_str("handler_kind"),
                row.record_str("handler"),
                row.session.as_str(),
            )
        })
        .collect();
    let process = mcp_analytics::session::process_session_id();
    assert_eq!(
        lines,
        [
            ("looking up", "tool", "lookup", "session-sync"),
            ("looking up", "tool", "lookup", "session-sync"),
            ("no city given", "tool", "lookup", "session-sync"),
            ("looking up", "tool", "lookup", "session-sync"),
            ("greeting", "prompt", "greet", "session-sync"),
            ("outside any handler", "", "", process.as_str()),
            ("before the await", "tool", "slow-echo", "session-async"),
            ("after the await", "tool", "slow-echo", "session-async"),
        ]
    );
    // The lines never count as requests of the handler: only its call events have `tool`.
    let lookup_rows = rows
        .iter()
        .filter(|row| row.record_str("tool") == "lookup")
        .count();
    assert_eq!(lookup_rows, 3, "three calls of lookup, one row each");
    for log in logs(&rows) {
        for key in ["tool", "prompt", "resource"] {
            assert!(!log.record.contains_key(key), "{key} on {}", log.raw);
        }
    }
    // An error line is an error row, as the template counts them; the call failed too.
    let errors: Vec<&str> = rows
        .iter()
        .filter(|row| row.level == "error")
        .map(|row| row.record_str("kind"))
        .collect();
    assert_eq!(errors, ["log", "tool"]);
}

#[test]
fn a_line_in_a_span_is_named_after_the_span() {
    let scenario = MemoryScenario::start(|b| b);
    let rows = logged(&scenario, layer(Level::INFO), || {
        let span = tracing::info_span!("refresh_cache", shard = 3);
        let _entered = span.enter();
        tracing::info!("refreshed");
    });
    let log = logs(&rows)[0];
    assert_eq!(log.record_str("funcName"), "refresh_cache");
    assert_eq!(log.record_str("target"), "logs");
}

#[mcp_tool(name = "weather-now")]
fn forecast(city: &str) -> String {
    tracing::info!(city, "forecasting");
    // A span of the handler's own: the line is still the handler's function's.
    let parsing = tracing::info_span!("parse_city");
    parsing.in_scope(|| tracing::info!("parsed"));
    format!("sunny in {city}")
}

#[mcp_tool]
async fn forecast_later(city: String) -> String {
    tokio::task::yield_now().await;
    tracing::info!(city, "forecast ready");
    city
}

#[test]
fn a_line_in_a_handler_is_named_after_its_function_not_the_span_serving_it() {
    use tracing::Instrument;

    let scenario = MemoryScenario::start(|b| b);
    let rows = logged(&scenario, layer(Level::INFO), || {
        // What rmcp does: the handler runs inside the service's span, `serve_inner`.
        let serving = tracing::info_span!("serve_inner");
        serving.in_scope(|| {
            forecast("Oslo");
            tracing::info!("between calls");
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(forecast_later("Quito".into()).instrument(serving));
    });
    let lines: Vec<(&str, &str, &str)> = logs(&rows)
        .iter()
        .map(|row| {
            (
                row.record_str("message"),
                row.record_str("funcName"),
                row.record_str("handler"),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("forecasting", "forecast", "weather-now"),
            ("parsed", "forecast", "weather-now"),
            ("between calls", "serve_inner", ""),
            ("forecast ready", "forecast_later", "forecast_later"),
        ]
    );
    // The same function names the call's own row.
    let calls: Vec<(&str, &str)> = rows
        .iter()
        .filter(|row| row.record_str("kind") == "tool")
        .map(|row| (row.record_str("tool"), row.record_str("funcName")))
        .collect();
    assert_eq!(
        calls,
        [
            ("weather-now", "forecast"),
            ("forecast_later", "forecast_later")
        ]
    );
}

#[test]
fn log_lines_take_half_the_queue_at_most_and_calls_keep_the_rest() {
    // In a process of its own: the queue's capacity is set once per process.
    common::in_own_process(
        "log_lines_take_half_the_queue_at_most_and_calls_keep_the_rest",
        &[],
        || {
            // A small queue, small batches, and an endpoint that holds every request: the
            // worker takes a few batches' worth, then the queue fills.
            let receiver = Receiver::start();
            receiver.script(std::iter::repeat_n(
                mcp_analytics_receiver::Scripted::Hang,
                10,
            ));
            let scenario = Scenario::start(receiver, |b| {
                b.queue_capacity(100)
                    .max_batch_events(10)
                    .shutdown_timeout(Duration::from_millis(200))
            });
            let subscriber = tracing_subscriber::registry().with(mcp_analytics::tracing::layer!());
            tracing::subscriber::with_default(subscriber, || {
                for i in 0..500 {
                    tracing::info!(i, "storm");
                }
                for i in 1..=50 {
                    lookup(&i.to_string()).unwrap();
                }
            });
            let stats = mcp_analytics::stats();
            // Log lines held half the queue at most (plus what the worker took out of it), so
            // the 50 calls, and the 50 lines they log, found room or lost only log lines.
            assert!(stats.dropped_log_lines >= 400, "{stats:?}");
            assert_eq!(stats.dropped, stats.dropped_log_lines, "{stats:?}");
            drop(scenario);
        },
    );
}

#[test]
fn the_log_crate_arrives_through_the_bridge_and_the_worker_never_feeds_itself() {
    common::in_own_process(
        "the_log_crate_arrives_through_the_bridge_and_the_worker_never_feeds_itself",
        &[],
        || {
            // Everything, everywhere: the `log` crate's records (the HTTP client's among them,
            // on the worker's thread) become `tracing` events, and the layer takes every level
            // of every crate.
            tracing_log::LogTracer::init().expect("the bridge installs");
            tracing::subscriber::set_global_default(
                tracing_subscriber::registry().with(
                    mcp_analytics::tracing::layer!()
                        .with_level(Level::TRACE)
                        .with_other_crates(Level::TRACE),
                ),
            )
            .expect("the subscriber installs");
            let scenario = Scenario::start(Receiver::start(), |b| b);
            log::info!(target: "billing", "invoice {} sent", 42);
            for i in 0..20 {
                lookup(&format!("city {i}")).unwrap();
                // Each flush is a request, and the client logs about each.
                scenario.flush();
            }
            scenario.flush();
            let rows = scenario.receiver.rows();
            let logs = logs(&rows);
            let bridged: Vec<&str> = logs
                .iter()
                .filter(|row| row.record_str("target") == "billing")
                .map(|row| row.record_str("message"))
                .collect();
            assert_eq!(bridged, ["invoice 42 sent"]);
            let others: Vec<&str> = logs
                .iter()
                .filter(|row| !["billing", "logs"].contains(&row.record_str("target")))
                .map(|row| row.raw.as_str())
                .collect();
            assert!(
                others.is_empty(),
                "lines from the worker's thread: {others:#?}"
            );
            assert_eq!(logs.len(), 1 + 20, "the bridged line and one per call");
        },
    );
}
