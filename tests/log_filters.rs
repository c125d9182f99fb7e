//! Which log lines the `tracing` layer ships: by default this crate's at `INFO` and every other
//! crate's at `WARN` (an SDK's `INFO` lines are left out, its warnings kept), changed with
//! `with_level`, `with_other_crates` or tracing-subscriber's `Targets`; a bridged `log` record
//! filtered by its own target; a per-layer filter narrowing the layer's own rules; and, through
//! the rmcp server wrapper, rmcp's own lines left out while a tool's line is named after the tool.
//!
//! This test crate is `log_filters`, in the package `mcp-analytics-dev`: both are "this crate".
//! Each test takes its turn on the process-global pipeline, delivering to memory, with the layer
//! as its thread's subscriber ([`shipped`]).

mod common;

use common::MemoryScenario;
use mcp_analytics::mcp_tool;
use mcp_analytics_receiver::Row;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, ServerCapabilities,
    ServerConfig,
};
use rmcp::{ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use tracing::Level;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::Registry;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

/// Runs `f` with `layer` as this thread's subscriber, in a turn of its own on the pipeline, and
/// returns the log lines that arrived.
fn shipped<L>(layer: L, f: impl FnOnce()) -> Vec<Row>
where
    L: tracing_subscriber::Layer<Registry> + Send + Sync + 'static,
{
    let scenario = MemoryScenario::start(|b| b);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
    scenario.flush();
    scenario
        .memory
        .rows()
        .into_iter()
        .filter(|row| row.record_str("kind") == "log")
        .collect()
}

fn messages(rows: &[Row]) -> Vec<&str> {
    rows.iter().map(|row| row.record_str("message")).collect()
}

/// A line of each kind the filters tell apart, each message naming its target and level.
fn log_every_kind() {
    tracing::error!(target: "rmcp::service", "rmcp error");
    tracing::warn!(target: "rmcp::service", "rmcp warn");
    tracing::info!(target: "rmcp::service", "rmcp info");
    tracing::debug!(target: "rmcp::service", "rmcp debug");
    tracing::warn!("own warn");
    tracing::info!("own info");
    tracing::debug!("own debug");
    tracing::trace!("own trace");
}

#[test]
fn by_default_this_crate_ships_at_info_and_other_crates_at_warn() {
    let rows = shipped(mcp_analytics::tracing::layer!(), || {
        log_every_kind();
        tracing::info!(target: "log_filters::tools", "own module info");
        // The package's library names its modules after the package, `-` as `_`.
        tracing::info!(target: "mcp_analytics_dev::tools", "own package info");
        // A crate whose name starts alike is another crate.
        tracing::info!(target: "log_filters_extra", "lookalike info");
        tracing::warn!(target: "log_filters_extra::x", "lookalike warn");
        // A target of its own counts as another crate's.
        tracing::info!(target: "audit", "custom target info");
        // Ours never, whatever the level.
        tracing::error!(target: "mcp_analytics::worker", "ours");
    });
    assert_eq!(
        messages(&rows),
        [
            "rmcp error",
            "rmcp warn",
            "own warn",
            "own info",
            "own module info",
            "own package info",
            "lookalike warn",
        ]
    );
    let rmcp = rows
        .iter()
        .find(|row| row.record_str("message") == "rmcp warn")
        .unwrap();
    assert_eq!(rmcp.record_str("target"), "rmcp::service");
    assert_eq!(
        rmcp.record_str("appName"),
        "mcp-analytics-dev",
        "the layer's"
    );
}

#[test]
fn with_level_sets_this_crates_level_only() {
    let rows = shipped(
        mcp_analytics::tracing::layer!().with_level(Level::DEBUG),
        log_every_kind,
    );
    assert_eq!(
        messages(&rows),
        [
            "rmcp error",
            "rmcp warn",
            "own warn",
            "own info",
            "own debug"
        ]
    );
    let rows = shipped(
        mcp_analytics::tracing::layer!().with_level(Level::WARN),
        log_every_kind,
    );
    assert_eq!(messages(&rows), ["rmcp error", "rmcp warn", "own warn"]);
}

#[test]
fn with_other_crates_sets_every_other_crates_level() {
    let rows = shipped(
        mcp_analytics::tracing::layer!().with_other_crates(Level::INFO),
        log_every_kind,
    );
    assert_eq!(
        messages(&rows),
        [
            "rmcp error",
            "rmcp warn",
            "rmcp info",
            "own warn",
            "own info"
        ]
    );
    let rows = shipped(
        mcp_analytics::tracing::layer!().with_other_crates(LevelFilter::OFF),
        log_every_kind,
    );
    assert_eq!(messages(&rows), ["own warn", "own info"]);
}

#[test]
fn with_targets_replaces_the_defaults_with_tracing_subscribers_rules() {
    let targets: Targets = "log_filters=debug,rmcp=info,hyper=error,warn"
        .parse()
        .unwrap();
    // Called after `with_targets`, `with_level` changes nothing: the rules are the targets'.
    let layer = mcp_analytics::tracing::layer!()
        .with_targets(targets)
        .with_level(Level::TRACE);
    let rows = shipped(layer, || {
        log_every_kind();
        tracing::warn!(target: "hyper::proto", "hyper warn");
        tracing::warn!(target: "tokio", "tokio warn");
        tracing::info!(target: "tokio", "tokio info");
    });
    assert_eq!(
        messages(&rows),
        [
            "rmcp error",
            "rmcp warn",
            "rmcp info",
            "own warn",
            "own info",
            "own debug",
            "tokio warn",
        ]
    );

    // Without a default level, a target no rule names ships nothing, this crate's included.
    let only_rmcp: Targets = "rmcp=info".parse().unwrap();
    let rows = shipped(
        mcp_analytics::tracing::layer!().with_targets(only_rmcp),
        log_every_kind,
    );
    assert_eq!(messages(&rows), ["rmcp error", "rmcp warn", "rmcp info"]);
}

/// Sends a `log` crate record through `tracing-log`'s bridge, to this thread's subscriber (what
/// `LogTracer` does for every record, without installing a process-wide logger).
fn log_record(target: &str, level: log::Level, message: &str) {
    // `format_args!` lives until the end of the statement: the record is used within it.
    tracing_log::format_trace(
        &log::Record::builder()
            .target(target)
            .level(level)
            .args(format_args!("{message}"))
            .build(),
    )
    .unwrap();
}

#[test]
fn a_bridged_log_record_is_filtered_by_its_own_target() {
    let rows = shipped(mcp_analytics::tracing::layer!(), || {
        log_record("rmcp::transport", log::Level::Info, "rmcp info");
        log_record("rmcp::transport", log::Level::Warn, "rmcp warn");
        log_record("log_filters::billing", log::Level::Info, "own info");
        log_record("log_filters::billing", log::Level::Debug, "own debug");
        // `log` is the target `tracing-log` gives every record: no rule sees it.
        log_record("log", log::Level::Info, "log info");
    });
    let lines: Vec<(&str, &str)> = rows
        .iter()
        .map(|row| (row.record_str("message"), row.record_str("target")))
        .collect();
    assert_eq!(
        lines,
        [
            ("rmcp warn", "rmcp::transport"),
            ("own info", "log_filters::billing"),
        ]
    );
    for row in &rows {
        assert!(!row.record.contains_key("fields"), "{}", row.raw);
    }

    // With `with_targets`, the same: the record's target is matched.
    let targets: Targets = "rmcp=info".parse().unwrap();
    let rows = shipped(
        mcp_analytics::tracing::layer!().with_targets(targets),
        || {
            log_record("rmcp::transport", log::Level::Info, "rmcp info");
            log_record("log_filters::billing", log::Level::Warn, "own warn");
        },
    );
    assert_eq!(messages(&rows), ["rmcp info"]);
}

#[test]
fn a_per_layer_filter_narrows_the_layers_own_rules() {
    let filter = || -> Targets { "log_filters=trace,rmcp=trace".parse().unwrap() };
    let every_kind_and_hyper = || {
        log_every_kind();
        tracing::error!(target: "hyper", "hyper error");
    };

    // Both must let a line through: the filter lets this crate's DEBUG lines and rmcp's INFO
    // lines through, the layer's defaults do not; the layer would ship hyper's error, the
    // filter does not.
    let rows = shipped(
        mcp_analytics::tracing::layer!().with_filter(filter()),
        every_kind_and_hyper,
    );
    assert_eq!(
        messages(&rows),
        ["rmcp error", "rmcp warn", "own warn", "own info"]
    );

    // The layer's own rules opened up: the filter decides alone.
    let everything = Targets::new().with_default(LevelFilter::TRACE);
    let rows = shipped(
        mcp_analytics::tracing::layer!()
            .with_targets(everything)
            .with_filter(filter()),
        every_kind_and_hyper,
    );
    assert_eq!(
        messages(&rows),
        [
            "rmcp error",
            "rmcp warn",
            "rmcp info",
            "rmcp debug",
            "own warn",
            "own info",
            "own debug",
            "own trace",
        ]
    );

    // A bridged `log` record meets the per-layer filter by its own target too.
    let rows = shipped(
        mcp_analytics::tracing::layer!().with_filter(filter()),
        || {
            log_record("rmcp::transport", log::Level::Warn, "rmcp warn");
            log_record("hyper", log::Level::Error, "hyper error");
        },
    );
    assert_eq!(messages(&rows), ["rmcp warn"]);
}

/// A server with a tool of each kind, each logging a line.
#[derive(Clone)]
struct Weather;

#[tool_router]
impl Weather {
    #[mcp_tool]
    #[tool(description = "Forecast; instrumented")]
    async fn forecast(&self) -> String {
        tracing::info!("forecasting");
        "sunny".into()
    }

    #[tool(description = "No attribute of ours")]
    fn plain(&self) -> String {
        tracing::info!("answering plainly");
        "plain".into()
    }
}

#[tool_handler]
impl ServerHandler for Weather {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// Serves the wrapped server to rmcp's client over an in-process pipe, on this thread (so the
/// thread's subscriber sees every line both log), and calls each tool once.
fn serve_and_call_each_tool() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(async move {
            mcp_analytics::rmcp::instrument!(Weather)
                .serve(server_io)
                .await
        });
        let config = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("log-filters-client", "1.0.0"),
        );
        let client = config.serve(client_io).await.expect("the client connects");
        for tool in ["forecast", "plain"] {
            client
                .call_tool(CallToolRequestParams::new(tool))
                .await
                .unwrap();
        }
        client.cancel().await.unwrap();
        let server = server.await.unwrap().expect("the server starts");
        let _ = server.waiting().await;
    });
}

#[test]
fn under_rmcp_a_tools_line_names_the_tool_and_rmcps_own_lines_stay_out() {
    let rows = shipped(mcp_analytics::tracing::layer!(), serve_and_call_each_tool);
    let lines: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|row| {
            (
                row.record_str("message"),
                row.record_str("funcName"),
                row.record_str("handler"),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            // The attribute's function, not rmcp's span (`serve_inner`).
            ("forecasting", "forecast", "forecast"),
            // No attribute: the wrapper's view, as on the call's own row.
            ("answering plainly", "call_tool", "plain"),
        ],
        "rmcp's own INFO lines are left out"
    );

    // rmcp does log at INFO here: asked for, its lines ship.
    let rows = shipped(
        mcp_analytics::tracing::layer!().with_other_crates(Level::INFO),
        serve_and_call_each_tool,
    );
    let initialized = rows
        .iter()
        .find(|row| row.record_str("message") == "Service initialized as server")
        .expect("rmcp's INFO line, when other crates ship at INFO");
    assert_eq!(initialized.record_str("target"), "rmcp::service");
}
