//! The server wrapper, `mcp_analytics::rmcp::instrument!`, driven by rmcp's own client over an
//! in-process pipe, on both protocol eras: every request is one row, a handler call with our
//! attribute on it is still one row (carrying both views), the calls and log-free handlers
//! inside a request inherit its client and session, listings are recorded when they change, and
//! calls that span requests (input required, tasks) link their rows.
//!
//! The pipeline delivers to memory; each test names its client uniquely and reads its own rows.
//! Log lines go there too, through the `tracing` layer.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};

use mcp_analytics::{mcp_prompt, mcp_tool};
use mcp_analytics_receiver::Row;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities, ClientConfig,
    ContentBlock, CreateTaskResult, DetailedTask, GetPromptRequestParams, GetPromptResult,
    GetTaskParams, GetTaskResult, Implementation, InputRequiredResult, PromptMessage,
    ProtocolVersion, Role, ServerCapabilities, ServerConfig, Task, TaskPayload, TaskStatus,
};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, RequestContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{
    StreamableHttpClientTransport, StreamableHttpServerConfig, StreamableHttpService,
};
use rmcp::{
    ErrorData, RoleClient, RoleServer, ServerHandler, ServiceExt, prompt, prompt_handler,
    prompt_router, schemars, tool, tool_handler, tool_router,
};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::prelude::*;

#[derive(Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    text: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct NameArgs {
    name: String,
}

/// Instrumented on its own: called from inside a tool, it is a call of its own.
#[mcp_tool]
fn helper_tool() -> &'static str {
    "helped"
}

#[derive(Clone, Default)]
struct Server;

#[tool_router]
impl Server {
    #[mcp_tool]
    #[tool(description = "Echo; fails on \"fail\"")]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> Result<String, String> {
        match args.text.as_str() {
            "fail" => Err("refused".into()),
            text => Ok(text.into()),
        }
    }

    #[tool(description = "No attribute of ours; logs a line")]
    fn plain(&self) -> String {
        tracing::info!(answer = "plain", "answering");
        "plain".into()
    }

    #[mcp_tool]
    #[tool(description = "Calls another instrumented function")]
    fn outer(&self) -> String {
        helper_tool().into()
    }
}

#[prompt_router]
impl Server {
    /// No context argument: the wrapper's scope says who asked.
    #[mcp_prompt]
    #[prompt(description = "Greet")]
    async fn greet(&self, Parameters(args): Parameters<NameArgs>) -> GetPromptResult {
        GetPromptResult::new(vec![PromptMessage::new_text(
            Role::User,
            format!("Hello {}", args.name),
        )])
    }
}

/// The state an `ask` call hands out and expects back.
const ASK_STATE: &str = "ask-state-1";
const TASK_ID: &str = "task-42";

#[tool_handler]
#[prompt_handler]
impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_tasks()
                .build(),
        )
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        match &*request.name {
            // Asks for input, then completes when the client brings the state back.
            "ask" if request.request_state.as_deref() == Some(ASK_STATE) => {
                Ok(CallToolResult::success(vec![ContentBlock::text("answered")]).into())
            }
            "ask" => Ok(InputRequiredResult::new(None, Some(ASK_STATE.into())).into()),
            "long" => Ok(CallToolResponse::Task(CreateTaskResult::new(Task::new(
                TASK_ID,
                TaskStatus::Working,
                "2026-12-02T00:00:00Z",
                "2026-12-02T00:00:00Z",
            )))),
            _ => {
                Self::tool_router()
                    .call(ToolCallContext::new(self, request, context))
                    .await
            }
        }
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        let task = Task::new(
            request.task_id,
            TaskStatus::Completed,
            "2026-12-02T00:00:00Z",
            "2026-12-02T00:00:01Z",
        );
        let result = serde_json::json!({"content": [], "isError": true});
        let serde_json::Value::Object(result) = result else {
            unreachable!("an object")
        };
        Ok(GetTaskResult::new(DetailedTask::new(
            task,
            TaskPayload::Completed { result },
        )))
    }
}

fn arguments(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => map,
        _ => panic!("arguments are an object"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The wrapped server on one end of a pipe, rmcp's client named `client` on the other, in the
/// protocol era `lifecycle` picks; `session` runs the client's requests, then both ends close.
/// Returns the rows of the connection (those that name `client`, and its session's end).
fn connect<F>(client: &str, lifecycle: Option<ClientLifecycleMode>, session: F) -> Vec<Row>
where
    F: AsyncFnOnce(&RunningService<RoleClient, ClientConfig>),
{
    let memory = recording();
    runtime().block_on(async {
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(async move {
            mcp_analytics::rmcp::instrument!(Server)
                .serve(server_io)
                .await
        });
        let config = ClientConfig::new(
            ClientCapabilities::builder().enable_tasks().build(),
            Implementation::new(client, "7.0.0"),
        );
        let running = match lifecycle {
            Some(lifecycle) => config.serve_with_lifecycle(client_io, lifecycle).await,
            None => config.serve(client_io).await,
        }
        .expect("the client connects");
        // A 2026-07-28 server starts serving at the first request, after the client connected.
        session(&running).await;
        running.cancel().await.unwrap();
        // The server's connection ends when its service is dropped: its session's end is
        // recorded then.
        let server = server.await.unwrap().expect("the server starts");
        let _ = server.waiting().await;
    });
    mcp_analytics::flush(Duration::from_secs(5)).unwrap();
    let rows = memory.rows();
    let session = rows
        .iter()
        .find(|row| row.record_str("client_name") == client)
        .map(|row| row.session.clone())
        .expect("rows name the client");
    // Over a pipe every row is the process's session: pick this connection's by client; its
    // session end is the one recorded after them.
    let mine: Vec<Row> = rows
        .into_iter()
        .filter(|row| row.record_str("client_name") == client)
        .collect();
    assert!(mine.iter().all(|row| row.session == session));
    mine
}

/// The test binary's pipeline, to memory, with the log layer installed.
fn recording() -> &'static common::Memory {
    static LOGGING: LazyLock<()> = LazyLock::new(|| {
        tracing_subscriber::registry()
            .with(mcp_analytics::tracing::layer!())
            .init();
    });
    LazyLock::force(&LOGGING);
    common::shared_memory()
}

fn of<'a>(rows: &'a [Row], kind: &str, method_or_name: &str) -> Vec<&'a Row> {
    rows.iter()
        .filter(|row| {
            row.record_str("kind") == kind
                && (row.record_str("method") == method_or_name
                    || row.record_str("message") == method_or_name
                    || row.record_str(kind) == method_or_name
                    || row.record_str("event") == method_or_name
                    || row.record_str("name") == method_or_name)
        })
        .collect()
}

fn one<'a>(rows: &'a [Row], kind: &str, method_or_name: &str) -> &'a Row {
    match of(rows, kind, method_or_name).as_slice() {
        [row] => row,
        found => panic!(
            "expected one {kind} row for {method_or_name}, found {}:\n{}",
            found.len(),
            rows.iter()
                .map(|row| row.raw.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

#[test]
fn every_request_is_one_row_and_an_attributed_handler_still_one() {
    let rows = connect("one-row-client", None, async |client| {
        client.list_all_tools().await.unwrap();
        client.list_all_tools().await.unwrap();
        for text in ["hi", "fail"] {
            let args = arguments(serde_json::json!({ "text": text }));
            let result = client
                .call_tool(CallToolRequestParams::new("echo").with_arguments(args))
                .await
                .unwrap();
            assert_eq!(result.is_error, Some(text == "fail"));
        }
        client
            .call_tool(CallToolRequestParams::new("plain"))
            .await
            .unwrap();
        client
            .call_tool(CallToolRequestParams::new("outer"))
            .await
            .unwrap();
        let unknown = client.call_tool(CallToolRequestParams::new("nope")).await;
        assert!(unknown.is_err(), "rmcp rejects an unknown tool");
        let args = arguments(serde_json::json!({ "name": "Ada" }));
        client
            .get_prompt(GetPromptRequestParams::new("greet").with_arguments(args))
            .await
            .unwrap();
    });
    let by = |row: &Row, key: &str| row.record_str(key).to_owned();

    // The handshake, the client's notification, the session's start and end.
    let initialize = one(&rows, "request", "initialize");
    assert_eq!(by(initialize, "protocol_version"), "2025-11-25");
    assert_eq!(by(initialize, "client_version"), "7.0.0");
    one(&rows, "notification", "notifications/initialized");
    assert!(one(&rows, "session", "start").duration_ms().is_none());
    assert!(one(&rows, "session", "end").duration_ms().is_some());

    // Listings: what the server advertises, the first time only.
    let listings = of(&rows, "request", "tools/list");
    assert_eq!(listings.len(), 2, "one row per request");
    let listed: Vec<_> = listings
        .iter()
        .filter_map(|row| row.record.get("listed"))
        .collect();
    assert_eq!(listed, [&serde_json::json!(["echo", "outer", "plain"])]);

    // One row per tool call, the attribute's view joined to the wrapper's.
    let echoes = of(&rows, "tool", "echo");
    assert_eq!(echoes.len(), 2, "exactly one row per call");
    for echo in &echoes {
        assert_eq!(by(echo, "funcName"), "echo", "the attribute's function");
        assert_eq!(by(echo, "method"), "tools/call");
        let handler = echo.record["handler_duration_ms"].as_f64().unwrap();
        assert!(handler <= echo.duration_ms().unwrap(), "{}", echo.raw);
    }
    let failed = echoes
        .iter()
        .find(|row| by(row, "outcome") == "error")
        .unwrap();
    assert_eq!(by(failed, "error"), "refused", "the attribute's error text");
    assert_eq!(by(failed, "error_type"), "tool_error");
    assert_eq!(failed.level, "error");

    let plain = one(&rows, "tool", "plain");
    assert_eq!(
        by(plain, "funcName"),
        "call_tool",
        "no attribute: the wrapper's own view"
    );
    assert!(plain.record.get("handler_duration_ms").is_none());
    // A line logged in a handler without a context: the request's client, session and id.
    let logged = one(&rows, "log", "answering");
    assert_eq!(by(logged, "handler"), "plain");
    assert_eq!(logged.session, plain.session);
    assert_eq!(by(logged, "request_id"), by(plain, "request_id"));

    // A second instrumented call inside a tool is a call of its own.
    one(&rows, "tool", "outer");
    one(&rows, "tool", "helper_tool");

    let unknown = one(&rows, "tool", "nope");
    assert_eq!(by(unknown, "outcome"), "error");
    assert_eq!(by(unknown, "error_type"), "-32602");

    // A prompt handler without a context argument: the wrapper's scope names the request.
    let greet = one(&rows, "prompt", "greet");
    assert_eq!(by(greet, "funcName"), "greet");

    for row in &rows {
        assert_eq!(by(row, "transport"), "pipe", "{}", row.raw);
        assert_eq!(by(row, "protocol_version"), "2025-11-25", "{}", row.raw);
        // Sessions and notifications have no JSON-RPC id; requests, calls and log lines do.
        let without_id = ["session", "notification"].contains(&row.record_str("kind"));
        assert_eq!(
            row.record.get("request_id").is_none(),
            without_id,
            "{}",
            row.raw
        );
    }
}

fn discover() -> Option<ClientLifecycleMode> {
    Some(ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    })
}

#[test]
fn a_2026_client_is_named_by_each_request_and_spanning_calls_link_their_rows() {
    let rows = connect("span-client", discover(), async |client| {
        let asked = client
            .call_tool_once(CallToolRequestParams::new("ask"))
            .await
            .unwrap();
        let CallToolResponse::InputRequired(asked) = asked else {
            panic!("the first call asks for input: {asked:?}")
        };
        let state = asked.request_state.unwrap();
        let resumed = client
            .call_tool_once(CallToolRequestParams::new("ask").with_request_state(state))
            .await
            .unwrap();
        assert!(matches!(resumed, CallToolResponse::Complete(_)));

        let long = client
            .call_tool_once(CallToolRequestParams::new("long"))
            .await
            .unwrap();
        let CallToolResponse::Task(task) = long else {
            panic!("a task: {long:?}")
        };
        client
            .peer()
            .get_task(GetTaskParams::new(task.task.task_id))
            .await
            .unwrap();
    });
    let by = |row: &Row, key: &str| row.record_str(key).to_owned();
    assert!(
        of(&rows, "request", "initialize").is_empty(),
        "no handshake in 2026-07-28"
    );
    for row in &rows {
        assert_eq!(by(row, "protocol_version"), "2026-07-28", "{}", row.raw);
        assert_eq!(by(row, "client_version"), "7.0.0", "{}", row.raw);
    }

    let asks = of(&rows, "tool", "ask");
    assert_eq!(asks.len(), 2, "two requests, two rows");
    let first = asks
        .iter()
        .find(|row| by(row, "outcome") == "input_required")
        .unwrap();
    let last = asks.iter().find(|row| by(row, "outcome") == "ok").unwrap();
    assert_eq!(first.level, "info");
    assert!(!by(first, "continuation").is_empty());
    assert_eq!(
        by(last, "resumes"),
        by(first, "continuation"),
        "the resumed call links"
    );
    let total = last.record["total_duration_ms"].as_f64().unwrap();
    assert!(total >= last.duration_ms().unwrap(), "{}", last.raw);

    let long = one(&rows, "tool", "long");
    assert_eq!(by(long, "outcome"), "task");
    assert_eq!(by(long, "task_id"), TASK_ID);
    one(&rows, "request", "tasks/get");
    let ended = one(&rows, "task", "long");
    assert_eq!(by(ended, "task_id"), TASK_ID);
    assert_eq!(
        by(ended, "outcome"),
        "error",
        "the task's result was an error"
    );
    assert_eq!(by(ended, "error_type"), "tool_error");
    assert_eq!(ended.level, "error");
    assert!(ended.record["total_duration_ms"].as_f64().is_some());
}

/// Stateless streamable HTTP: no session header, so no session, unless `session_by` reads one
/// off the request (here a header an auth proxy would set).
#[test]
fn session_by_groups_sessionless_requests() {
    const USER_HEADER: &str = "x-user-id";
    let memory = recording();
    runtime().block_on(async {
        let stop = CancellationToken::new();
        let service = StreamableHttpService::new(
            || {
                Ok(
                    mcp_analytics::rmcp::instrument!(Server).session_by(|extensions| {
                        let parts = extensions.get::<axum::http::request::Parts>()?;
                        let user = parts.headers.get(USER_HEADER)?.to_str().ok()?;
                        Some(format!("user-{user}"))
                    }),
                )
            },
            Arc::new(LocalSessionManager::default()),
            StreamableHttpServerConfig::default()
                .with_legacy_session_mode(false)
                .with_cancellation_token(stop.child_token()),
        );
        let app = axum::Router::new().nest_service("/mcp", service);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        let shutdown = stop.clone().cancelled_owned();
        let http = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        });
        for (user, client) in [(Some("ada"), "by-user-ada"), (None, "by-user-nobody")] {
            let headers: HashMap<_, _> = user
                .map(|user| {
                    (
                        HeaderName::from_static(USER_HEADER),
                        HeaderValue::from_static(user),
                    )
                })
                .into_iter()
                .collect();
            let transport = StreamableHttpClientTransport::from_config(
                StreamableHttpClientTransportConfig::with_uri(url.clone()).custom_headers(headers),
            );
            let config = ClientConfig::new(
                ClientCapabilities::default(),
                Implementation::new(client, "1.0.0"),
            );
            let running = config
                .serve_with_lifecycle(transport, discover().unwrap())
                .await
                .expect("the client connects");
            running
                .call_tool(CallToolRequestParams::new("plain"))
                .await
                .unwrap();
            running.cancel().await.unwrap();
        }
        stop.cancel();
        http.await.unwrap().unwrap();
    });
    mcp_analytics::flush(Duration::from_secs(5)).unwrap();
    let rows = memory.rows();
    let calls = |client: &str| -> Vec<Row> {
        rows.iter()
            .filter(|row| row.record_str("client_name") == client)
            .filter(|row| row.record_str("kind") == "tool")
            .cloned()
            .collect()
    };
    let ada = calls("by-user-ada");
    assert_eq!(ada.len(), 1, "{ada:?}");
    assert_eq!(ada[0].session, "user-ada");
    assert_eq!(ada[0].record_str("transport"), "tcp");
    let nobody = calls("by-user-nobody");
    assert_eq!(nobody.len(), 1, "{nobody:?}");
    assert_eq!(
        nobody[0].session, "",
        "no session rather than the process's"
    );
}
