//! The background worker: one thread with its own current-thread tokio runtime, so it works in
//! sync programs and beside any runtime the server uses. It drains the queue into batches and
//! hands them to its delivery, answering flush and shutdown requests in between.
//!
//! While a batch is being delivered, the worker goes on taking rows into the next batches, until
//! a few more are closed and waiting ([`backlog::MAX_WAITING`]): encoding overlaps the
//! service's answer and the pacing of requests, so the worker's rate is the slower of the two
//! rather than their sum, and a slow or retrying endpoint holds those few batches besides the
//! queue (bounded) before the queue fills.
//!
//! While rows come in, the worker looks at the queue every [`POLL`] on its own, so that
//! producers need not wake it (a wake-up is a syscall on the producer's thread); with nothing
//! coming, it looks less and less often, down to once per batch age ([`Polling`]).
//!
//! With a spool (`crate::spool`), what cannot be delivered now goes to disk instead of being
//! dropped: a batch the service would not take after its retries; during an outage, the
//! batches waiting, as soon as the queue is half full; and, as shutdown begins, everything at
//! once, before a last delivery is tried in the time left. Spooled files are sent again, oldest
//! first and between live batches, at start and once the service answers again.

mod backlog;

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, watch};

use crate::batch::{Batch, Batcher};
use crate::config::{Config, Target};
use crate::delivery::http::EventsApi;
use crate::delivery::{Deadline, Deliver, Health, Report};
use crate::error::Error;
use crate::global;
use crate::rows::scope;
use crate::spool::{Claim, Replay, Spool};
use crate::stats::COUNTERS;
use backlog::{Backlog, POPS_PER_CHUNK, Spooled, Take};

/// How often the worker looks at the queue while rows come in: a thread's ring holds more
/// than this much of the fastest sustained rate, so a thread fills it (and wakes the worker)
/// only when the worker could not look.
const POLL: Duration = Duration::from_millis(1);

/// What the rest of the process asks of the worker.
pub(crate) enum Command {
    /// Ship everything queued now, then answer.
    Flush(SyncSender<()>),
    /// Ship everything queued now (up to the deadline), answer, and stop.
    Shutdown(SyncSender<()>),
}

/// The running worker, as seen from `init`/`flush`/`shutdown`.
pub(crate) struct Handle {
    pub(crate) commands: mpsc::UnboundedSender<Command>,
    pub(crate) deadline: watch::Sender<Option<Instant>>,
    pub(crate) thread: JoinHandle<()>,
    /// The `init` this worker belongs to (see `global::next_generation`).
    pub(crate) generation: u64,
}

/// Starts the worker thread for `config`'s destination and waits for it to confirm that its
/// runtime is up, so `init` reports every failure.
pub(crate) fn spawn(config: Config, generation: u64) -> Result<Handle, Error> {
    match config.target.clone() {
        Target::EventsApi {
            events_url,
            token,
            options,
        } => {
            let delivery = EventsApi::new(events_url, token.expose(), &options)?;
            spawn_with(delivery, &config, generation)
        }
        #[cfg(feature = "testing")]
        Target::Memory(memory) => spawn_with(memory, &config, generation),
    }
}

/// The runtime is built on the worker thread itself: a runtime dropped on the caller's thread
/// would panic if that thread is inside an async context.
fn spawn_with<D: Deliver>(delivery: D, config: &Config, generation: u64) -> Result<Handle, Error> {
    let (set_deadline, deadline) = Deadline::new();
    let (commands, inbox) = mpsc::unbounded_channel();
    let spool = config.spool.as_ref().and_then(|settings| {
        match Spool::open(
            settings.dir.clone(),
            &settings.datasource,
            settings.max_bytes,
        ) {
            Ok(spool) => Some(Spooled {
                spool,
                replay: Replay::new(),
            }),
            Err(error) => {
                crate::diag::report(format_args!(
                    "cannot use the spool at {}: {error}; events that cannot be delivered now \
                     are dropped",
                    settings.dir.display()
                ));
                None
            }
        }
    });
    let worker = Worker {
        inbox,
        backlog: Backlog {
            batcher: Batcher::new(config.limits, config.before_send.clone()),
            ready: VecDeque::new(),
            gzip: delivery.compresses(),
            spool,
            generation,
            queue_capacity: config.queue_capacity,
        },
        health: delivery.health(),
        delivery,
        polling: Polling::new(config.limits.max_age),
        deadline,
    };
    let (started, confirmation) = std::sync::mpsc::sync_channel(1);
    let thread = std::thread::Builder::new()
        .name("mcp-analytics".into())
        .spawn(move || {
            scope::mark_worker_thread();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(runtime) => {
                    let _ = started.send(Ok(()));
                    runtime.block_on(worker.run());
                    // Don't wait for blocking tasks (a DNS lookup that hangs): `shutdown` joins
                    // this thread within its deadline.
                    runtime.shutdown_background();
                }
                Err(error) => {
                    let _ = started.send(Err(error));
                }
            }
        })
        .map_err(Error::Worker)?;
    match confirmation.recv() {
        Ok(Ok(())) => Ok(Handle {
            commands,
            deadline: set_deadline,
            thread,
            generation,
        }),
        Ok(Err(error)) => Err(Error::Worker(error)),
        Err(_) => Err(Error::Worker(std::io::Error::other(
            "the worker thread ended before starting",
        ))),
    }
}

struct Worker<D> {
    inbox: mpsc::UnboundedReceiver<Command>,
    delivery: D,
    /// Whether the delivery's destination answers, read while a delivery runs.
    health: Health,
    backlog: Backlog,
    polling: Polling,
    deadline: Deadline,
}

/// How long the worker sleeps before it looks at the queue again, with a batch open or a
/// delivery under way: [`POLL`] while rows come in, twice as long after each look that found
/// none, `longest` at most.
#[derive(Clone, Copy)]
struct Polling {
    interval: Duration,
    /// Also the longest sleep with nothing pending: a wake-up lost to a race costs this much
    /// latency.
    longest: Duration,
}

impl Polling {
    fn new(longest: Duration) -> Self {
        Self {
            interval: POLL,
            longest,
        }
    }

    /// After a look at the queue that took `took` rows.
    fn looked(&mut self, took: usize) {
        self.interval = if took > 0 {
            POLL
        } else {
            (self.interval * 2).min(self.longest)
        };
    }
}

/// Ready once there are rows to take, or `poll` has passed, after letting the runtime look at
/// its sockets: a chunk of encoding at a time, so that the answer to the request in flight is
/// read within a chunk's time of its arrival.
async fn rows_to_take(poll: Duration) {
    tokio::task::yield_now().await;
    if global::queued() == 0 {
        tokio::select! {
            () = global::WAKE.notified() => {}
            () = tokio::time::sleep(poll) => {}
        }
    }
}

/// What the worker does during a delivery.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Meanwhile {
    /// Takes newly queued rows into the next batch (see the module docs).
    Batch,
    /// Nothing: the worker is shutting down, and what it took now could not ship.
    Wait,
}

enum Wake {
    Command(Option<Command>),
    Rows,
}

impl<D: Deliver> Worker<D> {
    async fn run(mut self) {
        loop {
            let wake = self.next_wake().await;
            // With batches ready, ship first: rows are taken while they are delivered.
            if self.backlog.ready.is_empty() || !matches!(wake, Wake::Rows) {
                let drained = self.backlog.drain(&self.deadline);
                self.polling.looked(drained);
            }
            match wake {
                Wake::Rows => {
                    self.backlog.close_if_due();
                    self.ship(Meanwhile::Batch).await;
                    // One spooled file per round, between live batches: a busy server still
                    // works its spool off, under the same rate limits.
                    if self.replay_due() {
                        self.replay_one(Meanwhile::Batch).await;
                    }
                }
                Wake::Command(Some(Command::Flush(done))) => {
                    self.backlog.close();
                    self.ship(Meanwhile::Batch).await;
                    let _ = done.send(());
                }
                Wake::Command(Some(Command::Shutdown(done))) => {
                    if self.backlog.spool.is_some() {
                        // Secure first, then send: a kill after this loses nothing taken.
                        self.backlog.secure(&self.deadline, None);
                        // What the disk refused (full, read-only) is only in memory: it goes
                        // out first, with its retries, and what misses the deadline is counted
                        // failed.
                        self.ship(Meanwhile::Wait).await;
                        // The rest is on disk: one try each, in the time left.
                        self.deadline.mark_secured();
                        self.replay_until_deadline().await;
                        self.backlog.report_left_behind();
                    } else {
                        self.backlog.close();
                        self.ship(Meanwhile::Wait).await;
                    }
                    let _ = done.send(());
                    return;
                }
                // Every handle is gone: nobody can flush or shut down any more.
                Wake::Command(None) => return,
            }
        }
    }

    /// Whether the spool is to be looked at now.
    fn replay_due(&self) -> bool {
        self.backlog
            .spool
            .as_ref()
            .is_some_and(|spooled| spooled.replay.is_due(Instant::now()))
    }

    /// Sleeps until a command, a wake-up from a producer, or the open batch's age limit; with
    /// batches waiting to ship or spooled files to send, returns at once (with a command first,
    /// if one came).
    async fn next_wake(&mut self) -> Wake {
        if !self.backlog.ready.is_empty() || self.replay_due() {
            return match self.inbox.try_recv() {
                Ok(command) => Wake::Command(Some(command)),
                Err(TryRecvError::Disconnected) => Wake::Command(None),
                Err(TryRecvError::Empty) => Wake::Rows,
            };
        }
        let batcher = &self.backlog.batcher;
        let idle = batcher.is_empty();
        global::set_worker_idle(idle);
        if idle && global::queued() > 0 {
            // A row arrived between the last drain and the idle flag: don't sleep on it.
            global::set_worker_idle(false);
            return Wake::Rows;
        }
        let now = Instant::now();
        let until = match batcher.deadline() {
            Some(deadline) => deadline.min(now + self.polling.interval),
            None => now + self.polling.longest,
        };
        let wake = tokio::select! {
            biased;
            command = self.inbox.recv() => Wake::Command(command),
            () = global::WAKE.notified() => Wake::Rows,
            () = tokio::time::sleep_until(until.into()) => Wake::Rows,
        };
        global::set_worker_idle(false);
        wake
    }

    /// Ships the batches closed so far. Those that close while these are delivered wait for
    /// the next round, so that a steady stream of rows cannot hold a command back.
    async fn ship(&mut self, meanwhile: Meanwhile) {
        for _ in 0..self.backlog.ready.len() {
            let Some(batch) = self.backlog.ready.pop_front() else {
                break;
            };
            let (report, copy) = self.deliver(batch, Origin::Live, meanwhile).await;
            match copy {
                // Shutdown began during the delivery, and a copy of the batch went to disk.
                Some(copy) => self.settle_held(copy, report, Origin::Live),
                None => self.backlog.settle_report(report),
            }
        }
    }

    /// Sends spooled files, oldest first, until none is left, one is not delivered, or the
    /// shutdown deadline passes.
    async fn replay_until_deadline(&mut self) {
        while !self.deadline.has_passed() {
            if !self.replay_one(Meanwhile::Wait).await {
                return;
            }
        }
    }

    /// Sends the oldest spooled file nobody else is sending; returns whether one was delivered.
    async fn replay_one(&mut self, meanwhile: Meanwhile) -> bool {
        let Some(spooled) = &mut self.backlog.spool else {
            return false;
        };
        let claimed = spooled.spool.claim_oldest();
        COUNTERS.discarded.add(claimed.set_aside);
        let Some((mut claim, batch)) = claimed.next else {
            spooled.replay.found_nothing();
            return false;
        };
        spooled.spool.mark_sending(&mut claim);
        let (report, _) = self.deliver(batch, Origin::Spooled, meanwhile).await;
        let delivered = report.deferred.is_empty();
        self.settle_held(claim, report, Origin::Spooled);
        if let Some(spooled) = &mut self.backlog.spool {
            if delivered {
                spooled.replay.sent();
            } else {
                spooled.replay.failed();
            }
        }
        delivered
    }

    /// Settles the delivery of a batch that is also on disk, `claim`ed by this process: the
    /// file goes once the batch was delivered (or refused for good), and stays for later if
    /// none of it was; in between (a split batch, partly delivered), the file goes and what is
    /// left is spooled anew.
    fn settle_held(&mut self, claim: Claim, report: Report, origin: Origin) {
        let Some(spooled) = &mut self.backlog.spool else {
            return;
        };
        if report.untouched() && !report.deferred.is_empty() {
            let Report {
                mut settled,
                deferred,
            } = report;
            let events = claim.events();
            let maybe_delivered = deferred.iter().any(|left| left.batch.maybe_delivered);
            spooled.spool.release(claim, maybe_delivered);
            if origin == Origin::Live {
                settled.spooled += events;
                self.backlog.settle(settled);
            }
            return;
        }
        let Report {
            mut settled,
            deferred,
        } = report;
        spooled.spool.acknowledge(claim);
        let mut respooled = 0;
        for mut left in deferred {
            if self.backlog.store(&mut left.batch, false).is_some() {
                respooled += left.batch.events;
            } else if origin == Origin::Live {
                settled += left.fail();
            } else {
                COUNTERS.discarded.add(left.batch.events);
            }
        }
        match origin {
            Origin::Live => {
                settled.spooled += respooled;
                self.backlog.settle(settled);
            }
            Origin::Spooled => COUNTERS.settle_replayed(settled),
        }
    }

    /// Delivers `batch`, taking rows into the next batches meanwhile (with
    /// [`Meanwhile::Batch`]). Should shutdown begin during the delivery, with a spool, every
    /// other row goes to disk at once, and a copy of a live `batch` too, returned held: the
    /// delivery goes on, and its outcome decides the copy's fate.
    async fn deliver(
        &mut self,
        batch: Batch,
        origin: Origin,
        meanwhile: Meanwhile,
    ) -> (Report, Option<Claim>) {
        // The copy shares the batch's bytes. A spooled batch is on disk already.
        let mut to_secure =
            (self.backlog.spool.is_some() && origin == Origin::Live).then(|| batch.clone());
        let mut copy = None;
        let backlog = &mut self.backlog;
        let health = &self.health;
        let deadline = &self.deadline;
        let polling = &mut self.polling;
        let mut delivery = pin!(self.delivery.deliver(batch, deadline));
        let mut securing = backlog.spool.is_some();
        let mut batching = meanwhile == Meanwhile::Batch;
        let report = loop {
            tokio::select! {
                biased;
                report = &mut delivery => break report,
                () = deadline.set(), if securing => {
                    securing = false;
                    batching = false;
                    let in_flight = to_secure.take();
                    let live = in_flight.is_some();
                    copy = backlog.secure(deadline, in_flight);
                    // Everything is on disk, this batch too: a failed attempt is not retried,
                    // so that the process may exit at once.
                    if backlog.ready.is_empty() && (copy.is_some() || !live) {
                        deadline.mark_secured();
                    }
                }
                () = room_to_take(backlog, health, polling.interval),
                    if batching && (backlog.has_room() || backlog.may_spill(health)) =>
                {
                    backlog.spill_if_filling(health);
                    if backlog.has_room() {
                        let taken = backlog.take_from_queue(POPS_PER_CHUNK, Take::UntilClosed);
                        polling.looked(taken.unwrap_or(0));
                        // Superseded: take nothing more.
                        batching = taken.is_some();
                    }
                }
            }
        };
        (report, copy)
    }
}

/// Where a delivered batch came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// This worker's queue: its rows count in this process's ledger.
    Live,
    /// A spool file: its rows count as replayed, whoever recorded them.
    Spooled,
}

/// Ready once rows can be taken into a batch: at once while fewer than
/// [`backlog::MAX_WAITING`] batches wait; otherwise (during an outage, with a spool) once
/// producers wake the worker, to see whether the queue is filling up.
async fn room_to_take(backlog: &Backlog, health: &Health, poll: Duration) {
    if backlog.has_room() {
        rows_to_take(poll).await;
    } else if backlog.may_spill(health) {
        global::WAKE.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_looks_often_while_rows_come_and_backs_off_to_the_longest_when_none_do() {
        let longest = Duration::from_secs(1);
        let mut polling = Polling::new(longest);
        let mut looks = Vec::new();
        for _ in 0..12 {
            polling.looked(0);
            looks.push(polling.interval);
        }
        assert_eq!(looks[0], POLL * 2);
        assert!(looks.windows(2).all(|pair| pair[0] <= pair[1]), "{looks:?}");
        assert_eq!(
            *looks.last().unwrap(),
            longest,
            "never longer than the longest"
        );
        polling.looked(1);
        assert_eq!(polling.interval, POLL, "rows again: look often again");
    }
}
