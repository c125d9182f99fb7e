//! The background worker: one thread with its own current-thread tokio runtime, so it works in
//! sync programs and beside any runtime the server uses. It drains the queue into batches and
//! hands them to its delivery, answering flush and shutdown requests in between.
//!
//! While a batch is being delivered, the worker goes on taking rows into the next batch, until
//! one more batch is closed and waiting: encoding overlaps the service's answer, so the worker's
//! rate is the slower of the two rather than their sum, and a slow or retrying endpoint holds
//! one batch of rows besides the queue (bounded) before the queue fills.

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
use crate::delivery::{Deadline, Deliver};
use crate::error::Error;
use crate::global;
use crate::rows::scope;
use crate::stats::{LEDGER, Settled};

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
    let worker = Worker {
        inbox,
        batches: Batches {
            batcher: Batcher::new(config.limits, config.before_send.clone()),
            ready: VecDeque::new(),
            gzip: delivery.compresses(),
        },
        delivery,
        idle_poll: config.limits.max_age,
        queue_capacity: config.queue_capacity,
        deadline,
        generation,
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
    batches: Batches,
    /// Longest sleep with nothing pending: a wake-up lost to a race costs this much latency.
    idle_poll: Duration,
    queue_capacity: usize,
    deadline: Deadline,
    generation: u64,
}

/// Pops between two looks at the clock while draining, and between two looks at the delivery
/// under way while batching meanwhile: about a millisecond of encoding.
const POPS_PER_CHUNK: usize = 1024;

/// The open batch and the closed ones waiting to ship.
struct Batches {
    batcher: Batcher,
    /// Closed batches not yet shipped.
    ready: VecDeque<Batch>,
    /// Whether batches are compressed: those that close during a delivery are compressed at
    /// once.
    gzip: bool,
}

impl Batches {
    /// Moves up to `most` queued rows of `generation`'s into batches, or fewer with
    /// [`Take::UntilClosed`]; returns how many it moved, or `None` when the worker was
    /// superseded.
    fn take_from_queue(&mut self, generation: u64, most: usize, take: Take) -> Option<usize> {
        global::pop_for(generation, most, |row| {
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

    /// Closes the open batch if its age limit has passed, to ship it now.
    fn close_if_due(&mut self) {
        self.ready.extend(self.batcher.close_if_due(Instant::now()));
    }

    /// Closes the open batch, whatever its size, to ship it now.
    fn close(&mut self) {
        self.ready.extend(self.batcher.close());
    }
}

/// Ready once there are rows to take, after letting the runtime look at its sockets: a chunk
/// of encoding at a time, so that the answer to the request in flight is read within a chunk's
/// time of its arrival.
async fn rows_to_take() {
    tokio::task::yield_now().await;
    if global::queued() == 0 {
        global::WAKE.notified().await;
    }
}

/// How many queued rows [`Batches::take_from_queue`] takes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Take {
    /// As many as asked.
    All,
    /// Up to the first batch that closes: during a delivery, one batch waits at most.
    UntilClosed,
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
            if self.batches.ready.is_empty() || !matches!(wake, Wake::Rows) {
                self.drain();
            }
            match wake {
                Wake::Rows => {
                    self.batches.close_if_due();
                    self.ship(Meanwhile::Batch).await;
                }
                Wake::Command(Some(Command::Flush(done))) => {
                    self.batches.close();
                    self.ship(Meanwhile::Batch).await;
                    let _ = done.send(());
                }
                Wake::Command(Some(Command::Shutdown(done))) => {
                    self.batches.close();
                    self.ship(Meanwhile::Wait).await;
                    let _ = done.send(());
                    return;
                }
                // Every handle is gone: nobody can flush or shut down any more.
                Wake::Command(None) => return,
            }
        }
    }

    /// Sleeps until a command, a wake-up from a producer, or the open batch's age limit; with
    /// batches waiting to ship, returns at once (with a command first, if one came).
    async fn next_wake(&mut self) -> Wake {
        if !self.batches.ready.is_empty() {
            return match self.inbox.try_recv() {
                Ok(command) => Wake::Command(Some(command)),
                Err(TryRecvError::Disconnected) => Wake::Command(None),
                Err(TryRecvError::Empty) => Wake::Rows,
            };
        }
        let batcher = &self.batches.batcher;
        let idle = batcher.is_empty();
        global::set_worker_idle(idle);
        if idle && global::queued() > 0 {
            // A row arrived between the last drain and the idle flag: don't sleep on it.
            global::set_worker_idle(false);
            return Wake::Rows;
        }
        let until = batcher
            .deadline()
            .unwrap_or_else(|| Instant::now() + self.idle_poll);
        let wake = tokio::select! {
            biased;
            command = self.inbox.recv() => Wake::Command(command),
            () = global::WAKE.notified() => Wake::Rows,
            () = tokio::time::sleep_until(until.into()) => Wake::Rows,
        };
        global::set_worker_idle(false);
        wake
    }

    /// Moves queued rows into batches. Takes at most one queue's worth per round, so busy
    /// producers cannot keep the worker from shipping or answering commands. Past the shutdown
    /// deadline nothing more can ship, so the rest is counted, not encoded; a worker superseded
    /// by a later `init` takes nothing.
    fn drain(&mut self) {
        let mut popped = 0;
        while popped < self.queue_capacity {
            if self.deadline.has_passed() {
                self.abandon_queued(self.queue_capacity - popped);
                return;
            }
            let most = POPS_PER_CHUNK.min(self.queue_capacity - popped);
            match self
                .batches
                .take_from_queue(self.generation, most, Take::All)
            {
                Some(taken) if taken == most => popped += taken,
                _ => return,
            }
        }
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

    /// Counts what became of rows this worker took; nothing, once a shutdown that stopped
    /// waiting for it has closed its books.
    fn settle(&self, settled: Settled) {
        LEDGER.settle(self.generation, settled);
    }

    /// Ships the batches closed so far. Those that close while these are delivered wait for
    /// the next round, so that a steady stream of rows cannot hold a command back.
    async fn ship(&mut self, meanwhile: Meanwhile) {
        for _ in 0..self.batches.ready.len() {
            let Some(batch) = self.batches.ready.pop_front() else {
                break;
            };
            let settled = {
                let mut delivery = pin!(self.delivery.deliver(batch, &self.deadline));
                let batches = &mut self.batches;
                let generation = self.generation;
                let mut batching = meanwhile == Meanwhile::Batch;
                loop {
                    tokio::select! {
                        biased;
                        settled = &mut delivery => break settled,
                        () = rows_to_take(), if batching && batches.ready.is_empty() => {
                            // Superseded: take nothing more.
                            batching = batches
                                .take_from_queue(generation, POPS_PER_CHUNK, Take::UntilClosed)
                                .is_some();
                        }
                    }
                }
            };
            self.settle(settled);
        }
    }
}
