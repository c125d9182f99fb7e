//! rmcp's own client drives the demo server (`examples/demo_server`) on every transport and in
//! both protocol eras, and the rows that reach the loopback Events API say who called what, over
//! which transport, in which session. Every cell runs in two setups ([`Setup`]): the demo
//! wrapped with the server wrapper, `mcp_analytics::rmcp::instrument!(demo_server::Demo)` (the
//! cells below), and the demo as it is, recorded by its attributes alone (`#[mcp_tool]` on
//! `call_tool`, `#[mcp_prompt]` on the prompts, `#[mcp_resource]` on `read_resource`: the same
//! cells named `attributes_only_*`):
//!
//! | cell                               | transport                            | era        |
//! |------------------------------------|--------------------------------------|------------|
//! | `stdio_2025_11_25`                 | byte stream (`pipe`)                 | handshake  |
//! | `http_stateful_2025_11_25`         | streamable HTTP, sessions (`tcp`)    | handshake  |
//! | `stdio_2026_07_28`                 | byte stream (`pipe`)                 | discover   |
//! | `http_stateful_server_2026_07_28`  | streamable HTTP, session config      | discover   |
//! | `http_stateless_server_2026_07_28` | streamable HTTP, stateless config    | discover   |
//! | `http_stateless_2025_11_25`        | streamable HTTP, stateless config    | handshake  |
//!
//! The servers run in this process: "stdio" is rmcp's byte-stream transport over a
//! `tokio::io::duplex` pipe (what the crate reports as `pipe`), HTTP is rmcp's
//! `StreamableHttpService` under axum on a `127.0.0.1` listener, and the clients are rmcp's own:
//! `ServiceExt::serve` (the `initialize` handshake, pinned to 2025-11-25) or
//! `ClientServiceExt::serve_with_lifecycle(.., ClientLifecycleMode::Discover { .. })` (2026-07-28,
//! no handshake), over the duplex pipe or `StreamableHttpClientTransport`. On HTTP two clients
//! with distinct names run at once.
//!
//! Every client lists the tools, calls `add` {a: 2, b: 3}, `divide` {a: 1, b: 0} (an `isError`
//! result) and a tool that does not exist (a JSON-RPC error), gets the prompt `greet`
//! {name: "Ada"} and reads `mem://readme`. The rows that must reach the receiver, each with
//! `kind`, `method`, `outcome`, `error_type`, `client_name`, `client_version`,
//! `protocol_version`, `transport` (`pipe` / `tcp`) and `request_id`:
//!
//! - one row per handler call: `kind` tool / prompt / resource, `method` tools/call /
//!   prompts/get / resources/read, the handler's name under `tool` / `prompt` / `resource` (the
//!   URI read for a resource; the name asked for, for an unknown tool); a tool error result is
//!   `outcome` error with `error_type` `tool_error`, a JSON-RPC error is `outcome` error with
//!   its code as `error_type`;
//! - one row per other request (`kind` request: `initialize`, `server/discover`, `tools/list`)
//!   and per notification the server gets (`kind` notification); a session row (`kind`
//!   session, `event` start / end) per pipe, and per client on HTTP with sessions;
//! - every row names the client as it named itself, never `rmcp` (the name rmcp fills in when
//!   it knows no client). Stateless HTTP after a handshake is the exception: only `initialize`
//!   knows its client, the later rows name none (no `client_name` / `client_version` key);
//! - `session`: on a pipe, the process's session id; on HTTP with sessions (2025-11-25), the
//!   `mcp-session-id` the client got; on HTTP without (stateless, and every 2026-07-28
//!   request), the empty string.
//!
//! With the attributes alone, the server records only what its attributed handlers see: the
//! handler-call rows above, one per `tools/call` / `prompts/get` / `resources/read`, and no
//! request, notification or session row. They name the client, protocol, transport, request
//! and session by the same rules (read off the handler's `RequestContext`), their `outcome` is
//! read off the return type (an `isError` result and a JSON-RPC error are both `error`), but
//! without the wrapper no row has an `error_type` or a `handler_duration_ms`.
//!
//! Each cell is one test on a pipeline of its own against a receiver of its own, the cells taking
//! turns ([`common::Scenario`]): a cell's rows are everything its receiver got. The servers and
//! clients run on a runtime of the cell's own, dropped (every task with it) before the pipeline
//! is flushed, so that no row of a cell can arrive after it is read.

mod common;

#[allow(dead_code)]
#[path = "../examples/demo_server/mod.rs"]
mod demo_server;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use common::Scenario;
use mcp_analytics_receiver::{Receiver, Row};
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, GetPromptRequestParams,
    Implementation, ProtocolVersion, ReadResourceRequestParams,
};
use rmcp::service::{RunningService, ServerInitializeError, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ClientLifecycleMode, ClientServiceExt, RoleClient, ServerHandler, ServiceExt};
use serde_json::Value;
use tokio::io::DuplexStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How the demo server is instrumented: the server a cell serves, one per connection or HTTP
/// session (or request, stateless).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setup {
    /// The server wrapper, this one line: `mcp_analytics::rmcp::instrument!(demo_server::Demo)`,
    /// over the demo's attributes.
    Wrapper,
    /// `demo_server::Demo` as it is: only its attributes (`#[mcp_tool]` on `call_tool`,
    /// `#[mcp_prompt]` on the prompts, `#[mcp_resource]` on `read_resource`) record.
    AttributesOnly,
}

impl Setup {
    /// Serves the setup's server on `io` until the client closes it.
    fn serve_pipe(self, io: DuplexStream) -> JoinHandle<Result<(), ServerInitializeError>> {
        async fn serve(
            server: impl ServerHandler,
            io: DuplexStream,
        ) -> Result<(), ServerInitializeError> {
            let running = server.serve(io).await?;
            // The server sees its input end, as a stdio server sees stdin close.
            let _ = running.waiting().await;
            Ok(())
        }
        match self {
            Setup::Wrapper => tokio::spawn(serve(
                mcp_analytics::rmcp::instrument!(demo_server::Demo),
                io,
            )),
            Setup::AttributesOnly => tokio::spawn(serve(demo_server::Demo, io)),
        }
    }

    /// rmcp's streamable HTTP service making the setup's servers, under `/mcp`.
    fn http_router(self, config: StreamableHttpServerConfig) -> axum::Router {
        fn router<S: ServerHandler>(
            server: fn() -> S,
            config: StreamableHttpServerConfig,
        ) -> axum::Router {
            let service = StreamableHttpService::new(
                move || Ok(server()),
                Arc::new(LocalSessionManager::default()),
                config,
            );
            axum::Router::new().nest_service("/mcp", service)
        }
        match self {
            Setup::Wrapper => router(
                || mcp_analytics::rmcp::instrument!(demo_server::Demo),
                config,
            ),
            Setup::AttributesOnly => router(|| demo_server::Demo, config),
        }
    }
}

/// The clients of a cell: one on a pipe (a pipe is one connection), two at once on HTTP.
const CLIENTS: [(&str, &str); 2] = [("matrix-alpha", "1.0.0"), ("matrix-beta", "2.0.0")];

/// The header each HTTP client sends its name in, so that the server side can tell which
/// `mcp-session-id` each client got.
const CLIENT_HEADER: &str = "x-matrix-client";

const UNKNOWN_TOOL: &str = "no_such_tool";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Era {
    /// The `initialize` handshake, at 2025-11-25.
    Handshake,
    /// `server/discover` and per-request metadata, at 2026-07-28.
    Discover,
}

impl Era {
    fn version(self) -> ProtocolVersion {
        match self {
            Era::Handshake => ProtocolVersion::V_2025_11_25,
            Era::Discover => ProtocolVersion::V_2026_07_28,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    /// rmcp's byte-stream transport over an in-process pipe: what a stdio server runs on.
    Pipe,
    /// Streamable HTTP on 127.0.0.1; `legacy_session_mode` on (sessions for handshake-era
    /// clients) or off (stateless).
    Http { sessions: bool },
}

impl Transport {
    fn column(self) -> &'static str {
        match self {
            Transport::Pipe => "pipe",
            Transport::Http { .. } => "tcp",
        }
    }
}

/// What one client did and saw.
#[derive(Debug)]
struct ClientRun {
    name: &'static str,
    version: &'static str,
    /// The protocol version the client negotiated.
    negotiated: String,
    /// The JSON-RPC error code the unknown tool's call failed with.
    unknown_tool_code: i32,
    /// HTTP: the `mcp-session-id`s the client sent or was given (none when stateless).
    http_sessions: BTreeSet<String>,
}

/// A cell's run: its clients, and every row its receiver got.
struct CellRun {
    setup: Setup,
    transport: Transport,
    era: Era,
    clients: Vec<ClientRun>,
    rows: Vec<Row>,
}

impl CellRun {
    /// The rows per client name (`None`: rows that name no client).
    fn rows_per_client(&self) -> BTreeMap<Option<String>, Vec<&Row>> {
        let mut per_client: BTreeMap<Option<String>, Vec<&Row>> = BTreeMap::new();
        for row in &self.rows {
            per_client
                .entry(value(row, "client_name"))
                .or_default()
                .push(row);
        }
        per_client
    }
}

/// Runs a cell: its server, its clients (each doing [`workload`]), then flushes the pipeline
/// and returns what the receiver got.
fn run_cell(setup: Setup, transport: Transport, era: Era) -> CellRun {
    let scenario = Scenario::start(Receiver::start(), |builder| builder);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let clients = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(120), async {
            match transport {
                Transport::Pipe => vec![over_pipe(setup, era, CLIENTS[0]).await],
                Transport::Http { sessions } => over_http(setup, era, sessions).await,
            }
        })
        .await
        .expect("the cell's clients finish within two minutes")
    });
    // Every task (server sessions included) ends here, before the pipeline is flushed.
    drop(runtime);
    scenario.flush();
    let rows = scenario.receiver.rows();
    CellRun {
        setup,
        transport,
        era,
        clients,
        rows,
    }
}

fn client_config((name, version): (&str, &str), era: Era) -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new(name, version),
    )
    .with_protocol_version(era.version())
}

/// Connects `config` over `transport` the way `era` starts: the handshake or discovery.
async fn connect<T, E, A>(
    config: ClientConfig,
    transport: T,
    era: Era,
) -> RunningService<RoleClient, ClientConfig>
where
    T: rmcp::transport::IntoTransport<RoleClient, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    let client = match era {
        Era::Handshake => config.serve(transport).await,
        Era::Discover => {
            config
                .serve_with_lifecycle(
                    transport,
                    ClientLifecycleMode::Discover {
                        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                    },
                )
                .await
        }
    };
    client.unwrap_or_else(|error| panic!("the client connects ({era:?}): {error}"))
}

/// One client on a pipe to a server of its own: the stdio cells.
async fn over_pipe(
    setup: Setup,
    era: Era,
    (name, version): (&'static str, &'static str),
) -> ClientRun {
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let server = setup.serve_pipe(server_io);
    let client = connect(client_config((name, version), era), client_io, era).await;
    let run = workload(&client, name, version).await;
    client.cancel().await.expect("the client closes");
    server
        .await
        .expect("the server task")
        .expect("the server starts");
    run
}

/// `client label -> session ids` seen on the server side, in requests and responses.
type SeenSessions = Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>;

async fn record_sessions(
    axum::extract::State(seen): axum::extract::State<SeenSessions>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let header = |headers: &axum::http::HeaderMap, name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let client = header(request.headers(), CLIENT_HEADER).unwrap_or_default();
    let sent = header(request.headers(), "mcp-session-id");
    let response = next.run(request).await;
    let given = header(response.headers(), "mcp-session-id");
    let mut seen = seen.lock().unwrap();
    let sessions = seen.entry(client).or_default();
    sessions.extend(sent.into_iter().chain(given).filter(|id| !id.is_empty()));
    response
}

/// Two clients at once against one streamable HTTP server on 127.0.0.1.
async fn over_http(setup: Setup, era: Era, sessions: bool) -> Vec<ClientRun> {
    let stop = CancellationToken::new();
    let seen = SeenSessions::default();
    let app = setup
        .http_router(
            StreamableHttpServerConfig::default()
                .with_legacy_session_mode(sessions)
                .with_cancellation_token(stop.child_token()),
        )
        .layer(axum::middleware::from_fn_with_state(
            seen.clone(),
            record_sessions,
        ));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("a loopback listener");
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let http = tokio::spawn({
        let stop = stop.clone();
        async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        }
    });

    let runs = CLIENTS.map(|(name, version)| {
        let url = url.clone();
        tokio::spawn(async move {
            let headers = HashMap::from([(
                HeaderName::from_static(CLIENT_HEADER),
                HeaderValue::from_static(name),
            )]);
            let transport = StreamableHttpClientTransport::from_config(
                StreamableHttpClientTransportConfig::with_uri(url).custom_headers(headers),
            );
            let client = connect(client_config((name, version), era), transport, era).await;
            let run = workload(&client, name, version).await;
            // Stateful: ends the session (DELETE).
            client.cancel().await.expect("the client closes");
            run
        })
    });
    let mut clients = Vec::new();
    for run in runs {
        clients.push(run.await.expect("a client task"));
    }
    stop.cancel();
    http.await
        .expect("the HTTP server task")
        .expect("the HTTP server");
    let seen = seen.lock().unwrap();
    for client in &mut clients {
        client.http_sessions = seen.get(client.name).cloned().unwrap_or_default();
    }
    clients
}

fn arguments(value: Value) -> serde_json::Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

/// What every client does: list the tools, call a tool that succeeds, one whose result is an
/// error, and one that does not exist; get a prompt; read a resource.
async fn workload(
    client: &RunningService<RoleClient, ClientConfig>,
    name: &'static str,
    version: &'static str,
) -> ClientRun {
    let negotiated = client
        .peer_info()
        .map(|info| info.protocol_version.to_string())
        .unwrap_or_default();

    let tools = client.list_tools(None).await.expect("tools/list");
    assert!(
        tools.tools.iter().any(|tool| tool.name == "add"),
        "{tools:?}"
    );

    let added = client
        .call_tool(
            CallToolRequestParams::new("add").with_arguments(arguments(serde_json::json!({
                "a": 2, "b": 3
            }))),
        )
        .await
        .expect("tools/call add");
    assert_ne!(added.is_error, Some(true), "{added:?}");
    assert_eq!(
        added
            .content
            .first()
            .and_then(|c| c.as_text())
            .map(|t| t.text.as_str()),
        Some("5"),
        "{added:?}"
    );

    let divided = client
        .call_tool(
            CallToolRequestParams::new("divide").with_arguments(arguments(serde_json::json!({
                "a": 1, "b": 0
            }))),
        )
        .await
        .expect("tools/call divide: a result, an error one");
    assert_eq!(divided.is_error, Some(true), "{divided:?}");

    let unknown_tool_code = match client
        .call_tool(CallToolRequestParams::new(UNKNOWN_TOOL))
        .await
    {
        Err(ServiceError::McpError(error)) => error.code.0,
        other => panic!("an unknown tool is a JSON-RPC error, got {other:?}"),
    };

    client
        .get_prompt(
            GetPromptRequestParams::new("greet")
                .with_arguments(arguments(serde_json::json!({ "name": "Ada" }))),
        )
        .await
        .expect("prompts/get greet");
    client
        .read_resource(ReadResourceRequestParams::new("mem://readme"))
        .await
        .expect("resources/read mem://readme");

    ClientRun {
        name,
        version,
        negotiated,
        unknown_tool_code,
        http_sessions: BTreeSet::new(),
    }
}

/// A record value as text: strings as they are, other values as JSON; `None` when absent.
fn value(row: &Row, key: &str) -> Option<String> {
    row.record.get(key).map(|value| match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    })
}

/// What the contract fixes about a row, without what varies by run (time, ids, durations).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Shape {
    kind: Option<String>,
    /// `method`; not compared on session rows.
    method: Option<String>,
    /// `event` on session rows.
    event: Option<String>,
    /// `tool` / `prompt` / `resource` on handler rows.
    handler: Option<String>,
    /// Not compared on notification and session rows.
    outcome: Option<String>,
    /// Absent and empty alike.
    error_type: Option<String>,
    client_name: Option<String>,
    client_version: Option<String>,
    protocol_version: Option<String>,
    transport: Option<String>,
}

impl Shape {
    fn of(row: &Row) -> Shape {
        let kind = value(row, "kind");
        let k = kind.as_deref().unwrap_or_default();
        let is_handler = matches!(k, "tool" | "prompt" | "resource");
        let is_session = k == "session";
        Shape {
            method: (!is_session).then(|| value(row, "method")).flatten(),
            event: is_session.then(|| value(row, "event")).flatten(),
            handler: is_handler.then(|| value(row, k)).flatten(),
            outcome: (!is_session && k != "notification")
                .then(|| value(row, "outcome"))
                .flatten(),
            error_type: value(row, "error_type").filter(|text| !text.is_empty()),
            client_name: value(row, "client_name"),
            client_version: value(row, "client_version"),
            protocol_version: value(row, "protocol_version"),
            transport: value(row, "transport"),
            kind,
        }
    }

    fn short(&self) -> String {
        let mut text = String::new();
        let mut field = |key: &str, value: &Option<String>| {
            if let Some(value) = value {
                let _ = write!(text, "{key}={value} ");
            }
        };
        field("kind", &self.kind);
        field("method", &self.method);
        field("event", &self.event);
        field("name", &self.handler);
        field("outcome", &self.outcome);
        field("error_type", &self.error_type);
        field("client", &self.client_name);
        field("v", &self.client_version);
        field("protocol", &self.protocol_version);
        field("transport", &self.transport);
        text.trim_end().to_owned()
    }
}

/// The rows a client's [`workload`] must produce in `cell`, in no particular order.
fn expected_rows(cell: &CellRun, client: &ClientRun) -> Vec<Shape> {
    let stateless_handshake =
        cell.era == Era::Handshake && cell.transport == Transport::Http { sessions: false };
    let wrapper = cell.setup == Setup::Wrapper;
    let shape = |kind: &str, method: &str, handler: Option<&str>, outcome: Option<&str>| {
        // Stateless HTTP after a handshake: only `initialize` knows its client.
        let named = !stateless_handshake || method == "initialize";
        Shape {
            kind: Some(kind.into()),
            method: (kind != "session").then(|| method.into()),
            event: (kind == "session").then(|| method.into()),
            handler: handler.map(Into::into),
            outcome: outcome.map(Into::into),
            error_type: None,
            client_name: named.then(|| client.name.into()),
            client_version: named.then(|| client.version.into()),
            protocol_version: Some(cell.era.version().to_string()),
            transport: Some(cell.transport.column().into()),
        }
    };
    // The wrapper classifies errors; an attribute alone reads only the outcome.
    let error_type = |error_type: String| wrapper.then_some(error_type);
    let ok = Some("ok");
    let mut rows = Vec::new();
    // Only the wrapper sees requests other than handler calls, notifications and sessions.
    if wrapper {
        match cell.era {
            Era::Handshake => {
                rows.push(shape("request", "initialize", None, ok));
                // Stateless HTTP answers notifications with 202 without handing them to the
                // server (rmcp's `StreamableHttpService`): no row can see them.
                if !stateless_handshake {
                    rows.push(shape(
                        "notification",
                        "notifications/initialized",
                        None,
                        None,
                    ));
                }
            }
            Era::Discover => rows.push(shape("request", "server/discover", None, ok)),
        }
        rows.push(shape("request", "tools/list", None, ok));
        // A session per pipe, and per client on HTTP with sessions (handshake era only).
        if has_sessions(cell) {
            rows.push(shape("session", "start", None, None));
            rows.push(shape("session", "end", None, None));
        }
    }
    rows.push(shape("tool", "tools/call", Some("add"), ok));
    rows.push(Shape {
        error_type: error_type("tool_error".into()),
        ..shape("tool", "tools/call", Some("divide"), Some("error"))
    });
    rows.push(Shape {
        error_type: error_type(client.unknown_tool_code.to_string()),
        ..shape("tool", "tools/call", Some(UNKNOWN_TOOL), Some("error"))
    });
    rows.push(shape("prompt", "prompts/get", Some("greet"), ok));
    rows.push(shape(
        "resource",
        "resources/read",
        Some("mem://readme"),
        ok,
    ));
    rows
}

/// Whether the cell's connections are sessions: pipes are, and HTTP with sessions after a
/// handshake. 2026-07-28 has no sessions on HTTP.
fn has_sessions(cell: &CellRun) -> bool {
    match cell.transport {
        Transport::Pipe => true,
        Transport::Http { sessions } => sessions && cell.era == Era::Handshake,
    }
}

/// Every check of the contract on a cell, reported together with the rows seen.
fn check(cell: &CellRun) {
    let mut failures: Vec<String> = Vec::new();
    let era_version = cell.era.version().to_string();

    // The harness: the clients negotiated the cell's era.
    for client in &cell.clients {
        assert_eq!(
            client.negotiated, era_version,
            "{} negotiated another version than the cell's",
            client.name
        );
        match cell.transport {
            Transport::Http { sessions: true } if cell.era == Era::Handshake => assert_eq!(
                client.http_sessions.len(),
                1,
                "{} got one mcp-session-id: {:?}",
                client.name,
                client.http_sessions
            ),
            Transport::Http { .. } => assert!(
                client.http_sessions.is_empty(),
                "{}: no mcp-session-id in this cell, got {:?}",
                client.name,
                client.http_sessions
            ),
            Transport::Pipe => {}
        }
    }
    assert!(!cell.rows.is_empty(), "no row reached the receiver");

    // The rows: exactly the expected ones, as a multiset.
    let mut expected: Vec<Shape> = cell
        .clients
        .iter()
        .flat_map(|client| expected_rows(cell, client))
        .collect();
    expected.sort();
    let mut seen: Vec<Shape> = cell.rows.iter().map(Shape::of).collect();
    seen.sort();
    let (missing, unexpected) = multiset_difference(&expected, &seen);
    for shape in &missing {
        failures.push(format!("missing row:    {}", shape.short()));
    }
    for shape in &unexpected {
        failures.push(format!("unexpected row: {}", shape.short()));
    }

    for row in &cell.rows {
        let shape = Shape::of(row);
        let what = shape.short();
        if shape.client_name.as_deref() == Some("rmcp") {
            failures.push(format!("names rmcp as its client: {what}"));
        }
        // The handler's own time is what the wrapper measures around it.
        if cell.setup == Setup::AttributesOnly && row.record.contains_key("handler_duration_ms") {
            failures.push(format!(
                "a handler_duration_ms without the wrapper on {what}"
            ));
        }
        // request ids: on requests and handler calls, not on notifications or sessions.
        let request_id = value(row, "request_id").filter(|id| !id.is_empty());
        match shape.kind.as_deref() {
            Some("notification" | "session") if request_id.is_some() => {
                failures.push(format!("a request_id {request_id:?} on {what}"))
            }
            Some("request" | "tool" | "prompt" | "resource") if request_id.is_none() => {
                failures.push(format!("no request_id on {what}"))
            }
            _ => {}
        }
    }

    // Sessions.
    let process = mcp_analytics::session::process_session_id().to_string();
    match cell.transport {
        Transport::Pipe => {
            for row in &cell.rows {
                if row.session != process {
                    failures.push(format!(
                        "session {:?}, not the process's {process:?}, on {}",
                        row.session,
                        Shape::of(row).short()
                    ));
                }
            }
        }
        Transport::Http { .. } if has_sessions(cell) => {
            for client in &cell.clients {
                let given: Vec<&String> = client.http_sessions.iter().collect();
                for row in cell
                    .rows
                    .iter()
                    .filter(|row| value(row, "client_name").as_deref() == Some(client.name))
                {
                    if !client.http_sessions.contains(&row.session) {
                        failures.push(format!(
                            "session {:?}, not {}'s mcp-session-id {given:?}, on {}",
                            row.session,
                            client.name,
                            Shape::of(row).short()
                        ));
                    }
                }
            }
            let [alpha, beta] = &cell.clients[..] else {
                panic!("two clients on HTTP")
            };
            if !alpha.http_sessions.is_disjoint(&beta.http_sessions) {
                failures.push("the two clients share a session (harness)".into());
            }
            for row in &cell.rows {
                if value(row, "client_name").is_none() {
                    failures.push(format!(
                        "no client on a row of a session: {}",
                        Shape::of(row).short()
                    ));
                }
            }
        }
        Transport::Http { .. } => {
            for row in &cell.rows {
                if !row.session.is_empty() {
                    failures.push(format!(
                        "session {:?} (the process's: {}), not \"\", on {}",
                        row.session,
                        row.session == process,
                        Shape::of(row).short()
                    ));
                }
            }
        }
    }

    if !failures.is_empty() {
        panic!("{}", report(cell, &expected, &failures));
    }
}

/// Elements of `expected` not in `seen`, and of `seen` not in `expected`, both sorted.
fn multiset_difference(expected: &[Shape], seen: &[Shape]) -> (Vec<Shape>, Vec<Shape>) {
    let (mut missing, mut unexpected) = (Vec::new(), Vec::new());
    let (mut e, mut s) = (expected.iter().peekable(), seen.iter().peekable());
    loop {
        match (e.peek(), s.peek()) {
            (Some(a), Some(b)) if a == b => {
                e.next();
                s.next();
            }
            (Some(a), Some(b)) if a < b => missing.push(e.next().unwrap().clone()),
            (Some(_), Some(_)) | (None, Some(_)) => unexpected.push(s.next().unwrap().clone()),
            (Some(_), None) => missing.push(e.next().unwrap().clone()),
            (None, None) => break,
        }
    }
    (missing, unexpected)
}

fn report(cell: &CellRun, expected: &[Shape], failures: &[String]) -> String {
    let mut text = format!(
        "{:?} / {:?} / {:?}: {} failure(s)\n",
        cell.setup,
        cell.transport,
        cell.era,
        failures.len()
    );
    for failure in failures {
        let _ = writeln!(text, "  {failure}");
    }
    let _ = writeln!(text, "\nclients:");
    for client in &cell.clients {
        let _ = writeln!(
            text,
            "  {} {} negotiated {} unknown-tool code {} mcp-session-id {:?}",
            client.name,
            client.version,
            client.negotiated,
            client.unknown_tool_code,
            client.http_sessions
        );
    }
    let _ = writeln!(text, "\nexpected rows ({}):", expected.len());
    for shape in expected {
        let _ = writeln!(text, "  {}", shape.short());
    }
    let _ = writeln!(text, "\nrows seen ({}), per client:", cell.rows.len());
    for (client, rows) in cell.rows_per_client() {
        let _ = writeln!(text, "  {}:", client.as_deref().unwrap_or("(no client)"));
        for row in rows {
            let _ = writeln!(
                text,
                "    session={:?} request_id={} {}",
                row.session,
                value(row, "request_id").unwrap_or_else(|| "-".into()),
                Shape::of(row).short()
            );
        }
    }
    let _ = writeln!(text, "\nraw rows:");
    for row in &cell.rows {
        let _ = writeln!(text, "  {}", row.raw);
    }
    text
}

fn cell(setup: Setup, transport: Transport, era: Era) {
    check(&run_cell(setup, transport, era));
}

const STATEFUL: Transport = Transport::Http { sessions: true };
const STATELESS: Transport = Transport::Http { sessions: false };

#[test]
fn stdio_2025_11_25() {
    cell(Setup::Wrapper, Transport::Pipe, Era::Handshake);
}

#[test]
fn http_stateful_2025_11_25() {
    cell(Setup::Wrapper, STATEFUL, Era::Handshake);
}

#[test]
fn stdio_2026_07_28() {
    cell(Setup::Wrapper, Transport::Pipe, Era::Discover);
}

#[test]
fn http_stateful_server_2026_07_28() {
    cell(Setup::Wrapper, STATEFUL, Era::Discover);
}

#[test]
fn http_stateless_server_2026_07_28() {
    cell(Setup::Wrapper, STATELESS, Era::Discover);
}

#[test]
fn http_stateless_2025_11_25() {
    cell(Setup::Wrapper, STATELESS, Era::Handshake);
}

#[test]
fn attributes_only_stdio_2025_11_25() {
    cell(Setup::AttributesOnly, Transport::Pipe, Era::Handshake);
}

#[test]
fn attributes_only_http_stateful_2025_11_25() {
    cell(Setup::AttributesOnly, STATEFUL, Era::Handshake);
}

#[test]
fn attributes_only_stdio_2026_07_28() {
    cell(Setup::AttributesOnly, Transport::Pipe, Era::Discover);
}

#[test]
fn attributes_only_http_stateful_server_2026_07_28() {
    cell(Setup::AttributesOnly, STATEFUL, Era::Discover);
}

#[test]
fn attributes_only_http_stateless_server_2026_07_28() {
    cell(Setup::AttributesOnly, STATELESS, Era::Discover);
}

#[test]
fn attributes_only_http_stateless_2025_11_25() {
    cell(Setup::AttributesOnly, STATELESS, Era::Handshake);
}

/// Rows that keep the contract, as a correct instrumentation would deliver them for `cell`'s
/// clients: what [`check`] must accept.
fn contract_rows(cell: &CellRun) -> Vec<Row> {
    let process = mcp_analytics::session::process_session_id().to_string();
    let mut lines = Vec::new();
    for client in &cell.clients {
        let session = match cell.transport {
            Transport::Pipe => process.clone(),
            _ if has_sessions(cell) => client.http_sessions.first().cloned().unwrap(),
            _ => String::new(),
        };
        for (n, shape) in expected_rows(cell, client).into_iter().enumerate() {
            let mut record = serde_json::Map::new();
            let mut put = |key: &str, value: &Option<String>| {
                if let Some(value) = value {
                    record.insert(key.into(), Value::String(value.clone()));
                }
            };
            put("kind", &shape.kind);
            put("method", &shape.method);
            put("event", &shape.event);
            put("outcome", &shape.outcome);
            put("error_type", &shape.error_type);
            put("client_name", &shape.client_name);
            put("client_version", &shape.client_version);
            put("protocol_version", &shape.protocol_version);
            put("transport", &shape.transport);
            let kind = shape.kind.clone().unwrap_or_default();
            if let Some(handler) = &shape.handler {
                record.insert(kind.clone(), Value::String(handler.clone()));
            }
            if !matches!(kind.as_str(), "notification" | "session") {
                record.insert("request_id".into(), Value::from(n));
            }
            lines.push(
                serde_json::json!({
                    "timestamp": "2026-12-02 12:00:00.000",
                    "session": session,
                    "level": if shape.outcome.as_deref() == Some("error") { "error" } else { "info" },
                    "record": Value::Object(record).to_string(),
                })
                .to_string(),
            );
        }
    }
    Row::parse_lines(
        mcp_analytics::Builder::DEFAULT_DATASOURCE,
        lines.iter().map(String::as_str),
    )
    .expect("contract rows fit the datasource")
}

/// The checks can pass: rows that keep the contract pass them in every cell of both setups,
/// and fail them in the other setup's cell (the wrapper's rows are not the attributes' alone);
/// a row naming `rmcp` as its client fails them. No pipeline or server here, only [`check`].
#[test]
fn the_checks_accept_the_contract_and_refuse_rmcp_as_a_client() {
    let cells = [
        (Transport::Pipe, Era::Handshake),
        (Transport::Pipe, Era::Discover),
        (STATEFUL, Era::Handshake),
        (STATEFUL, Era::Discover),
        (STATELESS, Era::Handshake),
        (STATELESS, Era::Discover),
    ];
    let refuses = |cell: &CellRun| std::panic::catch_unwind(|| check(cell)).is_err();
    for (setup, (transport, era)) in [Setup::Wrapper, Setup::AttributesOnly]
        .into_iter()
        .flat_map(|setup| cells.map(|cell| (setup, cell)))
    {
        let clients = match transport {
            Transport::Pipe => &CLIENTS[..1],
            Transport::Http { .. } => &CLIENTS[..],
        };
        let sessions = transport == STATEFUL && era == Era::Handshake;
        let mut cell = CellRun {
            setup,
            transport,
            era,
            clients: clients
                .iter()
                .map(|&(name, version)| ClientRun {
                    name,
                    version,
                    negotiated: era.version().to_string(),
                    unknown_tool_code: -32602,
                    http_sessions: sessions
                        .then(|| format!("session-of-{name}"))
                        .into_iter()
                        .collect(),
                })
                .collect(),
            rows: Vec::new(),
        };
        cell.rows = contract_rows(&cell);
        check(&cell);

        let other = CellRun {
            setup: match setup {
                Setup::Wrapper => Setup::AttributesOnly,
                Setup::AttributesOnly => Setup::Wrapper,
            },
            transport,
            era,
            clients: std::mem::take(&mut cell.clients),
            rows: cell.rows.clone(),
        };
        assert!(
            refuses(&other),
            "{setup:?} / {transport:?} / {era:?}: the rows pass as {:?}'s",
            other.setup
        );
        cell.clients = other.clients;

        let mut rmcp = cell.rows[0].clone();
        rmcp.record
            .insert("client_name".into(), Value::String("rmcp".into()));
        cell.rows.push(rmcp);
        assert!(
            refuses(&cell),
            "{setup:?} / {transport:?} / {era:?}: a row naming rmcp passes"
        );
    }
}
