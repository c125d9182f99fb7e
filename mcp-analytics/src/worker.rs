//! The background worker: one thread with its own current-thread tokio runtime, so it works in
//! sync programs and beside any runtime the server uses. It drains the queue into batches and
//! ships them, answering flush and shutdown requests in between.
//!
//! While a request is in flight, the worker goes on taking events into the next batch, until one
//! more batch is closed and waiting: encoding overlaps the service's answer, so the worker's rate
//! is the slower of the two rather than their sum, and a slow or retrying endpoint holds one
//! batch of events besides the queue (bounded) before the queue fills.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, watch};

use crate::batch::{self, Batch};
use crate::config::Config;
use crate::queue;
use crate::stats::{COUNTERS, Counters};
use crate::transport::Transport;

/// What the rest of the process asks of the worker.
pub(crate) enum Command {
    /// Ship everything queued now, then answer.
    Flush(SyncSender<()>),
    /// Ship everything queued now (up to the deadline), answer with how many events the deadline
    /// cut off, and stop.
    Shutdown(SyncSender<usize>),
}

/// The running worker, as seen from `init`/`flush`/`shutdown`.
pub(crate) struct Handle {
    pub(crate) commands: mpsc::UnboundedSender<Command>,
    pub(crate) deadline: watch::Sender<Option<Instant>>,
    pub(crate) thread: JoinHandle<()>,
}

/// Starts the worker thread and waits for it to confirm that its runtime is up, so `init`
/// reports every failure. The runtime is built on the worker thread itself: a runtime dropped
/// on the caller's thread would panic if that thread is inside an async context.
pub(crate) fn spawn(config: Config, generation: u64) -> Result<Handle, crate::Error> {
    let (deadline, deadline_seen) = watch::channel(None);
    let transport = Transport::new(&config, deadline_seen.clone())
        .map_err(|error| crate::Error::Worker(std::io::Error::other(error)))?;
    let (commands, inbox) = mpsc::unbounded_channel();
    let worker = Worker {
        inbox,
        transport,
        batches: Batches {
            builder: batch::Builder::new(config.limits),
            ready: VecDeque::new(),
            gzip: config.gzip,
        },
        abandoned: 0,
        idle_poll: config.limits.max_age,
        queue_capacity: config.queue_capacity,
        deadline: deadline_seen,
        generation,
    };
    let (started, confirmation) = std::sync::mpsc::sync_channel(1);
    let thread = std::thread::Builder::new()
        .name("mcp-analytics".into())
        .spawn(move || {
            #[cfg(feature = "tracing")]
            crate::context::mark_worker_thread();
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
        .map_err(crate::Error::Worker)?;
    match confirmation.recv() {
        Ok(Ok(())) => Ok(Handle {
            commands,
            deadline,
            thread,
        }),
        Ok(Err(error)) => Err(crate::Error::Worker(error)),
        Err(_) => Err(crate::Error::Worker(std::io::Error::other(
            "the worker thread ended before starting",
        ))),
    }
}

struct Worker {
    inbox: mpsc::UnboundedReceiver<Command>,
    transport: Transport,
    batches: Batches,
    /// Events given up because the shutdown deadline passed, whichever shipment it cut short.
    abandoned: usize,
    /// Longest sleep with nothing pending: a wake-up lost to a race costs this much latency.
    idle_poll: Duration,
    queue_capacity: usize,
    /// The shutdown deadline, once `shutdown` sets it.
    deadline: watch::Receiver<Option<Instant>>,
    /// The `init` this worker belongs to (see `queue::next_generation`).
    generation: u64,
}

/// Pops between two looks at the clock while draining, and between two looks at the request
/// in flight while batching meanwhile: about a millisecond of encoding.
const POPS_PER_CHUNK: usize = 1024;

/// The open batch and the closed ones waiting to ship.
struct Batches {
    builder: batch::Builder,
    /// Closed batches not yet shipped.
    ready: VecDeque<Batch>,
    /// Whether batches are compressed: those that close while a request is in flight are
    /// compressed at once.
    gzip: bool,
}

impl Batches {
    /// Moves up to `most` queued events into batches, or fewer with [`Take::UntilClosed`];
    /// returns how many it moved.
    fn take_from_queue(&mut self, most: usize, take: Take) -> usize {
        let mut taken = 0;
        while taken < most {
            let Some(event) = queue::pop() else { break };
            taken += 1;
            if let Some(mut closed) = self.builder.push(&event) {
                // It waits behind the request in flight, if any: compress it meanwhile, so that
                // sending it does not wait for that.
                if self.gzip {
                    closed.compress();
                }
                self.ready.push_back(closed);
                if take == Take::UntilClosed {
                    break;
                }
            }
        }
        taken
    }

    /// Closes the open batch if its age limit has passed, to ship it now.
    fn close_if_due(&mut self) {
        self.ready.extend(self.builder.close_if_due(Instant::now()));
    }

    /// Closes the open batch, whatever its size, to ship it now.
    fn close(&mut self) {
        self.ready.extend(self.builder.close());
    }
}

/// Ready once there are events to take, after letting the runtime look at its sockets: a chunk
/// of encoding at a time, so that the answer to the request in flight is read within a chunk's
/// time of its arrival.
async fn events_to_take() {
    tokio::task::yield_now().await;
    if queue::len() == 0 {
        queue::WAKE.notified().await;
    }
}

/// How many queued events [`Batches::take_from_queue`] takes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Take {
    /// As many as asked.
    All,
    /// Up to the first batch that closes: while a request is in flight, one batch waits at most.
    UntilClosed,
}

/// What the worker does while a request is in flight.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Meanwhile {
    /// Takes newly queued events into the next batch (see the module docs).
    Batch,
    /// Nothing: the worker is shutting down, and what it took now could not ship.
    Wait,
}

enum Wake {
    Command(Option<Command>),
    Events,
}

impl Worker {
    async fn run(mut self) {
        loop {
            let wake = self.next_wake().await;
            // With batches ready, ship first: events are taken while they are in flight.
            if self.batches.ready.is_empty() || !matches!(wake, Wake::Events) {
                self.drain();
            }
            match wake {
                Wake::Events => {
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
                    let _ = done.send(self.abandoned);
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
                Err(TryRecvError::Empty) => Wake::Events,
            };
        }
        let builder = &self.batches.builder;
        let idle = builder.is_empty();
        queue::set_worker_idle(idle);
        if idle && queue::len() > 0 {
            // An event arrived between the last drain and the idle flag: don't sleep on it.
            queue::set_worker_idle(false);
            return Wake::Events;
        }
        let until = builder
            .deadline()
            .unwrap_or_else(|| Instant::now() + self.idle_poll);
        let wake = tokio::select! {
            biased;
            command = self.inbox.recv() => Wake::Command(command),
            () = queue::WAKE.notified() => Wake::Events,
            () = tokio::time::sleep_until(until.into()) => Wake::Events,
        };
        queue::set_worker_idle(false);
        wake
    }

    /// Moves queued events into batches. Takes at most one queue's worth per round, so busy
    /// producers cannot keep the worker from shipping or answering commands. Past the shutdown
    /// deadline nothing more can ship, so the rest is counted, not encoded; a worker superseded
    /// by a later `init` takes nothing.
    fn drain(&mut self) {
        if queue::generation() != self.generation {
            return;
        }
        let mut popped = 0;
        while popped < self.queue_capacity {
            if self.past_deadline() {
                self.abandon_queued(self.queue_capacity - popped);
                return;
            }
            let most = POPS_PER_CHUNK.min(self.queue_capacity - popped);
            let taken = self.batches.take_from_queue(most, Take::All);
            if taken < most {
                return;
            }
            popped += taken;
        }
    }

    fn past_deadline(&self) -> bool {
        self.deadline
            .borrow()
            .is_some_and(|deadline| Instant::now() >= deadline)
    }

    /// Takes up to `most` queued events and counts them as failed: the deadline passed.
    fn abandon_queued(&mut self, most: usize) {
        let abandoned = std::iter::from_fn(queue::pop).take(most).count();
        Counters::add(&COUNTERS.failed, abandoned);
        self.abandoned += abandoned;
    }

    /// Ships the batches closed so far. Those that close while these are in flight wait for
    /// the next round, so that a steady stream of events cannot hold a command back.
    async fn ship(&mut self, meanwhile: Meanwhile) {
        for _ in 0..self.batches.ready.len() {
            let Some(batch) = self.batches.ready.pop_front() else {
                break;
            };
            let mut delivery = pin!(self.transport.deliver(batch));
            let batches = &mut self.batches;
            let generation = self.generation;
            self.abandoned += loop {
                let batching = meanwhile == Meanwhile::Batch
                    && batches.ready.is_empty()
                    && queue::generation() == generation;
                tokio::select! {
                    biased;
                    abandoned = &mut delivery => break abandoned,
                    () = events_to_take(), if batching => {
                        batches.take_from_queue(POPS_PER_CHUNK, Take::UntilClosed);
                    }
                }
            };
        }
    }
}
