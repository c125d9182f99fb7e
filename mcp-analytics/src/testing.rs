//! Test what your server records, without a network: deliver to memory instead of the Events
//! API (feature `testing`), as OpenTelemetry's in-memory exporters do.
//!
//! ```
//! use std::time::Duration;
//! use mcp_analytics::testing::InMemory;
//!
//! #[mcp_analytics::mcp_tool]
//! fn add(a: i64, b: i64) -> i64 {
//!     a + b
//! }
//!
//! let memory = InMemory::new();
//! let _analytics = mcp_analytics::builder().deliver_to(&memory).init();
//! add(1, 2);
//! mcp_analytics::flush(Duration::from_secs(5)).unwrap();
//!
//! let lines = memory.lines();
//! assert_eq!(lines.len(), 1);
//! assert!(lines[0].contains(r#"\"tool\":\"add\""#));
//! ```
//!
//! The lines are exactly the request bodies' NDJSON lines, in the order delivered; the pipeline
//! before them (queue, batching, encoding, flush and shutdown) is the one a server runs.

use crate::config::Builder;
pub use crate::delivery::memory::InMemory;

impl Builder {
    /// Delivers to `memory` instead of the Events API: no token, URL or network needed, and the
    /// environment is not read. For tests (feature `testing`).
    ///
    /// ```
    /// let memory = mcp_analytics::testing::InMemory::new();
    /// let _analytics = mcp_analytics::builder().deliver_to(&memory).init();
    /// ```
    pub fn deliver_to(mut self, memory: &InMemory) -> Self {
        self.memory = Some(memory.clone());
        self
    }
}

/// Empties the queue without delivering what it holds (counted as dropped), and returns how
/// many rows that was: for benchmarks that time calls with room in the queue, and tests that
/// must start from an empty one.
///
/// ```
/// let discarded = mcp_analytics::testing::discard_queued();
/// assert_eq!(mcp_analytics::stats().queued, 0);
/// # let _ = discarded;
/// ```
pub fn discard_queued() -> usize {
    crate::global::discard_queued()
}
