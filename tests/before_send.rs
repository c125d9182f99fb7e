//! The `before_send` hook: it sees every row as an `Event` on the worker thread, and keeps,
//! amends or drops it; dropped rows are counted, and a panicking hook loses only its row. Rows
//! are read back through the receiver's schema checks.

mod common;

use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use mcp_analytics::mcp_tool;
use serde_json::json;

use common::MemoryScenario;

#[mcp_tool]
fn kept() {}

#[mcp_tool]
fn sampled_out() {}

#[mcp_tool]
fn amended() {}

#[test]
fn the_hook_keeps_amends_and_drops_rows_on_the_worker_thread() {
    let threads: Arc<Mutex<Vec<ThreadId>>> = Arc::default();
    let seen_by_hook = Arc::clone(&threads);
    let scenario = MemoryScenario::start(move |builder| {
        builder.before_send(move |mut event| {
            seen_by_hook
                .lock()
                .unwrap()
                .push(std::thread::current().id());
            match event.record.get("tool").and_then(|tool| tool.as_str()) {
                Some("sampled_out") => None,
                Some("amended") => {
                    event.record.insert("region".into(), json!("eu"));
                    event.record.remove("funcName");
                    event.level = "warn".into();
                    Some(event)
                }
                _ => Some(event),
            }
        })
    });
    let before = mcp_analytics::stats();
    for _ in 0..3 {
        kept();
        sampled_out();
        amended();
    }
    scenario.flush();
    let rows = scenario.memory.rows();
    let named = |tool: &str| {
        rows.iter()
            .filter(|row| row.record_str("tool") == tool)
            .collect::<Vec<_>>()
    };
    assert_eq!(named("kept").len(), 3);
    assert_eq!(named("sampled_out").len(), 0, "dropped by the hook");
    let amended_rows = named("amended");
    assert_eq!(amended_rows.len(), 3);
    for row in amended_rows {
        assert_eq!(row.record_str("region"), "eu");
        assert_eq!(row.record.get("funcName"), None);
        assert_eq!(row.level, "warn");
    }
    let after = mcp_analytics::stats();
    assert_eq!(after.filtered - before.filtered, 3);
    assert_eq!(after.sent - before.sent, 6);

    let threads = threads.lock().unwrap();
    assert_eq!(threads.len(), 9, "the hook saw every row");
    let here = std::thread::current().id();
    assert!(
        threads.iter().all(|thread| *thread != here),
        "never on the thread that made the calls"
    );
}

#[mcp_tool]
fn hook_panics_on_me() {}

#[test]
fn a_panicking_hook_drops_only_the_row_it_was_given() {
    let scenario = MemoryScenario::start(|builder| {
        builder.before_send(|event| {
            if event.record.get("tool").and_then(|tool| tool.as_str()) == Some("hook_panics_on_me")
            {
                panic!("a bug in the hook");
            }
            Some(event)
        })
    });
    let before = mcp_analytics::stats();
    hook_panics_on_me();
    kept();
    hook_panics_on_me();
    kept();
    scenario.flush();
    let rows = scenario.memory.rows();
    assert_eq!(
        rows.iter()
            .filter(|row| row.record_str("tool") == "kept")
            .count(),
        2,
        "the worker lives on"
    );
    assert!(
        rows.iter()
            .all(|row| row.record_str("tool") != "hook_panics_on_me")
    );
    assert_eq!(mcp_analytics::stats().filtered - before.filtered, 2);
}
