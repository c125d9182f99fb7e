//! Starting, flushing and stopping the worker: `init`, `flush`, `shutdown` and the [`Guard`].

use std::sync::mpsc::{RecvTimeoutError, sync_channel};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::config::Builder;
use crate::error::Error;
use crate::global::{self, State};
use crate::panic_hook;
use crate::stats::COUNTERS;
use crate::stats::LEDGER;
use crate::worker::{self, Command, Handle};
use crate::{clock, diag};

/// The running worker, if any. Locked by `init`, `flush` and `shutdown` only, never by handlers.
static WORKER: Mutex<Option<Handle>> = Mutex::new(None);

fn worker_slot() -> MutexGuard<'static, Option<Handle>> {
    // The slot stays consistent whatever panicked while holding it: it is only ever replaced.
    WORKER.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Builder {
    /// Starts analytics; on any problem, says so once on stderr and stays disabled, as
    /// [`try_init`](Builder::try_init) does without the message. Never panics. A second call
    /// while running warns and returns a guard that does nothing.
    ///
    /// ```
    /// let _analytics = mcp_analytics::builder().datasource("mcp_logs").init();
    /// ```
    pub fn init(self) -> Guard {
        match self.try_init() {
            Ok(guard) => guard,
            Err(Error::AlreadyInitialized) => {
                diag::report(format_args!(
                    "init() was called again while running: the first configuration stays"
                ));
                Guard::inert()
            }
            Err(error) => {
                let error = diag::with_causes(&error);
                diag::report(format_args!("{error}; analytics is disabled"));
                Guard::inert()
            }
        }
    }

    /// Starts analytics, or says why not. A failed start disables analytics: events recorded
    /// so far, and until a later `init` succeeds, are dropped and counted in
    /// [`Stats::dropped`](crate::Stats::dropped), never left to pile up. A second call while
    /// running is refused and changes nothing.
    ///
    /// ```
    /// match mcp_analytics::builder().read_env(false).try_init() {
    ///     Ok(_analytics) => { /* serve */ }
    ///     Err(mcp_analytics::Error::MissingToken) => eprintln!("analytics off: no token"),
    ///     Err(error) => eprintln!("analytics off: {error}"),
    /// }
    /// ```
    pub fn try_init(self) -> Result<Guard, Error> {
        let mut slot = worker_slot();
        if slot.is_some() {
            return Err(Error::AlreadyInitialized);
        }
        match start(self) {
            Ok((handle, shutdown_timeout)) => {
                let generation = handle.generation;
                *slot = Some(handle);
                Ok(Guard {
                    generation: Some(generation),
                    shutdown_timeout,
                })
            }
            Err(error) => {
                global::set_state(State::Disabled);
                global::discard_queued();
                Err(error)
            }
        }
    }
}

/// Resolves the configuration and starts a worker for it.
fn start(builder: Builder) -> Result<(Handle, Duration), Error> {
    let config = builder.resolve()?;
    let shutdown_timeout = config.shutdown_timeout;
    let panic_messages = config.panic_messages;
    // Calibrates the clock now rather than in the first handler call.
    clock::clock();
    let capacity = global::create_queue(config.queue_capacity);
    if capacity != config.queue_capacity {
        diag::report(format_args!(
            "events were recorded before init(): the queue keeps its capacity of {capacity} events"
        ));
    }
    crate::capture::install(config.capture.clone());
    let handle = worker::spawn(config, global::next_generation())?;
    global::set_state(State::Running);
    panic_hook::start(panic_messages);
    Ok((handle, shutdown_timeout))
}

/// Keeps analytics running; dropping it ships what is queued, waiting at most the shutdown
/// timeout ([`Builder::shutdown_timeout`]), then stops the worker. With the spool
/// ([`Builder::spool`], on by default), what is undelivered is written to disk first, and what
/// the time left does not deliver waits there for the next run. Returned by
/// [`init`](crate::init).
///
/// Keep it alive for as long as the server runs, typically as a variable in `main`:
///
/// ```
/// fn main() {
///     let _analytics = mcp_analytics::init();
///     // serve...
/// } // dropped here: queued events are delivered before the process exits
/// ```
///
/// Statics never drop, and neither does anything after `std::process::exit`: call
/// [`shutdown`](crate::shutdown) yourself on those paths, or to see its outcome.
// The example's point is `main`'s scope.
#[allow(clippy::needless_doctest_main)]
#[must_use = "dropping the guard shuts analytics down at once: bind it, `let _analytics = mcp_analytics::init();`"]
#[derive(Debug)]
pub struct Guard {
    /// The worker it shuts down; `None` for a guard of an `init` that started none.
    generation: Option<u64>,
    shutdown_timeout: Duration,
}

impl Guard {
    /// A guard that does nothing on drop: the result of an `init` that did not start a worker.
    fn inert() -> Self {
        Self {
            generation: None,
            shutdown_timeout: Duration::ZERO,
        }
    }
}

impl Drop for Guard {
    /// Shuts down the worker its `init` started, if still running: after an explicit
    /// `shutdown` and a new `init`, an old guard leaves the new worker alone.
    fn drop(&mut self) {
        if let Some(generation) = self.generation
            && let Err(error) = stop(Some(generation), self.shutdown_timeout)
        {
            let error = diag::with_causes(&error);
            diag::report(format_args!("shutdown: {error}"));
        }
    }
}

/// Events recorded and neither delivered, given up on, filtered nor spooled.
fn undelivered() -> u64 {
    COUNTERS.undelivered(global::queued())
}

pub(crate) fn flush(timeout: Duration) -> Result<(), Error> {
    let commands = match &*worker_slot() {
        Some(handle) => handle.commands.clone(),
        None if global::state() == State::Pending => return Err(Error::NotInitialized),
        // Disabled or stopped: every event is already accounted for as dropped.
        None => return Ok(()),
    };
    let (done, answer) = sync_channel(1);
    if commands.send(Command::Flush(done)).is_err() {
        return Err(Error::WorkerGone);
    }
    match answer.recv_timeout(timeout) {
        Ok(()) => Ok(()),
        Err(RecvTimeoutError::Timeout) => Err(Error::Timeout {
            undelivered: undelivered(),
            timeout,
        }),
        Err(RecvTimeoutError::Disconnected) => Err(Error::WorkerGone),
    }
}

pub(crate) fn shutdown(timeout: Duration) -> Result<(), Error> {
    stop(None, timeout)
}

/// Shuts the running worker down, if it is of `generation` (or of any, for `None`).
fn stop(generation: Option<u64>, timeout: Duration) -> Result<(), Error> {
    let started = Instant::now();
    let handle = {
        let mut slot = worker_slot();
        match &*slot {
            Some(handle) if generation.is_none_or(|g| g == handle.generation) => slot.take(),
            _ => None,
        }
    };
    let Some(handle) = handle else {
        return Ok(());
    };
    // From here on, new events are dropped and counted, never stranded in the queue unseen.
    global::set_state(State::Stopped);
    panic_hook::stop();
    // The worker stops sending a little before the caller stops waiting, so its answer arrives
    // within `timeout`: a fifth (at most 200 ms), room for a busy machine to schedule its last
    // steps.
    let margin = (timeout / 5).min(Duration::from_millis(200));
    handle
        .deadline
        .send_replace(Some(started + timeout - margin));
    let (done, answer) = sync_channel(1);
    let answered = handle.commands.send(Command::Shutdown(done)).is_ok()
        && answer
            .recv_timeout(timeout.saturating_sub(started.elapsed()))
            .is_ok();
    let given_up = if answered {
        // It answered as its last act, with everything it took settled: joining takes no time.
        let _ = handle.thread.join();
        LEDGER.close(handle.generation, || {})
    } else {
        // Leave the thread to finish on its own, taking nothing more: waiting longer is what
        // the deadline forbids. What it took and did not settle, and what is still queued, is
        // given up now, and counted before this returns.
        global::supersede(handle.generation);
        LEDGER.close(handle.generation, || while global::pop().is_some() {})
    };
    // A handler that saw the pipeline running just before it stopped may have pushed after the
    // worker's last look: such stragglers count as dropped.
    global::discard_queued();
    match given_up {
        0 => Ok(()),
        undelivered => Err(Error::Timeout {
            undelivered,
            timeout,
        }),
    }
}
