//! The cost of a `tools/call` through rmcp's server side, recorded four ways: not at all
//! (baseline), with `#[mcp_tool]` on `call_tool` (taking the request's context), with the server
//! wrapper `mcp_analytics::rmcp::instrument!`, and with both (the attribute joins the wrapper's
//! row). One thread; each call builds its request and context, routes through rmcp's tool router
//! and converts the tool's answer, as rmcp does for every request.
//!
//! Run: `cargo bench --bench rmcp_server` (or `cargo xtask bench`). A request costs a few
//! microseconds and allocates often, so its medians move by hundreds of nanoseconds from run to
//! run on a shared machine: `benches/rmcp_instructions.sh` counts each subject's instructions per
//! request with callgrind instead, which repeats.
//!
//! The `ServerHandler::call_tool` future is polled to completion without a runtime, like the hot
//! path's async subjects; the queue is emptied untimed between runs (see `hot_path`). The
//! context's peer comes from a real handshake over an in-process pipe, made once, untimed.

mod common;

use std::sync::LazyLock;
use std::time::Duration;

use common::{Plain, Recorded, Timed, poll_ready};
use criterion::{Criterion, criterion_group, criterion_main};
use mcp_analytics::mcp_tool;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientCapabilities, ClientConfig, Implementation,
    NumberOrString, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{
    ErrorData, Peer, RoleServer, ServerHandler, ServiceExt, tool, tool_handler, tool_router,
};

/// A server with one trivial tool, recorded by nothing of its own.
#[derive(Clone)]
struct Bare;

#[tool_router]
impl Bare {
    #[tool(description = "Answers at once")]
    fn ping(&self) -> String {
        String::new()
    }
}

#[tool_handler]
impl ServerHandler for Bare {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// The same server with `#[mcp_tool]` on its hand-written `call_tool`.
#[derive(Clone)]
struct Attributed;

#[tool_router]
impl Attributed {
    #[tool(description = "Answers at once")]
    fn ping(&self) -> String {
        String::new()
    }
}

#[tool_handler]
impl ServerHandler for Attributed {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
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
}

/// A server-side peer whose client completed the 2025-11-25 handshake: what the context of a
/// request on a stdio connection holds. Its runtime and services live as long as the process.
fn peer() -> Peer<RoleServer> {
    static PEER: LazyLock<Peer<RoleServer>> = LazyLock::new(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let peer = runtime.block_on(async {
            let (server_io, client_io) = tokio::io::duplex(64 * 1024);
            let server = tokio::spawn(async move { Bare.serve(server_io).await });
            let config = ClientConfig::new(
                ClientCapabilities::default(),
                Implementation::new("bench-client", "1.0.0"),
            );
            let client = config.serve(client_io).await.expect("the client connects");
            let server = server.await.unwrap().expect("the server starts");
            let peer = server.peer().clone();
            std::mem::forget((client, server));
            peer
        });
        std::mem::forget(runtime);
        peer
    });
    PEER.clone()
}

/// One `tools/call` of `ping` on `server`, polled to completion. Never inlined, so that a
/// profiler (`valgrind --tool=callgrind`) counts each subject's instructions per call.
#[inline(never)]
fn call(server: &impl ServerHandler, i: u64, peer: &Peer<RoleServer>) -> u64 {
    let id = NumberOrString::Number(i64::try_from(i).unwrap_or_default());
    let context = RequestContext::new(id, peer.clone());
    let future = server.call_tool(CallToolRequestParams::new("ping"), context);
    match poll_ready(future) {
        Ok(CallToolResponse::Complete(result)) => u64::from(result.is_error == Some(true)),
        _ => unreachable!("ping answers"),
    }
}

fn bench(c: &mut Criterion) {
    let peer = peer();
    let bare = Bare;
    let attributed = Attributed;
    let wrapped = mcp_analytics::rmcp::instrument!(Bare);
    let both = mcp_analytics::rmcp::instrument!(Attributed);
    let mut group = c.benchmark_group("rmcp");
    let subjects: [(&str, &dyn Timed); 4] = [
        ("tools_call/baseline", &Plain(|i| call(&bare, i, &peer))),
        (
            "tools_call/mcp_tool",
            &Recorded(|i| call(&attributed, i, &peer)),
        ),
        (
            "tools_call/wrapper",
            &Recorded(|i| call(&wrapped, i, &peer)),
        ),
        (
            "tools_call/wrapper_and_mcp_tool",
            &Recorded(|i| call(&both, i, &peer)),
        ),
    ];
    for (name, subject) in subjects {
        group.bench_function(name, |b| b.iter_custom(|iters| subject.one_thread(iters)));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
