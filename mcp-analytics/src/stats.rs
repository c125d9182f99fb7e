//! Counters of what happened to recorded events, readable at any time through [`crate::stats`].

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of the pipeline's counters since the process started.
///
/// Every event recorded is either `enqueued` or `dropped`; every enqueued event ends up `sent`,
/// `failed`, or still on its way. `sent` includes rows the service `quarantined`.
///
/// ```
/// let stats = mcp_analytics::stats();
/// assert!(stats.sent <= stats.enqueued);
/// assert!(stats.queued <= stats.enqueued);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Events accepted into the queue: sent, in flight, or waiting.
    pub enqueued: u64,
    /// Events waiting in the queue now, not yet taken by the worker: the backlog. Close to the
    /// queue's capacity, new events are about to be dropped.
    pub queued: u64,
    /// Events the Events API acknowledged.
    pub sent: u64,
    /// Events not accepted: the queue was full, analytics was disabled, or it was shut down.
    pub dropped: u64,
    /// Of `dropped`, the log lines of the `tracing` layer dropped because log lines already
    /// held their share of the queue (half), which keeps the other half for handler calls.
    pub dropped_log_lines: u64,
    /// Events given up on: a non-retryable answer, every attempt used, or the shutdown deadline.
    /// If an earlier attempt of theirs ended without an answer (a timeout), the service may
    /// have stored them all the same.
    pub failed: u64,
    /// Requests sent again after a retryable failure.
    pub retried: u64,
    /// Requests the Events API acknowledged.
    pub batches: u64,
    /// Acknowledged rows that the service put in the datasource's quarantine (schema mismatch).
    pub quarantined: u64,
    /// Events delivered by a retry after an attempt whose result could not be known (it timed
    /// out or lost its connection after the request was sent): the service may hold them twice.
    /// An upper bound: the unanswered attempt often stored nothing. Every other event is
    /// delivered at most once.
    pub maybe_duplicated: u64,
}

/// The live counters behind [`Stats`]. `enqueued` is derived (taken by the worker plus still
/// queued) so that the handler's hot path increments nothing.
pub(crate) struct Counters {
    pub(crate) taken: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) dropped_log_lines: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) quarantined: AtomicU64,
    pub(crate) maybe_duplicated: AtomicU64,
}

pub(crate) static COUNTERS: Counters = Counters {
    taken: AtomicU64::new(0),
    sent: AtomicU64::new(0),
    dropped: AtomicU64::new(0),
    dropped_log_lines: AtomicU64::new(0),
    failed: AtomicU64::new(0),
    retried: AtomicU64::new(0),
    batches: AtomicU64::new(0),
    quarantined: AtomicU64::new(0),
    maybe_duplicated: AtomicU64::new(0),
};

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Relaxed);
    }

    pub(crate) fn snapshot(&self, queued: usize) -> Stats {
        Stats {
            enqueued: self.taken.load(Relaxed) + queued as u64,
            queued: queued as u64,
            sent: self.sent.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            dropped_log_lines: self.dropped_log_lines.load(Relaxed),
            failed: self.failed.load(Relaxed),
            retried: self.retried.load(Relaxed),
            batches: self.batches.load(Relaxed),
            quarantined: self.quarantined.load(Relaxed),
            maybe_duplicated: self.maybe_duplicated.load(Relaxed),
        }
    }
}
