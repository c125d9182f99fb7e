//! The same server, every request recorded by mcp-analytics (as its README says).

mod server;

use rmcp::ServiceExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _analytics = mcp_analytics::init();
    let server = mcp_analytics::rmcp::instrument!(server::Adder)
        .serve(rmcp::transport::stdio())
        .await?;
    server.waiting().await?;
    Ok(())
}
