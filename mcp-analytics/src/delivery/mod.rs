//! Delivery: where closed batches go. The worker hands each batch to a [`Deliver`]
//! implementation and counts what it reports, in one place (`stats::LEDGER`).
//!
//! [`http`] delivers to Tinybird's Events API, with its retry policy ([`retry`]) and its rate
//! limits ([`rate_limit`]); `memory` keeps batches in memory, for tests (`crate::testing`). What
//! a delivery hands back as [`Deferred`] may be delivered later: the worker keeps it in the disk
//! spool (`crate::spool`) when there is one, and counts it as failed when not.

pub(crate) mod connect;
pub(crate) mod http;
#[cfg(feature = "testing")]
pub(crate) mod memory;
pub(crate) mod rate_limit;
pub(crate) mod retry;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::sync::{Notify, watch};
use tokio::time::sleep_until;

use crate::batch::Batch;
use crate::diag;
use crate::stats::Settled;

/// A destination for batches.
pub(crate) trait Deliver: Send + 'static {
    /// Whether batches go out gzip-compressed: the worker then compresses each as it closes,
    /// during the delivery before it.
    fn compresses(&self) -> bool;

    /// Whether the destination answered its last request, as the worker sees it while a
    /// delivery is under way.
    fn health(&self) -> Health;

    /// Delivers `batch` (splitting, retrying and waiting as the destination's rules say) until
    /// it is delivered, refused, deferred, or `deadline` passes, and reports what became of its
    /// rows. Retries are counted as they happen; everything else is counted from the report.
    fn deliver(&mut self, batch: Batch, deadline: &Deadline) -> impl Future<Output = Report>;
}

/// What became of a batch handed to a delivery.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Rows delivered, or refused for good.
    pub(crate) settled: Settled,
    /// What was not delivered but may be later: the whole batch, or what a split left of it.
    pub(crate) deferred: Vec<Deferred>,
}

impl Report {
    /// Whether nothing of the batch was delivered or refused: it is all deferred, as it was.
    pub(crate) fn untouched(&self) -> bool {
        self.settled.sent == 0 && self.settled.failed == 0
    }
}

/// A batch not delivered now, that a later delivery may get through.
#[derive(Debug)]
pub(crate) struct Deferred {
    pub(crate) batch: Batch,
    pub(crate) why: DeferredBecause,
}

/// Why a batch was deferred.
#[derive(Debug)]
pub(crate) enum DeferredBecause {
    /// Every attempt failed with a retryable error, or the service asked to wait too long.
    GaveUp { attempts: u32, last: String },
    /// The shutdown deadline passed.
    Deadline,
}

impl Deferred {
    /// Counts a deferred batch that cannot be kept for later as failed, saying once why.
    pub(crate) fn fail(self) -> Settled {
        let events = self.batch.events;
        match self.why {
            DeferredBecause::GaveUp { attempts, last } => {
                report_dropped(
                    events,
                    format_args!("gave up after {attempts} attempts, the last: {last}"),
                );
                Settled {
                    failed: events,
                    ..Settled::default()
                }
            }
            DeferredBecause::Deadline => Settled {
                failed: events,
                abandoned: events,
                ..Settled::default()
            },
        }
    }
}

/// Says once that a batch was dropped, and why.
pub(crate) fn report_dropped(events: usize, why: fmt::Arguments<'_>) {
    static DROPPED: diag::Once = diag::Once::new();
    DROPPED.report(format_args!(
        "dropped a batch of {events} events: {why} (reported once; see mcp_analytics::stats())"
    ));
}

/// Whether a destination answered its last request: shared between the delivery, which sets
/// it, and the worker, which reads it while the delivery runs.
#[derive(Debug, Clone)]
pub(crate) struct Health(Arc<AtomicBool>);

impl Default for Health {
    fn default() -> Self {
        Self(Arc::new(AtomicBool::new(true)))
    }
}

impl Health {
    pub(crate) fn is_healthy(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn set(&self, healthy: bool) {
        self.0.store(healthy, Ordering::Relaxed);
    }
}

/// The shutdown deadline: unset until `shutdown()` sets it; past it, nothing is sent or retried.
/// Once the worker has secured everything on disk, a failed attempt is not retried either: the
/// rows are safe, the next run sends them, and the process may exit at once.
#[derive(Clone)]
pub(crate) struct Deadline {
    at: watch::Receiver<Option<Instant>>,
    secured: Arc<Secured>,
}

/// Whether everything undelivered is on disk, and the wake-up of those waiting to retry.
#[derive(Default)]
struct Secured {
    done: AtomicBool,
    waiters: Notify,
}

impl Deadline {
    /// A deadline, and the handle that sets it.
    pub(crate) fn new() -> (watch::Sender<Option<Instant>>, Self) {
        let (set, at) = watch::channel(None);
        let secured = Arc::default();
        (set, Self { at, secured })
    }

    /// Says that everything undelivered is on disk: from now on, failed attempts end their
    /// delivery instead of being retried.
    pub(crate) fn mark_secured(&self) {
        self.secured.done.store(true, Ordering::Release);
        self.secured.waiters.notify_waiters();
    }

    /// Whether a failed attempt is to end its delivery rather than be retried.
    pub(crate) fn is_secured(&self) -> bool {
        self.secured.done.load(Ordering::Acquire)
    }

    /// Waits `delay` before a retry; `None` if the deadline passes or everything is secured on
    /// disk meanwhile: the retry is then not to happen.
    pub(crate) async fn wait_to_retry(&self, delay: std::time::Duration) -> Option<()> {
        let secured = self.secured.waiters.notified();
        tokio::pin!(secured);
        // Registered before the flag is read: a `mark_secured` in between still wakes it.
        secured.as_mut().enable();
        if self.is_secured() {
            return None;
        }
        tokio::select! {
            biased;
            () = secured => None,
            waited = self.before(tokio::time::sleep(delay)) => waited,
        }
    }

    pub(crate) fn has_passed(&self) -> bool {
        self.at
            .borrow()
            .is_some_and(|deadline| Instant::now() >= deadline)
    }

    /// Completes once a deadline is set: shutdown has begun.
    pub(crate) async fn set(&self) {
        let mut deadline = self.at.clone();
        if deadline.wait_for(Option::is_some).await.is_err() {
            // The handle is gone, so no deadline will ever be set.
            std::future::pending::<()>().await;
        }
    }

    /// Runs `future` to completion unless the deadline passes first.
    pub(crate) async fn before<F: Future>(&self, future: F) -> Option<F::Output> {
        let mut deadline = self.at.clone();
        tokio::select! {
            output = future => Some(output),
            () = passed(&mut deadline) => None,
        }
    }
}

/// Completes once a deadline is set and has passed; never before.
async fn passed(deadline: &mut watch::Receiver<Option<Instant>>) {
    loop {
        let current = *deadline.borrow_and_update();
        if let Some(at) = current {
            sleep_until(tokio::time::Instant::from_std(at)).await;
            return;
        }
        if deadline.changed().await.is_err() {
            // The handle is gone, so no deadline will ever be set.
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn work_runs_until_the_deadline_once_one_is_set() {
        let (set, deadline) = Deadline::new();
        assert!(!deadline.has_passed());
        let quick = deadline.before(tokio::time::sleep(Duration::from_secs(3600)));
        let unset = tokio::time::timeout(Duration::from_secs(60), quick).await;
        assert!(unset.is_err(), "no deadline: the work goes on");
        set.send_replace(Some(Instant::now()));
        let cut = deadline
            .before(tokio::time::sleep(Duration::from_secs(3600)))
            .await;
        assert!(cut.is_none(), "cut short by the deadline");
        assert!(deadline.has_passed());
    }

    #[tokio::test(start_paused = true)]
    async fn once_everything_is_secured_no_retry_waits() {
        let (_set, deadline) = Deadline::new();
        let waited = deadline.wait_to_retry(Duration::from_secs(1)).await;
        assert_eq!(
            waited,
            Some(()),
            "nothing secured: the wait runs its course"
        );
        let waiting = deadline.clone();
        let retry =
            tokio::spawn(async move { waiting.wait_to_retry(Duration::from_secs(3600)).await });
        tokio::task::yield_now().await;
        deadline.mark_secured();
        let cut = tokio::time::timeout(Duration::from_secs(1), retry).await;
        assert_eq!(cut.expect("woken at once").unwrap(), None);
        assert_eq!(deadline.wait_to_retry(Duration::from_secs(1)).await, None);
    }
}
