//! A destination that keeps every delivered line in memory: the test double of the Events API,
//! behind the public face of `crate::testing`.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{Deadline, Deferred, DeferredBecause, Deliver, Health, Report};
use crate::batch::Batch;
use crate::stats::Settled;

/// A destination that keeps every delivered line in memory. Clones share the same lines.
///
/// ```
/// let memory = mcp_analytics::testing::InMemory::new();
/// assert!(memory.lines().is_empty());
/// assert_eq!(memory.batches(), 0);
/// ```
#[derive(Clone, Default)]
pub struct InMemory {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    delivered: Mutex<Delivered>,
    arrived: Condvar,
}

#[derive(Default)]
struct Delivered {
    lines: Vec<String>,
    batches: usize,
}

impl InMemory {
    /// An empty destination.
    ///
    /// ```
    /// let memory = mcp_analytics::testing::InMemory::new();
    /// # drop(memory);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    fn delivered(&self) -> MutexGuard<'_, Delivered> {
        // Lines are only ever appended: whatever panicked holding the lock left them whole.
        self.shared
            .delivered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Every line delivered so far, in order, without its `\n`.
    ///
    /// ```
    /// assert!(mcp_analytics::testing::InMemory::new().lines().is_empty());
    /// ```
    pub fn lines(&self) -> Vec<String> {
        self.delivered().lines.clone()
    }

    /// How many batches were delivered: a request's worth each.
    ///
    /// ```
    /// assert_eq!(mcp_analytics::testing::InMemory::new().batches(), 0);
    /// ```
    pub fn batches(&self) -> usize {
        self.delivered().batches
    }

    /// Waits until at least `n` lines have arrived or `timeout` has passed, and returns every
    /// line either way: on a timeout, the caller's assertion on the count shows what did arrive.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let memory = mcp_analytics::testing::InMemory::new();
    /// assert!(memory.wait_for_lines(1, Duration::from_millis(1)).is_empty());
    /// ```
    pub fn wait_for_lines(&self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut delivered = self.delivered();
        while delivered.lines.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            delivered = self
                .shared
                .arrived
                .wait_timeout(delivered, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        delivered.lines.clone()
    }
}

impl std::fmt::Debug for InMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let delivered = self.delivered();
        f.debug_struct("InMemory")
            .field("lines", &delivered.lines.len())
            .field("batches", &delivered.batches)
            .finish()
    }
}

impl Deliver for InMemory {
    fn compresses(&self) -> bool {
        false
    }

    fn health(&self) -> Health {
        Health::default()
    }

    async fn deliver(&mut self, batch: Batch, deadline: &Deadline) -> Report {
        if deadline.has_passed() {
            return Report {
                deferred: vec![Deferred {
                    batch,
                    why: DeferredBecause::Deadline,
                }],
                ..Report::default()
            };
        }
        let body = String::from_utf8_lossy(&batch.body);
        let mut delivered = self.delivered();
        delivered.lines.extend(body.lines().map(str::to_owned));
        delivered.batches += 1;
        drop(delivered);
        self.shared.arrived.notify_all();
        Report {
            settled: Settled {
                sent: batch.events,
                batches: 1,
                ..Settled::default()
            },
            ..Report::default()
        }
    }
}
