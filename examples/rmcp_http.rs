//! An rmcp server over streamable HTTP on 127.0.0.1, every request recorded by mcp-analytics
//! (`mcp_analytics::rmcp::instrument!`) with the session id of its HTTP session.
//!
//! ```text
//! TB_API_URL=http://127.0.0.1:7181 TB_WRITE_TOKEN=test-token cargo run --example rmcp_http -- 8080
//! ```
//!
//! Serves `http://127.0.0.1:PORT/mcp` until SIGINT or SIGTERM, then stops accepting, closes the
//! sessions, and delivers the queued events before exiting. With `--stateless` it keeps no
//! sessions (rmcp's `legacy_session_mode` off): every request is served on its own, whatever the
//! protocol version; 2026-07-28 requests are served that way in either mode. Such requests carry
//! no session (the `session` column is empty), and their client is what each request says in
//! its `_meta`.
//!
//! With `MCP_ANALYTICS_AGENT_OPTIONS=1`, the wrapper's agent-facing options are on (all off
//! otherwise, as by default): every tool asks the agent why it is called (`context`, recorded as
//! `intent`) and takes a `conversation_id` (handed out with the first result, recorded as
//! `conversation`, and, on requests without a session, as their `session`), and one more tool,
//! `get_more_tools`, takes reports of what is missing.

mod demo_server;

use std::sync::Arc;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (port, stateless): (u16, bool) = match args.as_slice() {
        [port] => (port.parse().unwrap_or_else(|_| usage()), false),
        [port, flag] if flag == "--stateless" => (port.parse().unwrap_or_else(|_| usage()), true),
        _ => usage(),
    };
    let _analytics = mcp_analytics::init();

    let stop = CancellationToken::new();
    let mcp = StreamableHttpService::new(
        // rmcp makes one server per session (per request when stateless): wrap each.
        move || {
            let server = mcp_analytics::rmcp::instrument!(demo_server::Demo);
            Ok(demo_server::agent_options_from_env(server))
        },
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default()
            .with_legacy_session_mode(!stateless)
            .with_cancellation_token(stop.child_token()),
    );
    let app = axum::Router::new().nest_service("/mcp", mcp);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!("listening on http://127.0.0.1:{port}/mcp");

    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_requested().await;
            stop.cancel();
        })
        .await?;
    // Explicit, so that a failure to deliver is reported before the process exits.
    if let Err(error) = mcp_analytics::shutdown(std::time::Duration::from_secs(3)) {
        eprintln!("analytics: {error}");
    }
    Ok(())
}

fn usage() -> ! {
    eprintln!("usage: rmcp_http PORT [--stateless]");
    std::process::exit(2);
}

/// SIGINT (Ctrl-C) or SIGTERM (what process managers send).
async fn shutdown_requested() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("a SIGTERM handler can be installed");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
