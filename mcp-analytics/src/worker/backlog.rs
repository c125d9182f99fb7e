//! What the worker has taken from the queue and not delivered yet: the open batch, the closed
//! batches waiting to ship, and the disk spool for what cannot ship now.

use std::collections::VecDeque;
use std::time::Instant;

use crate::batch::{Batch, Batcher};
use crate::delivery::{Deadline, Deferred, Health, Report};
use crate::diag;
use crate::global;
use crate::spool::{Claim, Replay, Spool};
use crate::stats::{COUNTERS, LEDGER, Settled};

/// Pops between two looks at the clock while draining, and between two looks at the delivery
/// under way while batching meanwhile: about a millisecond of encoding.
pub(super) const POPS_PER_CHUNK: usize = 1024;

/// Batches closed and waiting behind the delivery under way, at most, before the worker stops
/// taking rows: enough to keep taking them through the pacing of requests and a slow answer
/// or two, few enough that an endpoint that stopped answering holds little besides the queue.
/// Closed batches are compressed, a tenth or less of their rows' size in memory.
pub(super) const MAX_WAITING: usize = 4;

/// How many queued rows [`Backlog::take_from_queue`] takes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Take {
    /// As many as asked.
    All,
    /// Up to the first batch that closes, so that the caller can see whether there is room for
    /// another ([`Backlog::has_room`]).
    UntilClosed,
}

/// The spool, and when to look in it.
pub(super) struct Spooled {
    pub(super) spool: Spool,
    pub(super) replay: Replay,
}

pub(super) struct Backlog {
    pub(super) batcher: Batcher,
    /// Closed batches not yet shipped.
    pub(super) ready: VecDeque<Batch>,
    /// Whether batches are compressed: those that close during a delivery are compressed at
    /// once.
    pub(super) gzip: bool,
    pub(super) spool: Option<Spooled>,
    pub(super) generation: u64,
    pub(super) queue_capacity: usize,
}

impl Backlog {
    /// Moves up to `most` queued rows of this worker's generation into batches, or fewer with
    /// [`Take::UntilClosed`]; returns how many it moved, or `None` when the worker was
    /// superseded.
    pub(super) fn take_from_queue(&mut self, most: usize, take: Take) -> Option<usize> {
        global::pop_for(self.generation, most, |row| {
            let Some(mut closed) = self.batcher.push(&row) else {
                return true;
            };
            // It waits behind the delivery under way, if any: compress it meanwhile, so that
            // sending it does not wait for that.
            if self.gzip {
                closed.compress();
            }
            self.ready.push_back(closed);
            take == Take::All
        })
    }

    /// Whether a batch may close and wait behind the delivery under way.
    pub(super) fn has_room(&self) -> bool {
        self.ready.len() < MAX_WAITING
    }

    /// Moves queued rows into batches; returns how many it took. Takes at most one queue's
    /// worth per round, so busy producers cannot keep the worker from shipping or answering
    /// commands. Past the shutdown deadline nothing more can ship, so the rest is counted, not
    /// encoded; a worker superseded by a later `init` takes nothing.
    pub(super) fn drain(&mut self, deadline: &Deadline) -> usize {
        let mut popped = 0;
        while popped < self.queue_capacity {
            if deadline.has_passed() {
                self.abandon_queued(self.queue_capacity - popped);
                return popped;
            }
            let most = POPS_PER_CHUNK.min(self.queue_capacity - popped);
            match self.take_from_queue(most, Take::All) {
                Some(taken) if taken == most => popped += taken,
                Some(taken) => return popped + taken,
                None => return popped,
            }
        }
        popped
    }

    /// Takes up to `most` queued rows and counts them as failed: the deadline passed.
    fn abandon_queued(&mut self, most: usize) {
        let mut abandoned = 0;
        while abandoned < most {
            let chunk = POPS_PER_CHUNK.min(most - abandoned);
            match global::pop_for(self.generation, chunk, |_| true) {
                Some(taken) if taken > 0 => abandoned += taken,
                _ => break,
            }
        }
        self.settle(Settled {
            failed: abandoned,
            abandoned,
            ..Settled::default()
        });
    }

    /// Closes the open batch if its age limit has passed, to ship it now.
    pub(super) fn close_if_due(&mut self) {
        self.ready.extend(self.batcher.close_if_due(Instant::now()));
    }

    /// Closes the open batch, whatever its size, to ship it now.
    pub(super) fn close(&mut self) {
        self.ready.extend(self.batcher.close());
    }

    /// Counts what became of rows this worker took; nothing, once a shutdown that stopped
    /// waiting for it has closed its books.
    pub(super) fn settle(&self, settled: Settled) {
        LEDGER.settle(self.generation, settled);
    }

    /// Settles a live delivery's report: what it deferred is spooled if it can be, failed if
    /// not.
    pub(super) fn settle_report(&mut self, report: Report) {
        let mut settled = report.settled;
        if settled.sent > 0
            && let Some(spooled) = &mut self.spool
        {
            spooled.replay.delivered_live();
        }
        for deferred in report.deferred {
            settled += self.keep(deferred);
        }
        self.settle(settled);
    }

    /// Keeps a batch that could not be delivered now in the spool; without a spool, or when
    /// the disk refuses it, it fails as it would have without one.
    fn keep(&mut self, mut deferred: Deferred) -> Settled {
        match self.store(&mut deferred.batch, false) {
            Some(_) => Settled {
                spooled: deferred.batch.events,
                ..Settled::default()
            },
            None => deferred.fail(),
        }
    }

    /// Writes `batch` to the spool, held with `hold`; `None` without a spool or when the disk
    /// refuses it (said once). Counts what making room evicted.
    pub(super) fn store(&mut self, batch: &mut Batch, hold: bool) -> Option<Option<Claim>> {
        let spooled = self.spool.as_mut()?;
        match spooled.spool.store(batch, hold) {
            Ok((stored, claim)) => {
                COUNTERS.discarded.add(stored.evicted);
                spooled.replay.stored();
                Some(claim)
            }
            Err(error) => {
                static UNWRITABLE: diag::Once = diag::Once::new();
                UNWRITABLE.report(format_args!(
                    "cannot write to the spool at {}: {error}; events that cannot be delivered \
                     now are dropped (reported once; see mcp_analytics::stats())",
                    spooled.spool.dir().display()
                ));
                None
            }
        }
    }

    /// Secures everything taken or queued on disk at once, as shutdown begins: the queue, the
    /// open batch, the batches waiting, and a copy of `in_flight`, the batch being delivered,
    /// returned held so that nobody else sends it meanwhile.
    pub(super) fn secure(
        &mut self,
        deadline: &Deadline,
        in_flight: Option<Batch>,
    ) -> Option<Claim> {
        self.drain(deadline);
        self.close();
        self.spill();
        let mut copy = in_flight?;
        self.store(&mut copy, true).flatten()
    }

    /// Moves the batches waiting to ship to the spool (those the disk refuses stay waiting).
    pub(super) fn spill(&mut self) {
        let mut refused = VecDeque::new();
        while let Some(mut batch) = self.ready.pop_front() {
            if self.store(&mut batch, false).is_some() {
                self.settle(Settled {
                    spooled: batch.events,
                    ..Settled::default()
                });
            } else {
                refused.push_back(batch);
            }
        }
        self.ready = refused;
    }

    /// Whether batches may go to the spool to make room in the queue: the service is failing,
    /// so they would only wait, while the queue fills.
    pub(super) fn may_spill(&self, health: &Health) -> bool {
        self.spool.is_some() && !health.is_healthy()
    }

    /// During an outage, with the queue half full, moves the waiting batches to the spool so
    /// that the worker can take more rows: a long outage drains the queue to disk instead of
    /// dropping events.
    pub(super) fn spill_if_filling(&mut self, health: &Health) {
        if self.may_spill(health) && global::queued() >= self.queue_capacity / 2 {
            self.spill();
        }
    }

    /// Says, as the worker stops, how many events wait in the spool for a later run.
    pub(super) fn report_left_behind(&self) {
        let Some(spooled) = &self.spool else {
            return;
        };
        let (events, files) = spooled.spool.waiting();
        if events > 0 {
            let files = match files {
                1 => "1 file".to_owned(),
                n => format!("{n} files"),
            };
            diag::report(format_args!(
                "{events} events ({files}) wait in {} for a later run to deliver them",
                spooled.spool.dir().display()
            ));
        }
    }
}
