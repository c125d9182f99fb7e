//! Starting, flushing and stopping the worker: `init`, the [`Guard`], `flush` and `shutdown`.

use std::sync::mpsc::{RecvTimeoutError, sync_channel};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::config::Builder;
use crate::queue::{self, State};
use crate::worker::{self, Command, Handle};
use crate::{Error, diag};

/// The running worker, if any. Locked by `init`, `flush` and `shutdown` only, never by handlers.
static WORKER: Mutex<Option<Handle>> = Mutex::new(None);

fn worker_slot() -> MutexGuard<'static, Option<Handle>> {
    // The slot stays consistent whatever panicked while holding it: it is only ever replaced.
    WORKER.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn try_init(builder: Builder) -> Result<Guard, Error> {
    let mut slot = worker_slot();
    if slot.is_some() {
        return Err(Error::AlreadyInitialized);
    }
    let config = builder.resolve()?;
    let shutdown_timeout = config.shutdown_timeout;
    // Calibrates the clock now rather than in the first handler call.
    crate::event::clock();
    let (queue, as_asked) = queue::get_or_create(config.queue_capacity);
    if !as_asked {
        diag::report(format_args!(
            "events were recorded before init(): the queue keeps its capacity of {} events",
            queue.capacity()
        ));
    }
    let handle = worker::spawn(config, queue::next_generation())?;
    queue::set_state(State::Running);
    *slot = Some(handle);
    Ok(Guard {
        armed: true,
        shutdown_timeout,
    })
}

pub(crate) fn init(builder: Builder) -> Guard {
    match try_init(builder) {
        Ok(guard) => guard,
        Err(Error::AlreadyInitialized) => {
            diag::report(format_args!(
                "init() was called again while running: the first configuration stays"
            ));
            Guard::inert()
        }
        Err(error) => {
            diag::report(format_args!("{error}; analytics is disabled"));
            queue::set_state(State::Disabled);
            queue::discard_all();
            Guard::inert()
        }
    }
}

/// Keeps analytics running; dropping it ships what is queued, waiting at most the shutdown
/// timeout, then stops the worker. Returned by [`init`](crate::init).
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
/// [`shutdown`](crate::shutdown) yourself on those paths.
// The example's point is `main`'s scope.
#[allow(clippy::needless_doctest_main)]
#[must_use = "dropping the guard shuts analytics down at once: bind it, `let _analytics = mcp_analytics::init();`"]
#[derive(Debug)]
pub struct Guard {
    armed: bool,
    shutdown_timeout: Duration,
}

impl Guard {
    /// A guard that does nothing on drop: the result of an `init` that did not start a worker.
    fn inert() -> Self {
        Self {
            armed: false,
            shutdown_timeout: Duration::ZERO,
        }
    }

    /// Ships everything recorded so far, waiting at most the configured shutdown timeout.
    ///
    /// ```
    /// let analytics = mcp_analytics::init();
    /// // Ok, or why not (for example: analytics is not configured here).
    /// let _ = analytics.flush();
    /// ```
    pub fn flush(&self) -> Result<(), Error> {
        flush(self.shutdown_timeout)
    }

    /// Ships what is queued and stops the worker, waiting at most the shutdown timeout; what
    /// dropping the guard does, with the outcome returned instead of reported on stderr.
    ///
    /// ```
    /// let analytics = mcp_analytics::init();
    /// if let Err(error) = analytics.shutdown() {
    ///     eprintln!("analytics: {error}");
    /// }
    /// ```
    pub fn shutdown(mut self) -> Result<(), Error> {
        if std::mem::take(&mut self.armed) {
            shutdown(self.shutdown_timeout)
        } else {
            Ok(())
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.armed
            && let Err(error) = shutdown(self.shutdown_timeout)
        {
            diag::report(format_args!("shutdown: {error}"));
        }
    }
}

/// Events recorded and neither delivered nor given up on.
fn undelivered() -> u64 {
    let stats = crate::stats();
    stats.enqueued.saturating_sub(stats.sent + stats.failed)
}

pub(crate) fn flush(timeout: Duration) -> Result<(), Error> {
    let commands = match &*worker_slot() {
        Some(handle) => handle.commands.clone(),
        None if queue::state() == State::Pending => return Err(Error::NotInitialized),
        // Disabled or stopped: every event is already accounted for as dropped.
        None => return Ok(()),
    };
    let (done, answer) = sync_channel(1);
    if commands.send(Command::Flush(done)).is_err() {
        return Err(Error::NotInitialized);
    }
    match answer.recv_timeout(timeout) {
        Ok(()) => Ok(()),
        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => Err(Error::Timeout {
            undelivered: undelivered(),
            timeout,
        }),
    }
}

pub(crate) fn shutdown(timeout: Duration) -> Result<(), Error> {
    let started = Instant::now();
    let Some(handle) = worker_slot().take() else {
        return Ok(());
    };
    // From here on, new events are dropped and counted, never stranded in the queue unseen.
    queue::set_state(State::Stopped);
    // The worker stops sending a little before the caller stops waiting, so its answer, with the
    // count of what it abandoned, arrives within `timeout`.
    // A fifth (at most 200 ms): room for a busy machine to schedule the worker's last steps.
    let margin = (timeout / 5).min(Duration::from_millis(200));
    handle
        .deadline
        .send_replace(Some(started + timeout - margin));
    let (done, answer) = sync_channel(1);
    if handle.commands.send(Command::Shutdown(done)).is_err() {
        return Err(Error::Timeout {
            undelivered: undelivered(),
            timeout,
        });
    }
    match answer.recv_timeout(timeout.saturating_sub(started.elapsed())) {
        Ok(abandoned) => {
            // It answered as its last act: joining takes no time.
            let _ = handle.thread.join();
            // A handler that saw the pipeline running just before it stopped may have pushed
            // after the worker's last drain: count such stragglers as dropped, so every event
            // ends up sent, failed or dropped.
            queue::discard_all();
            match abandoned {
                0 => Ok(()),
                n => Err(Error::Timeout {
                    undelivered: n as u64,
                    timeout,
                }),
            }
        }
        // Leave the thread to finish on its own: waiting longer is what the deadline forbids.
        Err(_) => Err(Error::Timeout {
            undelivered: undelivered(),
            timeout,
        }),
    }
}
