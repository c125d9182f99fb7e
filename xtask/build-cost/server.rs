//! The server all three builds share: one tool, through rmcp's own macros.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;

#[derive(Deserialize, schemars::JsonSchema)]
pub struct TwoNumbers {
    a: i64,
    b: i64,
}

#[derive(Clone)]
pub struct Adder;

#[tool_router]
impl Adder {
    #[tool(description = "Add two integers")]
    fn add(&self, Parameters(TwoNumbers { a, b }): Parameters<TwoNumbers>) -> String {
        a.saturating_add(b).to_string()
    }
}

#[tool_handler]
impl ServerHandler for Adder {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}
