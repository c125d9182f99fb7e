//! Delivery: where closed batches go. The worker hands each batch to a [`Deliver`]
//! implementation and counts what it reports, in one place (`stats::LEDGER`).
//!
//! [`http`] delivers to Tinybird's Events API, with its retry policy ([`retry`]) and its rate
//! limits ([`rate_limit`]); `memory` keeps batches in memory, for tests (`crate::testing`). A disk spool for what
//! cannot be delivered now plugs in here too.

pub(crate) mod http;
#[cfg(feature = "testing")]
pub(crate) mod memory;
pub(crate) mod rate_limit;
pub(crate) mod retry;

use std::future::Future;
use std::time::Instant;

use tokio::sync::watch;
use tokio::time::sleep_until;

use crate::batch::Batch;
use crate::stats::Settled;

/// A destination for batches.
pub(crate) trait Deliver: Send + 'static {
    /// Whether batches go out gzip-compressed: the worker then compresses each as it closes,
    /// during the delivery before it.
    fn compresses(&self) -> bool;

    /// Delivers `batch` (splitting, retrying and waiting as the destination's rules say) until
    /// it is delivered, given up on, or `deadline` passes, and reports what became of its rows.
    /// Retries are counted as they happen; everything else is counted from the report.
    fn deliver(&mut self, batch: Batch, deadline: &Deadline) -> impl Future<Output = Settled>;
}

/// The shutdown deadline: unset until `shutdown()` sets it; past it, nothing is sent or retried.
#[derive(Clone)]
pub(crate) struct Deadline(watch::Receiver<Option<Instant>>);

impl Deadline {
    /// A deadline, and the handle that sets it.
    pub(crate) fn new() -> (watch::Sender<Option<Instant>>, Self) {
        let (set, seen) = watch::channel(None);
        (set, Self(seen))
    }

    pub(crate) fn has_passed(&self) -> bool {
        self.0
            .borrow()
            .is_some_and(|deadline| Instant::now() >= deadline)
    }

    /// Runs `future` to completion unless the deadline passes first.
    pub(crate) async fn before<F: Future>(&self, future: F) -> Option<F::Output> {
        let mut deadline = self.0.clone();
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
}
