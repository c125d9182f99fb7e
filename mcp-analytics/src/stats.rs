//! What happened to recorded rows: the counters behind [`crate::stats`], and the ledger through
//! which every delivery outcome is counted, in one place.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

use crossbeam_utils::CachePadded;

/// A snapshot of the pipeline's counters since the process started.
///
/// Every event recorded is either `enqueued` or `dropped`; every enqueued event ends up `sent`,
/// `failed`, `filtered`, `spooled` (on disk, for a later delivery), or still on its way. `sent`
/// includes rows the service `quarantined`. `replayed` and `discarded` count spooled events,
/// whichever process spooled them.
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
    /// Events given up on: a non-retryable answer; or every attempt used, or the shutdown
    /// deadline, when the spool could not keep them (turned off, or the disk refused). If an
    /// earlier attempt of theirs ended without an answer (a timeout), the service may have
    /// stored them all the same.
    pub failed: u64,
    /// Requests sent again after a retryable failure.
    pub retried: u64,
    /// Requests the Events API acknowledged.
    pub batches: u64,
    /// Acknowledged rows that the service put in the datasource's quarantine (schema mismatch).
    pub quarantined: u64,
    /// Events a [`before_send`](crate::Builder::before_send) hook dropped (or panicked on): not
    /// sent, on purpose.
    pub filtered: u64,
    /// Events delivered by a retry after an attempt whose result could not be known (it timed
    /// out or lost its connection after the request was sent): the service may hold them twice.
    /// An upper bound: the unanswered attempt often stored nothing. Every other event is
    /// delivered at most once. Spooled events count here too when a process that was sending
    /// them died before the answer, or an unanswered attempt preceded their spooling.
    pub maybe_duplicated: u64,
    /// Events written to the disk spool because they could not be delivered now: the service
    /// was unreachable or asked to wait, the queue was about to overflow during an outage, or
    /// the process was exiting. A later delivery counts them in `replayed`.
    pub spooled: u64,
    /// Spooled events this process delivered, from its own spool files or from those of an
    /// earlier run or another copy of the server.
    pub replayed: u64,
    /// Spooled events this process deleted undelivered: the oldest, to keep the spool within
    /// its budget, and those of files that could not be read back (set aside on disk) or that
    /// the service refused.
    pub discarded: u64,
}

/// One live counter.
pub(crate) struct Counter(AtomicU64);

impl Counter {
    const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    pub(crate) fn add(&self, n: usize) {
        self.0.fetch_add(n as u64, Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// The live counters behind [`Stats`]. `enqueued` is derived (taken by the worker plus still
/// queued) so that the handler's hot path increments nothing. What deliveries settle
/// (`sent`, `failed`, ...) is written through the [`LEDGER`] only.
pub(crate) struct Counters {
    pub(crate) taken: Counter,
    pub(crate) dropped: Counter,
    pub(crate) dropped_log_lines: Counter,
    pub(crate) retried: Counter,
    pub(crate) filtered: Counter,
    sent: Counter,
    failed: Counter,
    batches: Counter,
    quarantined: Counter,
    maybe_duplicated: Counter,
    spooled: Counter,
    pub(crate) replayed: Counter,
    pub(crate) discarded: Counter,
}

/// Padded: the worker writes these for every row it takes, and a static on the same cache
/// line that a handler reads (the queue, the clock) would cost the handler a miss each time.
pub(crate) static COUNTERS: CachePadded<Counters> = CachePadded::new(Counters {
    taken: Counter::new(),
    dropped: Counter::new(),
    dropped_log_lines: Counter::new(),
    retried: Counter::new(),
    filtered: Counter::new(),
    sent: Counter::new(),
    failed: Counter::new(),
    batches: Counter::new(),
    quarantined: Counter::new(),
    maybe_duplicated: Counter::new(),
    spooled: Counter::new(),
    replayed: Counter::new(),
    discarded: Counter::new(),
});

/// Readings of the queue's length at most, in [`Counters::snapshot`], before the last one is
/// taken as it is.
const SNAPSHOT_READS: usize = 16;

impl Counters {
    /// The counters now, with `queued()` the queue's length. `enqueued` is taken + queued, two
    /// readings between which the worker may take events from the queue (reading the queue's
    /// length waits for the ring the worker is draining): they are read again until no event
    /// was taken in between, so that none counts twice or not at all, a few times at most (a
    /// worker that never pauses gets the last reading).
    pub(crate) fn snapshot(&self, queued: impl Fn() -> usize) -> Stats {
        let mut taken = self.taken.get();
        let mut queued_now = queued();
        for _ in 1..SNAPSHOT_READS {
            let again = self.taken.get();
            if again == taken {
                break;
            }
            taken = again;
            queued_now = queued();
        }
        Stats {
            enqueued: taken + queued_now as u64,
            queued: queued_now as u64,
            sent: self.sent.get(),
            dropped: self.dropped.get(),
            dropped_log_lines: self.dropped_log_lines.get(),
            failed: self.failed.get(),
            retried: self.retried.get(),
            batches: self.batches.get(),
            quarantined: self.quarantined.get(),
            maybe_duplicated: self.maybe_duplicated.get(),
            filtered: self.filtered.get(),
            spooled: self.spooled.get(),
            replayed: self.replayed.get(),
            discarded: self.discarded.get(),
        }
    }

    /// Counts what became of a spooled file's rows sent again: they are not the rows of this
    /// worker's generation (any process may have spooled them), so they bypass the ledger.
    pub(crate) fn settle_replayed(&self, settled: Settled) {
        self.replayed.add(settled.sent);
        self.batches.add(settled.batches);
        self.quarantined.0.fetch_add(settled.quarantined, Relaxed);
        self.maybe_duplicated.add(settled.maybe_duplicated);
        // Refused for good: the file is gone.
        self.discarded.add(settled.failed);
    }

    /// Events recorded and neither delivered, given up on, filtered nor spooled.
    pub(crate) fn undelivered(&self, queued: usize) -> u64 {
        self.in_flight() + queued as u64
    }

    /// Taken from the queue and not settled yet: in batches, in flight.
    fn in_flight(&self) -> u64 {
        self.taken.get().saturating_sub(
            self.sent.get() + self.failed.get() + self.filtered.get() + self.spooled.get(),
        )
    }
}

/// What became of rows a worker took: the report of one delivery, or of rows a shutdown
/// deadline left unsent.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settled {
    /// Rows acknowledged by the destination.
    pub(crate) sent: usize,
    /// Requests acknowledged.
    pub(crate) batches: usize,
    /// Of `sent`, rows the destination quarantined.
    pub(crate) quarantined: u64,
    /// Of `sent`, rows delivered after an attempt whose fate is unknown.
    pub(crate) maybe_duplicated: usize,
    /// Rows given up on: refused, out of attempts, or cut off by the shutdown deadline.
    pub(crate) failed: usize,
    /// Of `failed`, the rows the shutdown deadline cut off.
    pub(crate) abandoned: usize,
    /// Rows written to the disk spool.
    pub(crate) spooled: usize,
}

impl std::ops::AddAssign for Settled {
    fn add_assign(&mut self, other: Self) {
        self.sent += other.sent;
        self.batches += other.batches;
        self.quarantined += other.quarantined;
        self.maybe_duplicated += other.maybe_duplicated;
        self.failed += other.failed;
        self.abandoned += other.abandoned;
        self.spooled += other.spooled;
    }
}

/// The one place where deliveries are counted. Shutting down closes the books of the worker's
/// generation: what is still unsettled is counted as failed, and whatever that worker reports
/// later is ignored, so that what `shutdown()` returns and what `stats()` says agree from the
/// moment it returns, whether or not the worker answered in time.
pub(crate) struct Ledger(Mutex<Books>);

struct Books {
    /// Generations up to this one are closed.
    closed: u64,
    /// Rows the shutdown deadline cut off, settled since the books were last closed.
    abandoned: u64,
}

/// Padded, as [`COUNTERS`].
pub(crate) static LEDGER: CachePadded<Ledger> = CachePadded::new(Ledger(Mutex::new(Books {
    closed: 0,
    abandoned: 0,
})));

impl Ledger {
    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        // The books are consistent between any two statements: a panic cannot tear them.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts what became of rows taken by the worker of `generation`, unless its books are
    /// closed; returns whether they were counted.
    pub(crate) fn settle(&self, generation: u64, settled: Settled) -> bool {
        let mut books = self.books();
        if generation <= books.closed {
            return false;
        }
        books.abandoned += settled.abandoned as u64;
        COUNTERS.sent.add(settled.sent);
        COUNTERS.batches.add(settled.batches);
        COUNTERS
            .quarantined
            .0
            .fetch_add(settled.quarantined, Relaxed);
        COUNTERS.maybe_duplicated.add(settled.maybe_duplicated);
        COUNTERS.failed.add(settled.failed);
        COUNTERS.spooled.add(settled.spooled);
        true
    }

    /// Closes the books of `generation` and every earlier one: `take_queued` takes what the
    /// shutdown gives up from the queue (each row counted as taken), then every row taken and
    /// not settled is counted as failed. Returns how many rows the shutdown gave up: those, and
    /// those the worker settled as cut off by the deadline.
    pub(crate) fn close(&self, generation: u64, take_queued: impl FnOnce()) -> u64 {
        let mut books = self.books();
        books.closed = books.closed.max(generation);
        take_queued();
        let unsettled = COUNTERS.in_flight();
        COUNTERS.failed.0.fetch_add(unsettled, Relaxed);
        std::mem::take(&mut books.abandoned) + unsettled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_generation_settles_nothing_more() {
        // The only test in this binary that touches the global counters' settling.
        let before = COUNTERS.snapshot(|| 0);
        COUNTERS.taken.add(10);
        let open = Settled {
            sent: 4,
            batches: 1,
            ..Settled::default()
        };
        assert!(LEDGER.settle(7, open));
        let unsettled = LEDGER.close(7, || COUNTERS.taken.add(2));
        assert_eq!(
            unsettled, 8,
            "6 taken and unsettled, 2 taken from the queue at closing"
        );
        let late = Settled {
            sent: 6,
            ..Settled::default()
        };
        // What a worker settles as cut off by the deadline counts in what closing returns.
        let cut_off = Settled {
            failed: 3,
            abandoned: 3,
            ..Settled::default()
        };
        COUNTERS.taken.add(3);
        assert!(LEDGER.settle(9, cut_off));
        assert_eq!(LEDGER.close(9, || {}), 3, "3 cut off, none unsettled");
        assert!(
            !LEDGER.settle(7, late),
            "the closed generation's report is ignored"
        );
        let after = COUNTERS.snapshot(|| 0);
        assert_eq!(after.sent - before.sent, 4);
        assert_eq!(after.failed - before.failed, 11);
    }
}
