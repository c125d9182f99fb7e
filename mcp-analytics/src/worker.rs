//! The background worker: one thread with its own current-thread tokio runtime, so it works in
//! sync programs and beside any runtime the server uses. It drains the queue into batches and
//! ships them, answering flush and shutdown requests in between.

use std::collections::VecDeque;
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
        builder: batch::Builder::new(config.limits),
        ready: VecDeque::new(),
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
    builder: batch::Builder,
    /// Closed batches not yet shipped.
    ready: VecDeque<Batch>,
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

/// Pops between two looks at the clock while draining.
const DEADLINE_CHECK_EVERY: usize = 1024;

enum Wake {
    Command(Option<Command>),
    Events,
}

impl Worker {
    async fn run(mut self) {
        loop {
            let wake = self.next_wake().await;
            self.drain();
            match wake {
                Wake::Events => {
                    if let Some(batch) = self.builder.close_if_due(Instant::now()) {
                        self.ready.push_back(batch);
                    }
                    self.ship().await;
                }
                Wake::Command(Some(Command::Flush(done))) => {
                    self.ready.extend(self.builder.close());
                    self.ship().await;
                    let _ = done.send(());
                }
                Wake::Command(Some(Command::Shutdown(done))) => {
                    self.ready.extend(self.builder.close());
                    self.ship().await;
                    let _ = done.send(self.abandoned);
                    return;
                }
                // Every handle is gone: nobody can flush or shut down any more.
                Wake::Command(None) => return,
            }
        }
    }

    /// Sleeps until a command, a wake-up from a producer, or the open batch's age limit.
    async fn next_wake(&mut self) -> Wake {
        let idle = self.builder.is_empty();
        queue::set_worker_idle(idle);
        if idle && queue::len() > 0 {
            // An event arrived between the last drain and the idle flag: don't sleep on it.
            queue::set_worker_idle(false);
            return Wake::Events;
        }
        let until = self
            .builder
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
        for popped in 0..self.queue_capacity {
            if popped % DEADLINE_CHECK_EVERY == 0 && self.past_deadline() {
                self.abandon_queued(self.queue_capacity - popped);
                return;
            }
            let Some(event) = queue::pop() else { break };
            self.ready.extend(self.builder.push(&event));
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

    /// Ships every closed batch.
    async fn ship(&mut self) {
        while let Some(batch) = self.ready.pop_front() {
            self.abandoned += self.transport.deliver(batch).await;
        }
    }
}
