//! The MCP server the rmcp examples serve: five tools, two prompts and two resources. The
//! examples wrap it with `mcp_analytics::rmcp::instrument!`, which records every request; the
//! attributes here add what only the handler knows, in the same rows (one row per call):
//!
//! - Tools: `#[mcp_tool]` on `call_tool` (its outcome read off the return type).
//! - Prompts: `#[mcp_prompt]` stacked with rmcp's `#[prompt]`, above on one and below on the
//!   other: both record the same.
//! - Resources: `#[mcp_resource]` on `read_resource`.

use std::time::Duration;

use mcp_analytics::{mcp_prompt, mcp_resource, mcp_tool};
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, GetPromptResult,
    Implementation, ListResourcesResult, PaginatedRequestParams, PromptMessage,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
    ResourceContents, Role, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{
    ErrorData, RoleServer, ServerHandler, prompt, prompt_handler, prompt_router, schemars, tool,
    tool_handler, tool_router,
};
use serde::Deserialize;

#[derive(Deserialize, schemars::JsonSchema)]
pub struct TwoNumbers {
    a: i64,
    b: i64,
}

/// Strict: an argument it does not declare fails the call, so a `lookup` that succeeds shows
/// that what the wrapper's agent-facing options add to the arguments never reaches the server.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Key {
    key: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Echo {
    text: String,
    delay_ms: u64,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Name {
    name: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Topic {
    topic: String,
}

/// The server; rmcp builds one per session.
#[derive(Clone, Default)]
pub struct Demo;

#[tool_router]
impl Demo {
    #[tool(description = "Add two integers")]
    fn add(&self, Parameters(TwoNumbers { a, b }): Parameters<TwoNumbers>) -> String {
        a.saturating_add(b).to_string()
    }

    #[tool(description = "Divide two integers; dividing by zero is a tool error")]
    fn divide(&self, Parameters(TwoNumbers { a, b }): Parameters<TwoNumbers>) -> CallToolResult {
        match a.checked_div(b) {
            Some(quotient) => {
                CallToolResult::success(vec![ContentBlock::text(quotient.to_string())])
            }
            None => CallToolResult::error(vec![ContentBlock::text("division by zero")]),
        }
    }

    #[tool(description = "Describe a programming language: rust or python")]
    async fn lookup(&self, Parameters(Key { key }): Parameters<Key>) -> Result<String, ErrorData> {
        match key.as_str() {
            "rust" => Ok("A language empowering everyone to build reliable software.".into()),
            "python" => Ok("A language that lets you work quickly.".into()),
            _ => Err(ErrorData::invalid_params(
                format!("unknown key: {key}"),
                None,
            )),
        }
    }

    #[tool(description = "Echo the text after a delay")]
    async fn slow_echo(&self, Parameters(Echo { text, delay_ms }): Parameters<Echo>) -> String {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        text
    }

    #[tool(description = "Panic, to show what analytics records")]
    fn crash(&self) -> String {
        panic!("the crash tool panics on purpose")
    }
}

fn user_message(text: String) -> GetPromptResult {
    GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
}

#[prompt_router]
impl Demo {
    #[mcp_prompt]
    #[prompt(description = "Greet someone by name")]
    async fn greet(
        &self,
        Parameters(Name { name }): Parameters<Name>,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResult, ErrorData> {
        if name.trim().is_empty() {
            return Err(ErrorData::invalid_params("a name is required", None));
        }
        Ok(user_message(format!("Say hello to {name}.")))
    }

    #[prompt(description = "Summarize a topic")]
    #[mcp_prompt]
    async fn summarize(
        &self,
        Parameters(Topic { topic }): Parameters<Topic>,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResult, ErrorData> {
        Ok(user_message(format!(
            "Summarize {topic} in three sentences."
        )))
    }
}

const RESOURCES: [(&str, &str); 2] = [
    ("mem://readme", "This server demonstrates mcp-analytics."),
    ("mem://config", "analytics = true"),
];

#[tool_handler]
#[prompt_handler]
impl ServerHandler for Demo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
        ))
    }

    #[mcp_tool]
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        Self::tool_router()
            .call(ToolCallContext::new(self, request, context))
            .await
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(
            RESOURCES
                .iter()
                .map(|(uri, _)| Resource::new(*uri, uri.trim_start_matches("mem://")))
                .collect(),
        ))
    }

    #[mcp_resource]
    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let (uri, text) = RESOURCES
            .iter()
            .find(|(uri, _)| *uri == request.uri)
            .ok_or_else(|| {
                ErrorData::resource_not_found(format!("no resource {}", request.uri), None)
            })?;
        Ok(ReadResourceResult::new(vec![ResourceContents::text(*text, *uri)]).into())
    }
}

/// `server` with every agent-facing option on when `MCP_ANALYTICS_AGENT_OPTIONS=1` (the e2e
/// tests' switch): they change what the server advertises, so they are off unless asked.
pub fn agent_options_from_env<S>(
    server: mcp_analytics::rmcp::Instrumented<S>,
) -> mcp_analytics::rmcp::Instrumented<S> {
    if std::env::var("MCP_ANALYTICS_AGENT_OPTIONS").is_ok_and(|value| value == "1") {
        server
            .intent_argument(true)
            .conversations(true)
            .missing_capability_tool("get_more_tools")
    } else {
        server
    }
}
