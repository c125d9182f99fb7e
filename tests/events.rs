//! One event per call, with the right fields: kinds, names, outcomes (ok, error, panic,
//! cancelled), durations, sessions and the instrumented crate's name and version, as delivered
//! by the real pipeline to memory and read through the receiver's schema checks (no HTTP).
//!
//! All tests of this binary share one initialized pipeline (it is process-global,
//! [`common::shared_memory`]); each test uses names of its own and reads back only its own rows.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use mcp_analytics::session::{in_session, with_session};
use mcp_analytics::{CallOutcome, mcp_prompt, mcp_resource, mcp_tool};
use mcp_analytics_receiver::Row;

/// Flushes, then returns the rows whose tool, prompt or resource is `name`.
fn rows_named(name: &str) -> Vec<Row> {
    common::shared_memory();
    mcp_analytics::flush(Duration::from_secs(10)).expect("flush");
    common::shared_memory()
        .rows()
        .into_iter()
        .filter(|row| {
            ["tool", "prompt", "resource"]
                .iter()
                .any(|key| row.record_str(key) == name)
        })
        .collect()
}

fn only_row(name: &str) -> Row {
    let mut rows = rows_named(name);
    assert_eq!(rows.len(), 1, "exactly one event for `{name}`: {rows:#?}");
    rows.remove(0)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

#[mcp_tool]
fn add_ok(a: i64, b: i64) -> i64 {
    a + b
}

#[test]
fn a_successful_call_records_every_field() {
    common::shared_memory();
    let before = std::time::SystemTime::now();
    assert_eq!(add_ok(2, 3), 5);
    let row = only_row("add_ok");

    assert_eq!(row.level, "info");
    assert_eq!(
        row.session,
        mcp_analytics::session::process_session_id().as_str()
    );
    assert_eq!(row.record_str("kind"), "tool");
    assert_eq!(row.record_str("outcome"), "ok");
    assert_eq!(row.record_str("funcName"), "add_ok");
    assert_eq!(row.record_str("prompt"), "");
    assert_eq!(row.record_str("resource"), "");
    assert_eq!(row.record_str("error"), "");
    assert_eq!(row.record_str("message"), "tool add_ok: ok");
    // The crate that used the attribute, read at its compile time.
    assert_eq!(row.record_str("appName"), env!("CARGO_PKG_NAME"));
    assert_eq!(row.record_str("version"), env!("CARGO_PKG_VERSION"));
    let duration = row.duration_ms().expect("duration_ms is a number");
    assert!((0.0..1000.0).contains(&duration), "{duration}");

    // UTC, to the millisecond, between the call and now.
    let after = std::time::SystemTime::now();
    assert_eq!(
        row.timestamp.len(),
        "2026-11-24 07:02:36.123".len(),
        "{}",
        row.timestamp
    );
    let hour = &row.timestamp[..13];
    assert!(
        hour == utc_hour(before) || hour == utc_hour(after),
        "{} is not around {}",
        row.timestamp,
        utc_hour(before)
    );
}

/// `YYYY-MM-DD HH` of a time in UTC, computed independently of the crate's own calendar code.
fn utc_hour(time: std::time::SystemTime) -> String {
    let secs = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let days = secs / 86_400;
    // Walk years and months from 1970: slow but obviously right.
    let (mut year, mut rest) = (1970_u64, days);
    let leap = |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    while rest >= if leap(year) { 366 } else { 365 } {
        rest -= if leap(year) { 366 } else { 365 };
        year += 1;
    }
    let lengths = [
        31,
        if leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let mut month = 0;
    while rest >= lengths[month] {
        rest -= lengths[month];
        month += 1;
    }
    format!(
        "{year:04}-{:02}-{:02} {:02}",
        month + 1,
        rest + 1,
        secs % 86_400 / 3600
    )
}

#[derive(Debug)]
struct DivisionByZero;

impl std::fmt::Display for DivisionByZero {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("division by zero")
    }
}

#[mcp_tool]
fn divide_err(a: i64, b: i64) -> Result<i64, DivisionByZero> {
    if b == 0 {
        return Err(DivisionByZero);
    }
    Ok(a / b)
}

#[test]
fn an_err_result_is_an_error_with_its_display_text() {
    assert!(divide_err(1, 0).is_err());
    let row = only_row("divide_err");
    assert_eq!(
        row.level, "error",
        "the template counts level=error rows as errors"
    );
    assert_eq!(row.record_str("outcome"), "error");
    assert_eq!(row.record_str("error"), "division by zero");
    assert_eq!(
        row.record_str("message"),
        "tool divide_err: error: division by zero"
    );
}

#[mcp_tool]
fn question_mark_err(text: &str) -> Result<i64, Box<dyn std::error::Error>> {
    let number: i64 = text.parse()?;
    Ok(number)
}

#[test]
fn errors_leaving_through_question_mark_are_seen() {
    assert!(question_mark_err("x").is_err());
    let row = only_row("question_mark_err");
    assert_eq!(row.record_str("outcome"), "error");
    assert_eq!(row.record_str("error"), "invalid digit found in string");
}

struct Opaque;

#[mcp_tool]
fn err_without_display() -> Result<(), Opaque> {
    Err(Opaque)
}

#[test]
fn an_err_without_display_is_an_error_named_by_its_type() {
    assert!(err_without_display().is_err());
    let row = only_row("err_without_display");
    assert_eq!(row.record_str("outcome"), "error");
    assert!(row.record_str("error").ends_with("Opaque"), "{row:?}");
}

struct Reply {
    status: u16,
}

impl CallOutcome for Reply {
    fn is_error(&self) -> bool {
        self.status >= 400
    }

    fn fmt_error(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "status {}", self.status)
    }
}

#[mcp_tool]
fn custom_outcome(status: u16) -> Reply {
    Reply { status }
}

#[test]
fn a_type_implementing_call_outcome_decides_its_outcome() {
    custom_outcome(503);
    custom_outcome(200);
    let rows = rows_named("custom_outcome");
    let mut outcomes: Vec<_> = rows
        .iter()
        .map(|row| {
            (
                row.record_str("outcome").to_owned(),
                row.record_str("error").to_owned(),
            )
        })
        .collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            ("error".to_owned(), "status 503".to_owned()),
            ("ok".to_owned(), String::new())
        ]
    );
}

#[mcp_tool]
fn long_error() -> Result<(), String> {
    Err("é".repeat(5000))
}

#[test]
fn long_error_texts_are_cut_at_the_documented_length() {
    let _ = long_error();
    let row = only_row("long_error");
    let error = row.record_str("error");
    assert!(
        error.len() <= mcp_analytics::limits::MAX_ERROR_LEN,
        "{}",
        error.len()
    );
    assert!(
        error.len() > mcp_analytics::limits::MAX_ERROR_LEN - 8,
        "{}",
        error.len()
    );
    assert!(error.ends_with('…'));
}

#[mcp_tool]
fn panics(message: &str) -> u8 {
    panic!("{message}")
}

#[test]
fn a_panic_is_recorded_and_still_propagates_unchanged() {
    let caught = std::panic::catch_unwind(|| panics("tool exploded")).unwrap_err();
    assert_eq!(
        caught.downcast_ref::<String>().map(String::as_str),
        Some("tool exploded")
    );
    let row = only_row("panics");
    assert_eq!(row.record_str("outcome"), "panic");
    assert_eq!(row.level, "error");
}

#[mcp_tool]
async fn async_panics() -> u8 {
    tokio::task::yield_now().await;
    panic!("async tool exploded")
}

#[test]
fn a_panic_in_an_async_tool_is_recorded() {
    let joined = runtime().block_on(async { tokio::spawn(async_panics()).await });
    assert!(joined.unwrap_err().is_panic());
    assert_eq!(only_row("async_panics").record_str("outcome"), "panic");
}

#[mcp_tool]
async fn sleeps(duration: Duration) -> &'static str {
    tokio::time::sleep(duration).await;
    "awake"
}

#[test]
fn async_calls_are_timed_across_their_awaits() {
    let answer = runtime().block_on(sleeps(Duration::from_millis(40)));
    assert_eq!(answer, "awake");
    let duration = only_row("sleeps").duration_ms().unwrap();
    assert!((40.0..2000.0).contains(&duration), "{duration}");
}

/// A future that is never ready: the call under it can only end by being dropped.
struct Never;

impl Future for Never {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

#[mcp_tool]
async fn waits_forever() -> u8 {
    Never.await;
    1
}

#[test]
fn a_future_dropped_before_completion_is_cancelled() {
    let mut future = Box::pin(waits_forever());
    let waker = std::task::Waker::noop();
    assert!(
        future
            .as_mut()
            .poll(&mut Context::from_waker(waker))
            .is_pending()
    );
    drop(future);
    let row = only_row("waits_forever");
    assert_eq!(row.record_str("outcome"), "cancelled");
    assert_eq!(
        row.level, "info",
        "a client going away is not the server's error"
    );
}

#[mcp_tool]
async fn never_polled() -> u8 {
    1
}

#[test]
fn a_future_never_polled_records_nothing() {
    // An async call starts when first polled, as the function's own body would.
    drop(never_polled());
    assert!(rows_named("never_polled").is_empty());
}

struct Server {
    delay: Duration,
}

impl Server {
    /// The shape rmcp's `#[tool]` leaves for an attribute placed below it.
    #[mcp_tool]
    fn boxed(&self) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>> {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            Ok("done".to_owned())
        })
    }
}

#[test]
fn a_boxed_future_is_timed_while_it_runs_not_while_it_is_built() {
    let server = Server {
        delay: Duration::from_millis(20),
    };
    let future = server.boxed();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(runtime().block_on(future).unwrap(), "done");
    let awaited = started.elapsed().as_secs_f64() * 1000.0;
    let duration = only_row("boxed").duration_ms().unwrap();
    assert!(duration >= 20.0, "{duration}");
    assert!(
        duration <= awaited + 1.0,
        "{duration} > {awaited}: construction time was counted"
    );
}

#[mcp_tool(name = "run-select-query")]
fn query(sql: &str) -> String {
    format!("ran {sql}")
}

#[mcp_resource(name = uri)]
fn read_resource(uri: &str) -> Result<String, String> {
    Ok(format!("contents of {uri}"))
}

#[mcp_prompt(name = format!("greet-{language}"))]
fn greet_prompt(language: &str) -> String {
    format!("Say hello in {language}")
}

#[test]
fn names_come_from_a_literal_or_an_expression_evaluated_per_call() {
    query("select 1");
    read_resource("file:///a.txt").unwrap();
    read_resource("file:///b.txt").unwrap();
    greet_prompt("rust");

    let row = only_row("run-select-query");
    assert_eq!(row.record_str("funcName"), "query");

    for uri in ["file:///a.txt", "file:///b.txt"] {
        let row = only_row(uri);
        assert_eq!(row.record_str("kind"), "resource");
        assert_eq!(row.record_str("resource"), uri);
        assert_eq!(
            row.record_str("tool"),
            "",
            "resources are not tool requests"
        );
        assert_eq!(row.record_str("funcName"), "read_resource");
    }

    let row = only_row("greet-rust");
    assert_eq!(row.record_str("kind"), "prompt");
    assert_eq!(row.record_str("prompt"), "greet-rust");
    assert_eq!(row.record_str("tool"), "");
}

#[mcp_tool(session = session_id)]
fn session_from_argument(session_id: &str) -> u8 {
    let _ = session_id;
    1
}

#[mcp_tool(name = "scoped_session")]
fn scoped() -> u8 {
    2
}

#[mcp_tool(name = "scoped_async_session")]
async fn scoped_async() -> u8 {
    tokio::task::yield_now().await;
    3
}

#[test]
fn sessions_resolve_from_attribute_then_scope_then_process() {
    // The attribute's expression wins over an enclosing scope.
    in_session("outer-scope", || session_from_argument("from-argument"));
    // An empty value means "not known here": the scope applies.
    in_session("fallback-scope", || session_from_argument(""));
    in_session("closure-scope", scoped);
    runtime().block_on(with_session("future-scope", scoped_async()));
    // Outside any scope again: the process session.
    scoped();

    let mut sessions: Vec<String> = rows_named("session_from_argument")
        .into_iter()
        .map(|row| row.session)
        .collect();
    sessions.sort();
    assert_eq!(sessions, ["fallback-scope", "from-argument"]);

    let mut scoped_sessions: Vec<String> = rows_named("scoped_session")
        .into_iter()
        .map(|row| row.session)
        .collect();
    scoped_sessions.sort();
    let process = mcp_analytics::session::process_session_id().to_string();
    let mut expected = vec!["closure-scope".to_owned(), process];
    expected.sort();
    assert_eq!(scoped_sessions, expected);

    assert_eq!(only_row("scoped_async_session").session, "future-scope");
}

#[test]
fn session_scopes_follow_their_future_across_threads_and_tasks() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                tokio::spawn(with_session(format!("task-{i}"), async move {
                    for _ in 0..5 {
                        multi_task_tool().await;
                    }
                }))
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    let rows = rows_named("multi_task_tool");
    assert_eq!(rows.len(), 40);
    for i in 0..8 {
        let session = format!("task-{i}");
        assert_eq!(
            rows.iter().filter(|row| row.session == session).count(),
            5,
            "{session}"
        );
    }
}

#[mcp_tool]
async fn multi_task_tool() {
    tokio::task::yield_now().await;
}

#[derive(Default)]
struct Counter {
    count: u32,
}

impl Counter {
    #[mcp_tool(name = "counter_read")]
    fn read(&self) -> u32 {
        self.count
    }

    #[mcp_tool(name = "counter_bump")]
    fn bump(&mut self) -> u32 {
        self.count += 1;
        self.count
    }

    #[mcp_tool(name = "counter_shared")]
    async fn shared(self: Arc<Self>) -> u32 {
        self.count
    }

    #[mcp_tool(name = "counter_into")]
    fn into_count(self) -> u32 {
        self.count
    }
}

#[mcp_tool]
fn generic_len<T: AsRef<[u8]> + ?Sized>(value: &T) -> usize {
    value.as_ref().len()
}

#[test]
fn methods_and_generic_functions_record_one_event_per_call() {
    let mut counter = Counter::default();
    assert_eq!(counter.bump(), 1);
    assert_eq!(counter.read(), 1);
    assert_eq!(
        runtime().block_on(Arc::new(Counter { count: 7 }).shared()),
        7
    );
    assert_eq!(Counter { count: 9 }.into_count(), 9);
    assert_eq!(generic_len("abc"), 3);
    assert_eq!(generic_len(&[1_u8, 2][..]), 2);
    for name in [
        "counter_bump",
        "counter_read",
        "counter_shared",
        "counter_into",
    ] {
        assert_eq!(only_row(name).record_str("outcome"), "ok", "{name}");
    }
    assert_eq!(rows_named("generic_len").len(), 2);
}

#[mcp_tool]
fn counted() {}

#[test]
fn every_call_is_exactly_one_event() {
    for _ in 0..250 {
        counted();
    }
    assert_eq!(rows_named("counted").len(), 250);
}

#[test]
fn stats_account_for_every_recorded_event() {
    common::shared_memory();
    for _ in 0..30 {
        add_ok(1, 1);
    }
    mcp_analytics::flush(Duration::from_secs(10)).unwrap();
    let stats = mcp_analytics::stats();
    assert!(stats.enqueued >= 30, "{stats:?}");
    assert!(stats.batches >= 1, "{stats:?}");
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert_eq!(stats.failed, 0, "{stats:?}");
    // Other tests run concurrently, so compare with what memory holds at least.
    assert!(
        stats.sent as usize <= common::shared_memory().rows().len(),
        "{stats:?}"
    );
}
