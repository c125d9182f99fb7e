//! A panicking call's row carries the panic's message (`error`, and `message` after the
//! outcome), from the panic hook `init` chains in front of the one set before it: for `&str`
//! and `String` payloads, sync and async handlers, nested calls and the rmcp wrapper's rows;
//! nothing for other payloads, for panics outside instrumented calls (nor for later calls that
//! find their message left behind), or with `panic_messages(false)`. The hook set before
//! `init`, the user's or the default one printing to stderr, still runs once per panic.
//!
//! Rows are read through the receiver's schema checks. Hooks are process-global: the scenarios
//! that set one run in a process of their own; the others take turns on the pipeline.

mod common;

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, panic_any, resume_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use common::{Memory, MemoryScenario, eventually, in_own_process};
use mcp_analytics::mcp_tool;
use mcp_analytics_receiver::Row;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, ServerCapabilities,
    ServerConfig,
};
use rmcp::{ServerHandler, ServiceExt, tool, tool_handler, tool_router};

/// Delivers what is queued, then returns the rows of handler `name`.
fn rows_named(memory: &Memory, name: &str) -> Vec<Row> {
    mcp_analytics::flush(Duration::from_secs(10)).expect("flush");
    memory
        .rows()
        .into_iter()
        .filter(|row| row.record_str("tool") == name)
        .collect()
}

/// The one row of `name`, which must be a panic's; returns its `error`, if it has one.
fn panic_of(memory: &Memory, name: &str) -> Option<String> {
    let rows = rows_named(memory, name);
    let [row] = rows.as_slice() else {
        panic!("exactly one row for `{name}`: {rows:#?}");
    };
    assert_eq!(row.record_str("outcome"), "panic", "{}", row.raw);
    assert_eq!(row.level, "error");
    let error = row.record.get("error").map(|error| {
        let error = error.as_str().expect("error is text").to_owned();
        let message = format!("tool {name}: panic: {error}");
        assert_eq!(row.record_str("message"), message, "{}", row.raw);
        error
    });
    if error.is_none() {
        assert_eq!(row.record_str("message"), format!("tool {name}: panic"));
    }
    error
}

/// Runs `f`, which must panic; the panic stops here.
fn caught<R>(f: impl FnOnce() -> R) {
    assert!(catch_unwind(AssertUnwindSafe(f)).is_err(), "it panics");
}

#[mcp_tool]
fn literal() -> u8 {
    panic!("a literal message")
}

#[mcp_tool]
fn formatted(n: u32) -> u8 {
    panic!("formatted: {n} is {}", "too many")
}

#[mcp_tool]
fn long_message() -> u8 {
    panic!("{}", "x".repeat(10_000))
}

#[test]
fn a_text_panic_carries_its_message() {
    let scenario = MemoryScenario::start(|builder| builder);
    caught(literal);
    caught(|| formatted(7));
    caught(long_message);
    let memory = &scenario.memory;
    assert_eq!(panic_of(memory, "literal").unwrap(), "a literal message");
    assert_eq!(
        panic_of(memory, "formatted").unwrap(),
        "formatted: 7 is too many"
    );
    let long = panic_of(memory, "long_message").unwrap();
    assert!(
        long.len() <= mcp_analytics::limits::MAX_ERROR_LEN,
        "cut as error texts are"
    );
    assert!(long.starts_with("xxx") && long.ends_with('…'), "{long}");
}

#[mcp_tool]
async fn async_panics(n: u32) -> u8 {
    tokio::task::yield_now().await;
    panic!("async panic {n}")
}

#[test]
fn an_async_panic_on_a_tokio_worker_carries_its_message() {
    let scenario = MemoryScenario::start(|builder| builder);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    // Polled on a worker thread, where the hook runs and where tokio drops the panicked future.
    let joined = runtime.block_on(async { tokio::spawn(async_panics(3)).await });
    assert!(joined.unwrap_err().is_panic());
    assert_eq!(
        panic_of(&scenario.memory, "async_panics").unwrap(),
        "async panic 3"
    );
}

#[mcp_tool]
fn without_text() -> u8 {
    panic_any(42_u32)
}

#[mcp_tool]
fn resumes() -> u8 {
    resume_unwind(Box::new("resumed, with no hook run"))
}

/// A future that is never ready.
struct Never;

impl Future for Never {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

#[mcp_tool]
async fn cancelled() -> u8 {
    Never.await;
    1
}

/// Catches a panic with a message, then panics with no text: no message, not the first's.
#[mcp_tool]
fn catches_then_panics_without_text() -> u8 {
    let _ = catch_unwind(|| panic!("caught inside"));
    panic_any(42_u32)
}

#[test]
fn a_panic_outside_calls_records_nothing_and_leaves_nothing_to_later_calls() {
    let scenario = MemoryScenario::start(|builder| builder);
    let enqueued = mcp_analytics::stats().enqueued;
    caught(|| panic!("outside any call"));
    assert_eq!(mcp_analytics::stats().enqueued, enqueued, "no row");

    // A call that resumes an unwinding (no hook runs) after it: its message is older than
    // the call.
    caught(resumes);
    // A cancelled call does not look.
    let mut future = Box::pin(cancelled());
    let waker = std::task::Waker::noop();
    assert!(
        future
            .as_mut()
            .poll(&mut Context::from_waker(waker))
            .is_pending()
    );
    drop(future);
    // A payload that is not text: no message, even one of a panic inside an earlier call.
    caught(literal);
    caught(without_text);
    caught(catches_then_panics_without_text);

    let memory = &scenario.memory;
    assert_eq!(panic_of(memory, "resumes"), None);
    let cancelled = rows_named(memory, "cancelled");
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].record_str("outcome"), "cancelled");
    assert!(
        cancelled[0].record.get("error").is_none(),
        "{}",
        cancelled[0].raw
    );
    assert_eq!(panic_of(memory, "without_text"), None);
    assert_eq!(panic_of(memory, "catches_then_panics_without_text"), None);
    assert_eq!(
        memory.rows().len(),
        5,
        "one row per call, none for the panic outside"
    );
}

#[mcp_tool]
fn inner() -> u8 {
    panic!("deep inside")
}

#[mcp_tool]
fn outer() -> u8 {
    inner() + 1
}

#[mcp_tool]
async fn outer_async() -> u8 {
    tokio::task::yield_now().await;
    inner() + 1
}

/// Catches what `inner` panics with, then resumes it: the same unwinding, to the caller.
#[mcp_tool]
fn catches_and_resumes() -> u8 {
    match catch_unwind(inner) {
        Ok(answer) => answer,
        Err(payload) => resume_unwind(payload),
    }
}

#[test]
fn nested_calls_unwinding_from_one_panic_each_carry_its_message() {
    let scenario = MemoryScenario::start(|builder| builder);
    caught(outer);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    caught(|| runtime.block_on(outer_async()));
    caught(catches_and_resumes);

    let memory = &scenario.memory;
    let inner_rows = rows_named(memory, "inner");
    assert_eq!(inner_rows.len(), 3, "one row per call of `inner`");
    for row in &inner_rows {
        assert_eq!(row.record_str("error"), "deep inside", "{}", row.raw);
    }
    for name in ["outer", "outer_async", "catches_and_resumes"] {
        assert_eq!(
            panic_of(memory, name).as_deref(),
            Some("deep inside"),
            "{name}"
        );
    }
}

#[mcp_tool]
fn secret() -> u8 {
    panic!("connection string postgres://admin:hunter2@db")
}

#[test]
fn panic_messages_false_records_the_outcome_only() {
    let scenario = MemoryScenario::start(|builder| builder.panic_messages(false));
    caught(secret);
    assert_eq!(panic_of(&scenario.memory, "secret"), None);
    drop(scenario);

    // A later `init` without the opt-out records messages again.
    let scenario = MemoryScenario::start(|builder| builder);
    caught(secret);
    let message = panic_of(&scenario.memory, "secret").unwrap();
    assert!(message.starts_with("connection string"), "{message}");
}

#[derive(Clone, Default)]
struct Crashing;

#[tool_router]
impl Crashing {
    #[mcp_tool]
    #[tool(description = "Panics; instrumented with our attribute too")]
    fn crash(&self) -> String {
        panic!("crash {} purpose", "on")
    }

    #[tool(description = "Panics; no attribute of ours")]
    fn crash_plain(&self) -> String {
        panic!("plain crash")
    }
}

#[tool_handler]
impl ServerHandler for Crashing {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

#[test]
fn a_panicking_rmcp_tool_is_one_row_with_the_message() {
    let scenario = MemoryScenario::start(|builder| builder);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let server = runtime.spawn(async move {
        mcp_analytics::rmcp::instrument!(Crashing)
            .serve(server_io)
            .await
    });
    let config = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("panics-client", "1.0.0"),
    );
    let client = runtime
        .block_on(config.serve(client_io))
        .expect("the client connects");
    // A tool that panics is never answered: its calls stay pending while the rows are checked.
    let calls: Vec<_> = ["crash", "crash_plain"]
        .into_iter()
        .map(|name| {
            let peer = client.peer().clone();
            runtime.spawn(async move { peer.call_tool(CallToolRequestParams::new(name)).await })
        })
        .collect();
    let memory = &scenario.memory;
    let panicked = || {
        let rows = memory.rows();
        ["crash", "crash_plain"].iter().all(|name| {
            rows.iter()
                .any(|row| row.record_str("tool") == *name && row.record_str("outcome") == "panic")
        })
    };
    assert!(
        eventually(Duration::from_secs(30), || {
            scenario.flush();
            panicked()
        }),
        "both calls were recorded as panics"
    );
    for call in calls {
        call.abort();
    }
    runtime.block_on(async {
        client.cancel().await.unwrap();
        let server = server.await.unwrap().expect("the server starts");
        let _ = server.waiting().await;
    });

    for (name, message, joined) in [
        ("crash", "crash on purpose", true),
        ("crash_plain", "plain crash", false),
    ] {
        assert_eq!(panic_of(memory, name).as_deref(), Some(message));
        let row = &rows_named(memory, name)[0];
        assert_eq!(row.record_str("error_type"), "panic", "{}", row.raw);
        assert_eq!(row.record_str("method"), "tools/call");
        assert_eq!(row.record_str("client_name"), "panics-client");
        // With our attribute, the handler's view joined the wrapper's row.
        assert_eq!(
            row.record.contains_key("handler_duration_ms"),
            joined,
            "{}",
            row.raw
        );
    }
}

static USER_HOOK_CALLS: AtomicUsize = AtomicUsize::new(0);
static LATER_HOOK_CALLS: AtomicUsize = AtomicUsize::new(0);

#[test]
fn a_hook_set_before_init_still_runs_once_per_panic() {
    in_own_process(
        "a_hook_set_before_init_still_runs_once_per_panic",
        &[],
        || {
            std::panic::set_hook(Box::new(|_| {
                USER_HOOK_CALLS.fetch_add(1, Ordering::SeqCst);
            }));
            let memory = Memory::new();
            // Started, stopped and started again: the hook is chained once.
            drop(memory.builder().try_init().unwrap());
            let _analytics = memory.builder().try_init().unwrap();
            let hooked = || USER_HOOK_CALLS.load(Ordering::SeqCst);

            caught(literal);
            assert_eq!(hooked(), 1);
            caught(|| panic!("outside any call"));
            assert_eq!(hooked(), 2);
            caught(outer); // one panic, unwinding through two calls
            assert_eq!(hooked(), 3);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .build()
                .unwrap();
            let joined = runtime.block_on(async { tokio::spawn(async_panics(1)).await });
            assert!(joined.unwrap_err().is_panic());
            assert_eq!(hooked(), 4, "on the worker thread too");
            assert_eq!(panic_of(&memory, "literal").unwrap(), "a literal message");
            assert_eq!(panic_of(&memory, "outer").unwrap(), "deep inside");
            assert_eq!(panic_of(&memory, "async_panics").unwrap(), "async panic 1");

            // A hook set after `init` replaces ours: the outcome stays, the message is gone.
            std::panic::set_hook(Box::new(|_| {
                LATER_HOOK_CALLS.fetch_add(1, Ordering::SeqCst);
            }));
            caught(|| formatted(1));
            assert_eq!((hooked(), LATER_HOOK_CALLS.load(Ordering::SeqCst)), (4, 1));
            assert_eq!(panic_of(&memory, "formatted"), None);
        },
    );
}

#[test]
fn the_default_hook_still_prints_each_panic() {
    let stderr = in_own_process("the_default_hook_still_prints_each_panic", &[], || {
        let memory = Memory::new();
        let _analytics = memory.builder().try_init().unwrap();
        caught(|| formatted(1234));
        caught(|| panic!("outside any call: 5678"));
        assert_eq!(
            panic_of(&memory, "formatted").unwrap(),
            "formatted: 1234 is too many"
        );
    });
    if common::in_child() {
        return;
    }
    for said in ["formatted: 1234 is too many", "outside any call: 5678"] {
        assert_eq!(stderr.matches(said).count(), 1, "{said} in:\n{stderr}");
    }
    assert_eq!(stderr.matches("panicked at").count(), 2, "{stderr}");
}
