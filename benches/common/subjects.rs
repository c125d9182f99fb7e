//! The hot-path benchmarks' subjects (`hot_path`, without a worker; `hot_path_live`, with it):
//! the same trivial function uninstrumented, with `#[mcp_tool]`, with tracing's `#[instrument]`
//! and with fastrace's `#[trace]`, sync and async. Included by those two benchmarks only
//! (`#[path]`), so that the others do not compile the peers.

// Each benchmark including this uses part of it.
#![allow(dead_code)]

use crate::common::Subject;
use mcp_analytics::mcp_tool;
use tracing::instrument;

/// The work every subject does: trivial, so that the figures are the instrumentation's cost.
#[inline(always)]
fn work(a: u64, b: u64) -> u64 {
    a.wrapping_mul(31).wrapping_add(b)
}

#[inline(never)]
pub fn baseline(a: u64, b: u64) -> u64 {
    work(a, b)
}

#[inline(never)]
pub async fn baseline_async(a: u64, b: u64) -> u64 {
    work(a, b)
}

#[mcp_tool]
#[inline(never)]
pub fn mcp_tool_sync(a: u64, b: u64) -> u64 {
    work(a, b)
}

#[mcp_tool]
#[inline(never)]
pub async fn mcp_tool_async(a: u64, b: u64) -> u64 {
    work(a, b)
}

/// Two fields of its own, a number and a text: the cost of your own dimensions on a call.
#[mcp_tool(fields(seats = a, region = "eu-west-1"))]
#[inline(never)]
pub fn mcp_tool_fields(a: u64, b: u64) -> u64 {
    work(a, b)
}

// `skip_all` spares tracing the recording of arguments, which `#[mcp_tool]` does not do either.
#[instrument(skip_all)]
#[inline(never)]
pub fn tracing_sync(a: u64, b: u64) -> u64 {
    work(a, b)
}

#[instrument(skip_all)]
#[inline(never)]
pub async fn tracing_async(a: u64, b: u64) -> u64 {
    work(a, b)
}

#[fastrace::trace]
#[inline(never)]
pub fn fastrace_sync(a: u64, b: u64) -> u64 {
    work(a, b)
}

#[fastrace::trace]
#[inline(never)]
pub async fn fastrace_async(a: u64, b: u64) -> u64 {
    work(a, b)
}

/// A fastrace reporter that discards what the collector hands it.
pub struct DiscardReporter;

impl fastrace::collector::Reporter for DiscardReporter {
    fn report(&mut self, spans: Vec<fastrace::prelude::SpanRecord>) {
        drop(spans);
    }
}

/// Starts fastrace's collector with the discarding reporter.
pub fn start_fastrace() {
    fastrace::set_reporter(DiscardReporter, fastrace::collector::Config::default());
}

/// A function instrumented with fastrace: each run's calls record under a root span, opened
/// untimed before the run (as a server's request span would be, and as fastrace's own benchmarks
/// do) and ended untimed after it, which hands the run's spans to the collector.
pub struct FastTraced<F> {
    pub call: F,
    /// Whether `fastrace::flush()` runs, untimed, before each run, so that the collector is done
    /// with the previous run's spans before the timed calls start.
    pub flush_first: bool,
}

/// The root span of a run and its local-parent guard, dropped guard first.
pub struct UnderRoot {
    _guard: fastrace::local::LocalParentGuard,
    _root: fastrace::Span,
}

impl<F: Fn(u64) -> u64 + Sync> Subject for FastTraced<F> {
    type Run = UnderRoot;

    fn start_run(&self) -> UnderRoot {
        if self.flush_first {
            fastrace::flush();
        }
        let root = fastrace::Span::root("run", fastrace::prelude::SpanContext::random());
        UnderRoot {
            _guard: root.set_local_parent(),
            _root: root,
        }
    }

    #[inline]
    fn call(&self, i: u64) -> u64 {
        (self.call)(i)
    }
}
