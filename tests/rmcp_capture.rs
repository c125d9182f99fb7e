//! What the server wrapper records of a request beyond who sent it: the user and fields its
//! `dimensions_by` reads off the request, and the model and trace the client's `_meta` names,
//! sent by rmcp's own client over an in-process pipe on both protocol eras. The pipeline
//! delivers to memory, through the receiver's schema checks; each test names its client
//! uniquely and reads its own rows.

mod common;

use std::time::Duration;

use mcp_analytics::rmcp::Instrumented;
use mcp_analytics::{Dimensions, mcp_tool};
use mcp_analytics_receiver::Row;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, ProtocolVersion,
    RequestParamsMeta, ServerCapabilities, ServerConfig,
};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, RunningService};
use rmcp::{RoleClient, ServerHandler, ServiceExt, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize, schemars::JsonSchema)]
struct RegionArgs {
    region: String,
}

#[derive(Clone, Default)]
struct Server;

#[tool_router]
impl Server {
    #[tool(description = "No attribute of ours")]
    fn plain(&self) -> String {
        "plain".into()
    }

    #[tool(description = "No attribute of ours; answers its argument")]
    fn lookup(&self, Parameters(args): Parameters<RegionArgs>) -> String {
        args.region
    }

    #[mcp_tool(fields(region = args.region, tenant = "from-attribute"))]
    #[tool(description = "Our attribute, with fields of its own")]
    fn regional(&self, Parameters(args): Parameters<RegionArgs>) -> String {
        args.region
    }
}

#[tool_handler]
impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `server` on one end of a pipe, rmcp's client named `client` on the other (2026-07-28 when
/// `discover`); `session` runs the client's requests. Returns the rows naming `client`.
fn connect<F>(client: &str, discover: bool, server: Instrumented<Server>, session: F) -> Vec<Row>
where
    F: AsyncFnOnce(&RunningService<RoleClient, ClientConfig>),
{
    let memory = common::shared_memory();
    runtime().block_on(async {
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(async move { server.serve(server_io).await });
        let config = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new(client, "1.0.0"),
        );
        let running = if discover {
            let lifecycle = ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            };
            config.serve_with_lifecycle(client_io, lifecycle).await
        } else {
            config.serve(client_io).await
        }
        .expect("the client connects");
        session(&running).await;
        running.cancel().await.unwrap();
        let server = server.await.unwrap().expect("the server starts");
        let _ = server.waiting().await;
    });
    mcp_analytics::flush(Duration::from_secs(5)).unwrap();
    memory
        .rows()
        .into_iter()
        .filter(|row| row.record_str("client_name") == client)
        .collect()
}

/// The rows of calls of `tool`, in the order they were requested (rows arrive in the order
/// they ended, and threads may end calls in another order than they were asked).
fn tool_rows(rows: &[Row], tool: &str) -> Vec<Row> {
    let mut calls: Vec<Row> = rows
        .iter()
        .filter(|row| row.record_str("kind") == "tool" && row.record_str("tool") == tool)
        .cloned()
        .collect();
    calls.sort_by_key(|row| row.record_str("request_id").parse::<u64>().ok());
    calls
}

/// A call of `tool` whose `_meta` names `model` (SEP-2817) and carries `traceparent`.
fn call_with_meta(tool: &'static str, model: &str, traceparent: &str) -> CallToolRequestParams {
    let mut params = CallToolRequestParams::new(tool);
    params.set_traceparent(traceparent);
    params.meta_mut().get_or_insert_default().0.0.insert(
        "io.modelcontextprotocol/aiInvocation".into(),
        json!({"model": model}),
    );
    params
}

#[test]
fn the_model_and_trace_come_from_each_requests_meta_on_both_eras() {
    for (client, discover) in [("meta-2025", false), ("meta-2026", true)] {
        let rows = connect(
            client,
            discover,
            mcp_analytics::rmcp::instrument!(Server),
            async |client| {
                let first = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
                let second = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
                for params in [
                    call_with_meta("plain", "claude-opus-4-8", first),
                    call_with_meta("plain", "gpt-5.2", second),
                    CallToolRequestParams::new("plain"),
                ] {
                    client.call_tool(params).await.unwrap();
                }
            },
        );
        let calls = tool_rows(&rows, "plain");
        assert_eq!(calls.len(), 3, "{client}: {calls:#?}");
        assert_eq!(calls[0].record_str("model"), "claude-opus-4-8");
        assert_eq!(
            calls[0].record_str("trace_id"),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(calls[0].record_str("span_id"), "00f067aa0ba902b7");
        assert_eq!(calls[1].record_str("model"), "gpt-5.2", "per request");
        assert_eq!(
            calls[1].record_str("trace_id"),
            "0af7651916cd43dd8448eb211c80319c"
        );
        for key in ["model", "trace_id", "span_id"] {
            assert_eq!(
                calls[2].record.get(key),
                None,
                "{client}: no {key} in _meta"
            );
        }
    }
}

#[test]
fn dimensions_by_reads_the_user_and_fields_of_each_request() {
    let server = mcp_analytics::rmcp::instrument!(Server).dimensions_by(|request| {
        let user = request
            .meta()
            .0
            .get("com.example/user")
            .and_then(|user| user.as_str())
            .unwrap_or_default()
            .to_owned();
        Dimensions::new()
            .user(user)
            .field("tenant", "from-request")
            .field("method", request.method().to_owned())
    });
    let rows = connect("dimensions-by", true, server, async |client| {
        for user in ["ada", "grace"] {
            let mut params = CallToolRequestParams::new("regional").with_arguments(
                serde_json::Map::from_iter([("region".to_owned(), json!("eu"))]),
            );
            params
                .meta_mut()
                .get_or_insert_default()
                .0
                .0
                .insert("com.example/user".into(), json!(user));
            client.call_tool(params).await.unwrap();
        }
        client
            .call_tool(CallToolRequestParams::new("plain"))
            .await
            .unwrap();
        client.list_tools(None).await.unwrap();
    });
    let regional = tool_rows(&rows, "regional");
    assert_eq!(regional.len(), 2, "{regional:#?}");
    assert_eq!(regional[0].record_str("user"), "ada");
    assert_eq!(regional[1].record_str("user"), "grace");
    assert_eq!(
        regional[0].record["fields"],
        json!({"tenant": "from-attribute", "method": "tools/call", "region": "eu"}),
        "the request's fields, the attribute's first where both name one"
    );
    let plain = tool_rows(&rows, "plain");
    assert_eq!(plain[0].record.get("user"), None, "no user in this request");
    assert_eq!(
        plain[0].record["fields"],
        json!({"tenant": "from-request", "method": "tools/call"})
    );
    let listing = rows
        .iter()
        .find(|row| row.record_str("method") == "tools/list")
        .expect("a tools/list row");
    assert_eq!(listing.record["fields"]["method"], "tools/list");
}

#[test]
fn the_wrapper_captures_arguments_and_results_only_when_told_and_redacted() {
    let call_lookup = async |client: &RunningService<RoleClient, ClientConfig>| {
        let arguments = serde_json::Map::from_iter([
            ("region".to_owned(), json!("eu, ask ada@example.com")),
            ("api_key".to_owned(), json!("k-1234-not-a-real-key")),
        ]);
        client
            .call_tool(CallToolRequestParams::new("lookup").with_arguments(arguments))
            .await
            .unwrap();
    };
    let quiet = connect(
        "capture-off",
        false,
        mcp_analytics::rmcp::instrument!(Server),
        call_lookup,
    );
    let row = &tool_rows(&quiet, "lookup")[0];
    assert_eq!(row.record.get("arguments"), None, "off by default");
    assert_eq!(row.record.get("result"), None);

    let server = mcp_analytics::rmcp::instrument!(Server)
        .capture_arguments(true)
        .capture_results(true);
    let rows = connect("capture-on", true, server, call_lookup);
    let row = &tool_rows(&rows, "lookup")[0];
    assert_eq!(
        row.record["arguments"],
        json!({"region": "eu, ask [redacted:email]", "api_key": "[redacted]"}),
        "the request's arguments, redacted"
    );
    let result = &row.record["result"];
    assert_eq!(
        result["content"][0]["text"], "eu, ask [redacted:email]",
        "the tool's result, redacted: {result}"
    );
    assert!(!row.raw.contains("ada@example.com") && !row.raw.contains("k-1234"));
}
