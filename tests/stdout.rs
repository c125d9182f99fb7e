//! The library never writes to stdout: for a stdio MCP server, stdout is the protocol.
//!
//! A custom harness (no libtest, whose own output goes to stdout): the binary re-runs itself as
//! a child that goes through every path where the library says something (no token, a second
//! init, a full queue, refused and retried batches, a shutdown that times out, panicking
//! tools), and asserts that the child's stdout is empty while its stderr has the diagnostics.

use std::process::{Command, ExitCode};
use std::time::Duration;

use mcp_analytics::mcp_tool;
use mcp_analytics_receiver::{Receiver, Scripted};

const CHILD: &str = "MCP_ANALYTICS_STDOUT_CHILD";

#[mcp_tool]
fn noisy(i: u32) -> Result<u32, String> {
    if i.is_multiple_of(2) {
        Ok(i)
    } else {
        Err(format!("odd {i}"))
    }
}

#[mcp_tool]
fn explodes() {
    panic!("tool panicked");
}

fn child() {
    for i in 0..20_000 {
        let _ = noisy(i); // overflows the queue before init
    }
    let _disabled = mcp_analytics::builder().read_env(false).init(); // no token
    let receiver = Receiver::start();
    let configure = || {
        mcp_analytics::builder()
            .read_env(false)
            .api_url(receiver.url())
            .token(receiver.token())
            .spool(false)
            .shutdown_timeout(Duration::from_millis(500))
    };
    let analytics = configure().init();
    let _second = configure().init();
    std::panic::set_hook(Box::new(|_| {})); // the default hook writes to stderr anyway
    let _ = std::panic::catch_unwind(explodes);
    receiver.script([Scripted::status(500), Scripted::status(403), Scripted::Hang]);
    for i in 0..10 {
        let _ = noisy(i);
    }
    let _ = mcp_analytics::flush(Duration::from_millis(500)); // 500 then retried, 403 refused
    for i in 0..10 {
        let _ = noisy(i);
    }
    let _ = mcp_analytics::flush(Duration::from_millis(500));
    let _ = noisy(1); // the hanging request: shutdown times out
    drop(analytics);
}

fn main() -> ExitCode {
    if std::env::var_os(CHILD).is_some() {
        child();
        return ExitCode::SUCCESS;
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, "1")
        .env_remove("TB_WRITE_TOKEN")
        .output()
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mut failures = Vec::new();
    if !output.status.success() {
        failures.push(format!("the child failed: {stderr}"));
    }
    if !stdout.is_empty() {
        failures.push(format!("the library wrote to stdout: {stdout:?}"));
    }
    for expected in [
        "queue is full",
        "no Tinybird write token",
        "init() was called again",
        "refused a batch",
        "shutdown:",
    ] {
        if !stderr.contains(expected) {
            failures.push(format!("stderr lacks `{expected}`: {stderr}"));
        }
    }
    for failure in &failures {
        eprintln!("{failure}");
    }
    let failed = failures.len().min(1);
    println!("stdout_silence: {} passed, {failed} failed", 1 - failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
