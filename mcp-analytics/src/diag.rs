//! The crate's own diagnostics.
//!
//! They go to stderr, never stdout (stdout is the MCP stdio transport), never through `log` or
//! `tracing` (which may route back into this crate), and a failed write to stderr is ignored:
//! `eprintln!` would panic in the user's process instead.

use std::fmt;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

/// Writes one diagnostic line to stderr.
pub(crate) fn report(message: fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "mcp-analytics: {message}");
}

/// `error` and each of its causes, on one line: `cannot read .env: Is a directory (os error 21)`.
pub(crate) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

/// A diagnostic said at most once per process, however often its cause recurs.
pub(crate) struct Once(AtomicBool);

impl Once {
    pub(crate) const fn new() -> Self {
        Self(AtomicBool::new(false))
    }

    pub(crate) fn report(&self, message: fmt::Arguments<'_>) {
        // A relaxed load first keeps the already-said case free of read-modify-write traffic.
        if !self.0.load(Ordering::Relaxed) && !self.0.swap(true, Ordering::Relaxed) {
            report(message);
        }
    }
}
