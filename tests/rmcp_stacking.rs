//! Stacked with rmcp's `#[tool]` and `#[prompt]`, in either order, inside `#[tool_router]` and
//! `#[prompt_router]` impls, and on a hand-written `ServerHandler::read_resource`: every call a
//! real rmcp client makes (over an in-process pipe) records exactly one event, and the two
//! orders record the same events.
//!
//! Above rmcp's attribute ours sees the `async fn` as written; below it, the
//! `fn -> Pin<Box<dyn Future>> { Box::pin(async move { .. }) }` that `#[tool]` generates.
//!
//! The pipeline delivers to memory ([`common::Memory`]), its lines read through the loopback
//! Events API's schema checks: the rows are what matters here, not how they travel.

mod common;

use std::time::Duration;

use mcp_analytics::{mcp_prompt, mcp_resource, mcp_tool};
use mcp_analytics_receiver::Row;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, ContentBlock,
    GetPromptRequestParams, GetPromptResult, Implementation, PromptMessage,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, ResourceContents, Role,
};
use rmcp::service::RequestContext;
use rmcp::{
    ErrorData, RoleServer, ServerHandler, ServiceExt, prompt, prompt_handler, prompt_router,
    schemars, tool, tool_handler, tool_router,
};
use serde::Deserialize;

#[derive(Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    text: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct GreetArgs {
    name: String,
}

fn echo(text: &str) -> Result<String, String> {
    if text == "fail" {
        Err(format!("refused to echo {text}"))
    } else {
        Ok(format!("echo: {text}"))
    }
}

fn greeting(name: &str) -> Result<GetPromptResult, ErrorData> {
    if name.is_empty() {
        return Err(ErrorData::invalid_params("a name is required", None));
    }
    Ok(GetPromptResult::new(vec![PromptMessage::new_text(
        Role::User,
        format!("Say hello to {name}."),
    )]))
}

#[derive(Clone)]
struct Stacked;

#[tool_router]
impl Stacked {
    #[mcp_tool]
    #[tool(description = "Echo; ours above rmcp's")]
    async fn echo_above(&self, Parameters(args): Parameters<EchoArgs>) -> Result<String, String> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        echo(&args.text)
    }

    #[tool(description = "Echo; ours below rmcp's")]
    #[mcp_tool]
    async fn echo_below(&self, Parameters(args): Parameters<EchoArgs>) -> Result<String, String> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        echo(&args.text)
    }

    #[mcp_analytics::mcp_tool]
    #[tool(description = "Sync echo; ours above rmcp's")]
    fn sync_above(&self, Parameters(args): Parameters<EchoArgs>) -> Result<String, String> {
        echo(&args.text)
    }

    #[tool(description = "Sync echo; ours below rmcp's")]
    #[mcp_analytics::mcp_tool]
    fn sync_below(&self, Parameters(args): Parameters<EchoArgs>) -> Result<String, String> {
        echo(&args.text)
    }

    /// A tool error result (`is_error: Some(true)`), not a `Result::Err`; with the context.
    #[mcp_tool]
    #[tool(description = "Echo as a tool result; ours above rmcp's")]
    async fn result_above(
        &self,
        Parameters(args): Parameters<EchoArgs>,
        _context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        as_tool_result(echo(&args.text))
    }

    #[tool(description = "Echo as a tool result; ours below rmcp's")]
    #[mcp_tool]
    async fn result_below(
        &self,
        Parameters(args): Parameters<EchoArgs>,
        _context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        as_tool_result(echo(&args.text))
    }

    /// Above rmcp's attribute, ours reads the name clients call.
    #[mcp_tool]
    #[tool(name = "renamed-echo", description = "Echo under another name")]
    async fn renamed(&self, Parameters(args): Parameters<EchoArgs>) -> Result<String, String> {
        echo(&args.text)
    }
}

fn as_tool_result(echoed: Result<String, String>) -> CallToolResult {
    match echoed {
        Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
        Err(error) => CallToolResult::error(vec![ContentBlock::text(error)]),
    }
}

#[prompt_router]
impl Stacked {
    #[mcp_prompt]
    #[prompt(description = "Greeting; ours above rmcp's")]
    async fn greet_above(
        &self,
        Parameters(args): Parameters<GreetArgs>,
    ) -> Result<GetPromptResult, ErrorData> {
        greeting(&args.name)
    }

    #[prompt(description = "Greeting; ours below rmcp's")]
    #[mcp_prompt]
    async fn greet_below(
        &self,
        Parameters(args): Parameters<GreetArgs>,
    ) -> Result<GetPromptResult, ErrorData> {
        greeting(&args.name)
    }
}

#[tool_handler]
#[prompt_handler]
impl ServerHandler for Stacked {
    #[mcp_resource(name = request.uri)]
    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        match request.uri.strip_prefix("mem://") {
            Some(key) => Ok(ReadResourceResult::new(vec![ResourceContents::text(
                format!("value of {key}"),
                request.uri.clone(),
            )])
            .into()),
            None => Err(ErrorData::resource_not_found("no such resource", None)),
        }
    }
}

fn arguments(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    value.as_object().cloned().unwrap_or_default()
}

/// Everything of an event but what differs by design between the two orders.
fn comparable(row: &Row) -> (String, String, String, String, String) {
    (
        row.level.clone(),
        row.record_str("kind").to_owned(),
        row.record_str("outcome").to_owned(),
        row.record_str("error").to_owned(),
        row.record_str("appName").to_owned(),
    )
}

#[test]
fn both_orders_record_one_identical_event_per_call() {
    let memory = common::Memory::new();
    let _analytics = memory.builder().try_init().unwrap();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(async move { Stacked.serve(server_io).await });
        let client = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("stacking-test", "1.0.0"),
        )
        .serve(client_io)
        .await
        .expect("the client connects");
        let server = server.await.unwrap().expect("the server starts");

        for tool in [
            "echo_above",
            "echo_below",
            "sync_above",
            "sync_below",
            "result_above",
            "result_below",
            "renamed-echo",
        ] {
            for text in ["hi", "fail"] {
                let result = client
                    .call_tool(
                        CallToolRequestParams::new(tool)
                            .with_arguments(arguments(serde_json::json!({ "text": text }))),
                    )
                    .await
                    .expect("the call completes");
                assert_eq!(result.is_error, Some(text == "fail"), "{tool}({text})");
            }
        }
        for prompt in ["greet_above", "greet_below"] {
            for name in ["Ada", ""] {
                let result = client
                    .get_prompt(
                        GetPromptRequestParams::new(prompt)
                            .with_arguments(arguments(serde_json::json!({ "name": name }))),
                    )
                    .await;
                assert_eq!(result.is_ok(), !name.is_empty(), "{prompt}({name:?})");
            }
        }
        for uri in ["mem://a", "disk://b"] {
            let result = client
                .read_resource(ReadResourceRequestParams::new(uri))
                .await;
            assert_eq!(result.is_ok(), uri.starts_with("mem://"), "{uri}");
        }

        client.cancel().await.unwrap();
        let _ = server.waiting().await;
    });

    mcp_analytics::flush(Duration::from_secs(3)).unwrap();
    let rows = memory.rows();
    // A handler's rows, its successful calls first. Rows carry each call's time; their order
    // in a batch is not the call order (rmcp serves calls on several threads, and each thread
    // queues on a ring of its own).
    let named = |name: &str| -> Vec<Row> {
        let mut named: Vec<Row> = rows
            .iter()
            .filter(|row| {
                ["tool", "prompt", "resource"]
                    .iter()
                    .any(|key| row.record_str(key) == name)
            })
            .cloned()
            .collect();
        named.sort_by_key(|row| row.record_str("outcome") != "ok");
        named
    };

    // Two calls each (one ok, one failing): two events each.
    for (above, below) in [
        ("echo_above", "echo_below"),
        ("sync_above", "sync_below"),
        ("result_above", "result_below"),
        ("greet_above", "greet_below"),
    ] {
        let (above_rows, below_rows) = (named(above), named(below));
        assert_eq!(above_rows.len(), 2, "{above}: {above_rows:#?}");
        assert_eq!(below_rows.len(), 2, "{below}: {below_rows:#?}");
        let outcomes: Vec<_> = above_rows.iter().map(|r| r.record_str("outcome")).collect();
        assert_eq!(outcomes, ["ok", "error"], "{above}");
        assert_eq!(
            above_rows.iter().map(comparable).collect::<Vec<_>>(),
            below_rows.iter().map(comparable).collect::<Vec<_>>(),
            "{above} and {below} record the same"
        );
    }
    assert_eq!(
        named("echo_below")[1].record_str("error"),
        "refused to echo fail"
    );
    // A tool error result is an error, its text the error; the context names the client.
    for name in ["result_above", "result_below"] {
        let failed = &named(name)[1];
        assert_eq!(failed.record_str("error"), "refused to echo fail", "{name}");
        assert_eq!(failed.level, "error", "{name}");
        assert_eq!(failed.record_str("client_name"), "stacking-test", "{name}");
        assert_eq!(failed.record_str("client_version"), "1.0.0", "{name}");
    }
    let renamed = named("renamed-echo");
    assert_eq!(renamed.len(), 2, "{renamed:?}");
    assert_eq!(renamed[0].record_str("funcName"), "renamed");
    // A handler without a context cannot know its client.
    assert_eq!(named("echo_above")[0].record_str("client_name"), "");
    // Err(ErrorData) from a prompt: an error, with the error's text.
    let refused = &named("greet_below")[1];
    assert!(
        refused.record_str("error").contains("a name is required"),
        "{refused:?}"
    );
    // The async tools sleep 5 ms: timed while the boxed future runs, in both orders.
    for name in ["echo_above", "echo_below"] {
        for row in named(name) {
            assert!(row.duration_ms().unwrap() >= 5.0, "{name}: {row:?}");
        }
    }

    let read = named("mem://a");
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].record_str("kind"), "resource");
    assert_eq!(read[0].record_str("funcName"), "read_resource");
    assert_eq!(read[0].record_str("outcome"), "ok");
    assert_eq!(named("disk://b")[0].record_str("outcome"), "error");
    assert_eq!(
        rows.len(),
        20,
        "one event per call (14 tool, 4 prompt, 2 resource calls), nothing else"
    );

    mcp_analytics::shutdown(Duration::from_secs(3)).unwrap();
}
