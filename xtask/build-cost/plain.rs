//! A minimal rmcp stdio server, nothing recorded.

mod server;

use rmcp::ServiceExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = server::Adder.serve(rmcp::transport::stdio()).await?;
    server.waiting().await?;
    Ok(())
}
