//! The server wrapper's agent-facing options, `intent_argument`, `conversations` and
//! `missing_capability_tool`, driven by rmcp's own client over an in-process pipe on both
//! protocol eras, and over stateless streamable HTTP: what the listing advertises with each on
//! (and that nothing changes with them off), that the server never sees what they add, and what
//! the rows record of what the agent said.
//!
//! The pipeline delivers to memory; each test reads its own rows (by client, or by the
//! conversation handles its calls were given).

mod common;

use std::sync::Arc;
use std::time::Duration;

use mcp_analytics::rmcp::Instrumented;
use mcp_analytics_receiver::Row;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::RequestParamsMeta;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
    JsonObject, ListToolsResult, ProtocolVersion, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, RunningService};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{
    StreamableHttpClientTransport, StreamableHttpServerConfig, StreamableHttpService,
};
use rmcp::{RoleClient, ServerHandler, ServiceExt, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The intents below carry an email address, which redaction takes out of the rows.
const EMAIL: &str = "ada@example.com";

#[derive(Deserialize, schemars::JsonSchema)]
struct OwnContext {
    /// This tool's own `context`: its data, not the agent's intent.
    context: String,
}

#[derive(Clone, Default)]
struct Server;

#[tool_router]
impl Server {
    /// Shows the server's view: the arguments it was called with, as JSON.
    #[tool(description = "Returns the arguments it got")]
    fn got(&self, Parameters(arguments): Parameters<JsonObject>) -> String {
        Value::Object(arguments).to_string()
    }

    #[tool(description = "Declares a context argument of its own")]
    fn own_context(&self, Parameters(arguments): Parameters<OwnContext>) -> String {
        arguments.context
    }

    #[tool(description = "Always fails")]
    fn fail(&self) -> Result<String, String> {
        Err("refused".into())
    }
}

#[tool_handler]
impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// Both protocol eras: 2025-11-25 (a handshake) and 2026-07-28 (`server/discover`).
const ERAS: [(&str, bool); 2] = [("2025", false), ("2026", true)];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn client_config(client: &str) -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new(client, "1.0.0"),
    )
}

fn discover() -> ClientLifecycleMode {
    ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    }
}

/// `server` on one end of a pipe, rmcp's client named `client` on the other (2026-07-28 when
/// `discover`); `session` runs the client's requests and returns what the test needs. Returns
/// that, and the rows naming `client`.
fn connect<S, F, T>(client: &str, discover_: bool, server: S, session: F) -> (T, Vec<Row>)
where
    S: ServerHandler,
    F: AsyncFnOnce(&RunningService<RoleClient, ClientConfig>) -> T,
{
    let memory = common::shared_memory();
    let outcome = runtime().block_on(async {
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(async move { server.serve(server_io).await });
        let config = client_config(client);
        let running = if discover_ {
            config.serve_with_lifecycle(client_io, discover()).await
        } else {
            config.serve(client_io).await
        }
        .expect("the client connects");
        let outcome = session(&running).await;
        running.cancel().await.unwrap();
        let server = server.await.unwrap().expect("the server starts");
        let _ = server.waiting().await;
        outcome
    });
    mcp_analytics::flush(Duration::from_secs(5)).unwrap();
    let rows = memory
        .rows()
        .into_iter()
        .filter(|row| row.record_str("client_name") == client)
        .collect();
    (outcome, rows)
}

/// Every option on.
fn all_on(server: Instrumented<Server>) -> Instrumented<Server> {
    server
        .intent_argument(true)
        .conversations(true)
        .missing_capability_tool("get_more_tools")
}

fn arguments(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        _ => panic!("arguments are an object"),
    }
}

fn call(tool: &'static str, args: Value) -> CallToolRequestParams {
    CallToolRequestParams::new(tool).with_arguments(arguments(args))
}

fn texts(result: &CallToolResult) -> Vec<String> {
    result
        .content
        .iter()
        .filter_map(|block| Some(block.as_text()?.text.clone()))
        .collect()
}

/// The handle a result hands over: its last text block, `{"conversation_id":"…"}`.
fn handle_of(result: &CallToolResult) -> Option<String> {
    let last: Value = serde_json::from_str(texts(result).last()?).ok()?;
    Some(last.get("conversation_id")?.as_str()?.to_owned())
}

fn schema(tool: &Tool) -> Value {
    Value::Object(JsonObject::clone(&tool.input_schema))
}

fn tool<'a>(listing: &'a ListToolsResult, name: &str) -> &'a Tool {
    let mut named = listing.tools.iter().filter(|tool| tool.name == name);
    let tool = named.next().unwrap_or_else(|| panic!("{name} is listed"));
    assert!(named.next().is_none(), "{name} is listed once");
    tool
}

fn rows_of<'a>(rows: &'a [Row], kind: &str) -> Vec<&'a Row> {
    let mut rows: Vec<&Row> = rows
        .iter()
        .filter(|row| row.record_str("kind") == kind)
        .collect();
    rows.sort_by_key(|row| row.record_str("request_id").parse::<u64>().ok());
    rows
}

/// An intent as recorded: present, bounded, and without the email, redacted.
fn assert_recorded_intent(row: &Row, says: &str) {
    let intent = row.record_str("intent");
    assert!(intent.contains(says), "{intent:?} says {says:?}");
    assert!(intent.len() <= mcp_analytics::limits::MAX_INTENT_LEN);
    assert!(!intent.contains(EMAIL), "personal data in {intent:?}");
}

#[test]
fn with_the_options_off_the_listing_is_the_servers_own() {
    for (era, discover_) in ERAS {
        let list = async |client: &RunningService<RoleClient, ClientConfig>| {
            serde_json::to_value(client.list_tools(None).await.unwrap()).unwrap()
        };
        let (bare, _) = connect(&format!("off-bare-{era}"), discover_, Server, list);
        let wrapped = mcp_analytics::rmcp::instrument!(Server);
        let (off, rows) = connect(&format!("off-{era}"), discover_, wrapped, list);
        assert_eq!(off, bare, "{era}: the wrapper with no option adds nothing");
        let on = all_on(mcp_analytics::rmcp::instrument!(Server))
            .intent_argument(false)
            .conversations(false);
        let (only_tool, _) = connect(&format!("only-tool-{era}"), discover_, on, list);
        let mut tools = only_tool["tools"].as_array().unwrap().clone();
        let added = tools.pop().unwrap();
        assert_eq!(added["name"], "get_more_tools");
        assert_eq!(tools, bare["tools"].as_array().unwrap().clone(), "{era}");
        assert!(rows.iter().all(|row| row.record.get("intent").is_none()));
    }
}

#[test]
fn with_the_options_on_every_tool_with_room_advertises_the_arguments() {
    let mut recorded = Vec::new();
    for (era, discover_) in ERAS {
        let client = format!("listing-{era}");
        let server = all_on(mcp_analytics::rmcp::instrument!(Server));
        let (listing, rows) = connect(&client, discover_, server, async |client| {
            client.list_tools(None).await.unwrap()
        });
        for name in ["got", "fail"] {
            let schema = schema(tool(&listing, name));
            assert_eq!(schema["properties"]["context"]["type"], "string", "{name}");
            let description = schema["properties"]["context"]["description"].as_str();
            assert!(description.unwrap().contains("15 to 25 words"), "{name}");
            assert!(
                schema["required"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("context")),
                "{name}: context is required"
            );
            assert_eq!(schema["properties"]["conversation_id"]["type"], "string");
            assert!(
                !schema["required"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("conversation_id")),
                "{name}: conversation_id is optional"
            );
        }
        let own = schema(tool(&listing, "own_context"));
        assert_eq!(
            own["properties"]["context"]["description"],
            "This tool's own `context`: its data, not the agent's intent.",
            "{era}: a tool's own context is left as it is"
        );
        assert_eq!(own["required"], json!(["context"]));
        assert_eq!(own["properties"]["conversation_id"]["type"], "string");
        let report = schema(tool(&listing, "get_more_tools"));
        assert_eq!(report["required"], json!(["context"]));
        assert_eq!(report["properties"]["conversation_id"]["type"], "string");
        // The listing's row records what the server listed, not what the wrapper added: once
        // per process, the first time (both eras list the same).
        let names = rows
            .iter()
            .filter(|row| row.record_str("method") == "tools/list")
            .filter_map(|row| row.record.get("listed"));
        recorded.extend(names.cloned());
    }
    assert_eq!(recorded, [json!(["fail", "got", "own_context"])]);
}

#[test]
fn the_server_never_sees_the_arguments_and_the_row_records_what_the_agent_said() {
    for (era, discover_) in ERAS {
        let client = format!("said-{era}");
        let server = all_on(mcp_analytics::rmcp::instrument!(Server));
        let (handles, rows) = connect(&client, discover_, server, async |client| {
            client.list_tools(None).await.unwrap();
            let intent = format!("Checking the arguments a tool gets, for a user at {EMAIL}");
            let first = client
                .call_tool(call("got", json!({"text": "one", "context": intent})))
                .await
                .unwrap();
            let handle = handle_of(&first).expect("a minted handle");
            assert_eq!(
                texts(&first)[0],
                r#"{"text":"one"}"#,
                "{era}: the tool's view"
            );
            let echoed = json!({"text": "two", "context": "Echoing the handle back",
                "conversation_id": handle.to_uppercase()});
            let second = client.call_tool(call("got", echoed)).await.unwrap();
            assert_eq!(texts(&second), [r#"{"text":"two"}"#], "no new handle");
            let invented = json!({"text": "three", "context": "Inventing a handle",
                "conversation_id": "conv-1"});
            let third = client.call_tool(call("got", invented)).await.unwrap();
            let third_handle = handle_of(&third).expect("an invented handle is replaced");
            assert_ne!(third_handle, handle);
            let own = json!({"context": "its own data", "conversation_id": handle});
            let own = client.call_tool(call("own_context", own)).await.unwrap();
            assert_eq!(
                texts(&own)[0],
                "its own data",
                "a tool's own context reaches it"
            );
            let mut with_meta = call("got", json!({"context": "what the argument says"}));
            with_meta.meta_mut().get_or_insert_default().0.0.insert(
                "io.modelcontextprotocol/aiInvocation".into(),
                json!({"userIntent": "Plan a trip"}),
            );
            let meta = client.call_tool(with_meta).await.unwrap();
            assert_eq!(
                texts(&meta)[0],
                "{}",
                "taken out, even when _meta says more"
            );
            let failed = json!({"context": "Trying a tool that fails"});
            let failed = client.call_tool(call("fail", failed)).await.unwrap();
            assert_eq!(failed.is_error, Some(true));
            assert!(
                handle_of(&failed).is_none(),
                "a failure keeps its text as it is"
            );
            (handle, third_handle)
        });
        let (handle, third_handle) = handles;
        let calls = rows_of(&rows, "tool");
        assert_eq!(calls.len(), 6, "{era}: {calls:#?}");
        assert_recorded_intent(calls[0], "Checking the arguments a tool gets");
        assert!(calls[0].record_str("intent").ends_with("[redacted:email]"));
        assert_recorded_intent(calls[1], "Echoing the handle back");
        for row in &calls[..2] {
            assert_eq!(row.record_str("conversation"), handle, "{era}");
        }
        assert_eq!(
            calls[2].record_str("conversation"),
            third_handle,
            "{era}: conv-1 is not taken"
        );
        assert_eq!(calls[3].record_str("tool"), "own_context");
        assert_eq!(
            calls[3].record.get("intent"),
            None,
            "a tool's own context is its data"
        );
        assert_eq!(calls[3].record_str("conversation"), handle);
        assert_eq!(
            calls[4].record_str("intent"),
            "Plan a trip",
            "{era}: _meta first"
        );
        assert_eq!(calls[5].record_str("outcome"), "error");
        assert!(calls[5].record_str("conversation").len() == 36);
        let sessions: Vec<&str> = calls.iter().map(|row| row.session.as_str()).collect();
        assert!(
            sessions
                .iter()
                .all(|session| *session == sessions[0] && *session != handle),
            "{era}: a pipe keeps its session: {sessions:?}"
        );
        for row in rows.iter().filter(|row| row.record_str("kind") != "tool") {
            assert_eq!(row.record.get("intent"), None, "{row:?}");
            assert_eq!(row.record.get("conversation"), None, "{row:?}");
        }
    }
}

#[test]
fn the_missing_capability_tool_is_answered_by_the_wrapper_unless_the_server_has_one() {
    for (era, discover_) in ERAS {
        let client = format!("missing-{era}");
        let server = all_on(mcp_analytics::rmcp::instrument!(Server));
        let (_, rows) = connect(&client, discover_, server, async |client| {
            // Not listed first: on stateless HTTP, another server instance may have listed.
            let report = json!({"context": format!("A tool to convert currencies for {EMAIL}")});
            let answer = client
                .call_tool(call("get_more_tools", report))
                .await
                .unwrap();
            assert_ne!(answer.is_error, Some(true), "{era}: {answer:?}");
            assert!(texts(&answer)[0].contains("no other tools"), "{answer:?}");
            assert!(
                handle_of(&answer).is_some(),
                "its call starts a conversation too"
            );
        });
        assert!(
            rows_of(&rows, "tool").is_empty(),
            "{era}: not a call of a tool"
        );
        let reports = rows_of(&rows, "missing_capability");
        assert_eq!(reports.len(), 1, "{era}: {rows:#?}");
        let report = reports[0];
        assert_eq!(report.record_str("name"), "get_more_tools");
        assert_eq!(report.record_str("method"), "tools/call");
        assert_eq!(report.record_str("outcome"), "ok");
        assert_eq!(report.record_str("funcName"), "call_tool");
        assert_eq!(report.record.get("tool"), None);
        assert_recorded_intent(report, "A tool to convert currencies");
        assert_eq!(report.record_str("conversation").len(), 36);

        // The server's own tool of the name wins: listed once, and called.
        let client = format!("missing-owned-{era}");
        let server = mcp_analytics::rmcp::instrument!(Server).missing_capability_tool("got");
        let (listing, rows) = connect(&client, discover_, server, async |client| {
            let listing = client.list_tools(None).await.unwrap();
            let answer = client
                .call_tool(call("got", json!({"context": "the server's own"})))
                .await
                .unwrap();
            assert_eq!(texts(&answer), [r#"{"context":"the server's own"}"#]);
            listing
        });
        assert_eq!(
            tool(&listing, "got").description.as_deref(),
            Some("Returns the arguments it got")
        );
        assert_eq!(listing.tools.len(), 3, "{era}: nothing added");
        assert!(rows_of(&rows, "missing_capability").is_empty());
        assert_eq!(rows_of(&rows, "tool").len(), 1);
    }
}

#[test]
fn on_stateless_http_the_conversation_is_the_session() {
    let memory = common::shared_memory();
    let handles = runtime().block_on(async {
        let stop = CancellationToken::new();
        let service = StreamableHttpService::new(
            || Ok(all_on(mcp_analytics::rmcp::instrument!(Server))),
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
        let mut handles = Vec::new();
        for (era, discover_) in ERAS {
            let transport = StreamableHttpClientTransport::from_uri(url.clone());
            let config = client_config(&format!("stateless-{era}"));
            let running = if discover_ {
                config.serve_with_lifecycle(transport, discover()).await
            } else {
                config.serve(transport).await
            }
            .expect("the client connects");
            let first = running
                .call_tool(call("got", json!({"context": "Starting a conversation"})))
                .await
                .unwrap();
            let minted = handle_of(&first).expect("a handle");
            let again = json!({"context": "Continuing it", "conversation_id": minted});
            let second = running.call_tool(call("got", again)).await.unwrap();
            assert_eq!(texts(&second), ["{}"], "{era}");
            let invented = json!({"context": "Inventing one", "conversation_id": "conv-1"});
            let third = running.call_tool(call("got", invented)).await.unwrap();
            handles.push((era, minted, handle_of(&third).expect("a new handle")));
            running.cancel().await.unwrap();
        }
        stop.cancel();
        http.await.unwrap().unwrap();
        handles
    });
    mcp_analytics::flush(Duration::from_secs(5)).unwrap();
    let rows = memory.rows();
    let in_conversation = |handle: &str| -> Vec<Row> {
        rows.iter()
            .filter(|row| row.record_str("conversation") == handle)
            .cloned()
            .collect()
    };
    for (era, minted, third) in handles {
        let conversation = in_conversation(&minted);
        assert_eq!(conversation.len(), 2, "{era}: {conversation:#?}");
        for row in &conversation {
            assert_eq!(row.record_str("kind"), "tool");
            assert_eq!(row.record_str("transport"), "tcp");
            assert_eq!(
                row.session, minted,
                "{era}: the conversation is the session"
            );
        }
        let invented = in_conversation(&third);
        assert_eq!(invented.len(), 1, "{era}");
        assert_eq!(invented[0].session, third, "{era}: conv-1 merges nothing");
        assert!(
            rows.iter()
                .all(|row| row.record_str("conversation") != "conv-1")
        );
        assert!(
            rows.iter()
                .filter(|row| row.session == minted)
                .all(|row| row.record_str("kind") != "session"),
            "{era}: a conversation is no session of a connection: it neither starts nor ends"
        );
    }
}
