//! The same server, its requests recorded by posthog-rs's `mcp` feature (as its docs say).

mod server;

use std::sync::Arc;

use rmcp::ServiceExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let api_key = std::env::var("POSTHOG_API_KEY")?;
    let posthog = Arc::new(posthog_rs::client(api_key.as_str()).await);
    let server = posthog_rs::mcp::instrument(server::Adder, posthog.clone())
        .serve(rmcp::transport::stdio())
        .await?;
    server.waiting().await?;
    posthog.shutdown().await;
    Ok(())
}
