//! The cost of a `tools/call` through rmcp's server side, recorded three ways, each against the
//! same request unrecorded: with `#[mcp_tool]` on `call_tool` (taking the request's context),
//! with the server wrapper `mcp_analytics::rmcp::instrument!`, and with both (the attribute joins
//! the wrapper's row). One thread; each call builds its request and context, routes through
//! rmcp's tool router and converts the tool's answer, as rmcp does for every request.
//!
//! Run: `cargo bench --bench rmcp_server` (about 30 seconds; or `cargo xtask bench`). Writes
//! `rmcp_server.json` where `MCP_ANALYTICS_BENCH_OUT` says.
//!
//! Measured as `hot_path_live` measures a call (see `common::live`): the worker live and
//! shipping to a loopback Events API, rounds of 500 requests each paired with a round of the
//! unrecorded request, the subjects taking turns, a round starting at most every 2 ms. The added
//! ns per request is the median over rounds of the difference. The sync `#[mcp_tool]` function of
//! `hot_path_live` is measured the same way in the same run, so that the wrapper's added cost is
//! compared with a plain call's in one process.
//!
//! A request costs a few microseconds and allocates often, so its figures move by hundreds of
//! nanoseconds from run to run on a shared machine: `benches/rmcp_instructions.sh` counts each
//! subject's instructions per request with callgrind instead, which repeats; it runs this
//! benchmark as `rmcp_server --profile <subject> <seconds>`, which only makes that subject's
//! calls for that long, without a worker.
//!
//! The `ServerHandler::call_tool` future is polled to completion without a runtime, like the hot
//! path's async subjects. The context's peer comes from a real handshake over an in-process
//! pipe, made once, untimed.

mod common;
#[path = "common/subjects.rs"]
mod subjects;

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use common::live::{Live, Pair, Paired, interleaved};
use common::{Plain, Recorded, Subject, poll_ready};
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

/// Measured rounds per subject; the figures are taken over these.
const ROUNDS: usize = 1_500;
/// Rounds per subject run first and left out.
const WARM_UP: usize = 50;

/// Calls `subject` for `seconds`, untimed: what `benches/rmcp_instructions.sh` profiles. No
/// worker runs (under callgrind it would take turns with the calls); the queue is emptied every
/// 100 calls instead, so that every call takes the enqueue path.
fn profile(subject: &impl Subject, seconds: f64) {
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let mut i = 0;
    while Instant::now() < until {
        let _run = subject.start_run();
        for _ in 0..100 {
            std::hint::black_box(subject.call(i));
            i += 1;
        }
    }
}

fn main() {
    let peer = peer();
    let bare = Bare;
    let attributed = Attributed;
    let wrapped = mcp_analytics::rmcp::instrument!(Bare);
    let both = mcp_analytics::rmcp::instrument!(Attributed);
    let baseline = || Plain(|i| call(&bare, i, &peer));
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|arg| arg == "--profile") {
        let seconds: f64 = args[at + 2].parse().expect("--profile <subject> <seconds>");
        match args[at + 1].as_str() {
            "baseline" => profile(&baseline(), seconds),
            "mcp_tool" => profile(&Recorded(|i| call(&attributed, i, &peer)), seconds),
            "wrapper" => profile(&Recorded(|i| call(&wrapped, i, &peer)), seconds),
            "wrapper_and_mcp_tool" => profile(&Recorded(|i| call(&both, i, &peer)), seconds),
            other => panic!("no subject {other}"),
        }
        return;
    }

    let live = Live::start();

    let subjects: [(&str, &dyn Paired); 4] = [
        (
            "mcp_tool",
            &Pair(Plain(|i| call(&attributed, i, &peer)), baseline()),
        ),
        (
            "wrapper",
            &Pair(Plain(|i| call(&wrapped, i, &peer)), baseline()),
        ),
        (
            "wrapper_and_mcp_tool",
            &Pair(Plain(|i| call(&both, i, &peer)), baseline()),
        ),
        (
            "sync_call",
            &Pair(
                Plain(|i| subjects::mcp_tool_sync(i, 7)),
                Plain(|i| subjects::baseline(i, 7)),
            ),
        ),
    ];
    // A wrapped server's first request records a row of its own besides the call's (once per
    // server): made here, untimed, so that the count below is of the rounds' calls only.
    call(&wrapped, 0, &peer);
    call(&both, 0, &peer);
    let before = live.settle();
    let paired: Vec<&dyn Paired> = subjects.iter().map(|(_, subject)| *subject).collect();
    let figures = interleaved(&paired, ROUNDS, WARM_UP);
    let after = live.settle();

    // Each subject's requests recorded one event each: three subjects and the plain call.
    let calls = ((ROUNDS + WARM_UP) as u64) * common::live::ROUND;
    assert_eq!(
        after.enqueued + after.dropped - before.enqueued - before.dropped,
        4 * calls,
        "every recorded request was enqueued or dropped"
    );
    let results: serde_json::Map<String, serde_json::Value> = subjects
        .iter()
        .zip(&figures)
        .map(|((name, _), rounds)| ((*name).to_owned(), rounds.summary()))
        .collect();
    common::report(
        "rmcp_server",
        &serde_json::json!({
            "round_calls": common::live::ROUND,
            "rounds": ROUNDS,
            "dropped": after.dropped - before.dropped,
            "subjects": results,
        }),
    );
}
