//! An rmcp server over stdio, every request recorded by mcp-analytics: one line wraps the server
//! (`mcp_analytics::rmcp::instrument!`).
//!
//! ```text
//! cargo run -p mcp-analytics-receiver -- 7181 &   # or your Tinybird workspace
//! TB_API_URL=http://127.0.0.1:7181 TB_WRITE_TOKEN=test-token \
//!     npx @modelcontextprotocol/inspector cargo run --example rmcp_stdio
//! ```
//!
//! A stdio server is one MCP session: its events share one session id. Nothing but protocol
//! messages goes to stdout. When the client closes stdin the server returns from `main`, and
//! dropping the analytics guard delivers what is queued.
//!
//! With `MCP_ANALYTICS_AGENT_OPTIONS=1`, the wrapper's agent-facing options are on (all off
//! otherwise, as by default): every tool asks the agent why it is called (`context`, recorded as
//! `intent`) and takes a `conversation_id` (handed out with the first result, recorded as
//! `conversation`), and one more tool, `get_more_tools`, takes reports of what is missing.

mod demo_server;

use rmcp::ServiceExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _analytics = mcp_analytics::init();
    let server = mcp_analytics::rmcp::instrument!(demo_server::Demo);
    let server = demo_server::agent_options_from_env(server)
        .serve(rmcp::transport::stdio())
        .await?;
    server.waiting().await?;
    Ok(())
}
