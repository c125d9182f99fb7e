//! Quickstart: instrument a few handlers, call them, and see what reached the Events API.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! With no Tinybird account, events go to a loopback Events API receiver started in-process,
//! and the example prints a table of what it received, and the log lines. With `TB_API_URL` and
//! `TB_WRITE_TOKEN` set (in the environment or `.env`), events go to your Tinybird workspace
//! instead.

use std::time::Duration;

use mcp_analytics::session::with_session;
use mcp_analytics::{mcp_prompt, mcp_resource, mcp_tool};
use mcp_analytics_receiver::summary::Table;
use mcp_analytics_receiver::{Receiver, Row};
use tracing_subscriber::prelude::*;

#[mcp_tool]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[mcp_tool]
fn divide(a: i64, b: i64) -> Result<i64, String> {
    a.checked_div(b)
        .ok_or_else(|| format!("cannot divide {a} by {b}"))
}

#[mcp_tool]
fn explode() -> String {
    panic!("this tool panics on purpose")
}

#[mcp_tool(name = "fetch-weather")]
async fn weather(city: &str) -> Result<String, String> {
    if city.len() > 8 {
        tracing::warn!(city, "slow station");
    }
    let delay = 5 + city.len() as u64 * 3;
    tokio::time::sleep(Duration::from_millis(delay)).await;
    Ok(format!("sunny in {city}"))
}

#[mcp_resource(name = uri)]
fn read_resource(uri: &str) -> Result<String, String> {
    uri.strip_prefix("mem://")
        .map(|key| format!("value of {key}"))
        .ok_or_else(|| format!("unknown resource {uri}"))
}

#[mcp_prompt]
fn greeting(name: &str) -> String {
    format!("Say hello to {name}.")
}

fn main() {
    let to_tinybird = std::env::var_os("TB_WRITE_TOKEN").is_some();
    let receiver = (!to_tinybird).then(Receiver::start);
    let builder = match &receiver {
        Some(receiver) => mcp_analytics::builder()
            .read_env(false)
            .api_url(receiver.url())
            .token(receiver.token())
            // The receiver ends with this process: nothing could be delivered later.
            .spool(false),
        None => mcp_analytics::builder(),
    };
    let _analytics = builder.init();
    // Log lines too: `tracing` events at INFO and above become rows of the same datasource.
    tracing_subscriber::registry()
        .with(mcp_analytics::tracing::layer!())
        .init();

    for i in 0..20 {
        add(i, i);
        let _ = divide(100, i % 5);
    }
    // A panicking tool: the panic propagates as it would without analytics; here we catch it.
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let _ = std::panic::catch_unwind(explode);
    std::panic::set_hook(quiet);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(with_session("client-session-1", async {
        for city in ["Oslo", "Lisbon", "Montevideo", "Ulaanbaatar"] {
            let _ = weather(city).await;
        }
    }));
    for uri in ["mem://a", "mem://b", "disk://c"] {
        let _ = read_resource(uri);
    }
    greeting("Ada");

    if let Err(error) = mcp_analytics::flush(Duration::from_secs(3)) {
        eprintln!("flush: {error}");
    }
    let stats = mcp_analytics::stats();
    match &receiver {
        Some(receiver) => {
            let rows = receiver.rows();
            println!("{}", Table::from_rows(&rows));
            let logs: Vec<&Row> = rows
                .iter()
                .filter(|row| row.record_str("kind") == "log")
                .collect();
            print_logs(&logs);
        }
        None => println!("Shipped to Tinybird: see your workspace's mcp_logs datasource."),
    }
    println!(
        "\nsent: {} events in {} requests; dropped: {}; failed: {}",
        stats.sent, stats.batches, stats.dropped, stats.failed
    );
}

/// The log lines, with the handler each was written in.
fn print_logs(logs: &[&Row]) {
    println!("\n{:<9} {:<28} message", "level", "handler");
    for log in logs {
        let handler = format!(
            "{} {}",
            log.record_str("handler_kind"),
            log.record_str("handler")
        );
        println!(
            "{:<9} {:<28} {} {}",
            log.level,
            handler.trim(),
            log.record_str("message"),
            log.record["fields"]
        );
    }
}
