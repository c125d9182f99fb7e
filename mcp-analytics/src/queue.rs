//! The global, bounded, lock-free queue between handlers and the worker.
//!
//! Handlers push; only the worker pops. A push is one compare-and-swap: no lock, no allocation,
//! no syscall. When the queue is full the event is dropped and counted, and a single warning goes
//! to stderr. Events recorded before `init()` wait here and ship once the worker starts.
//!
//! Waking the worker: it sleeps until a timer or a wake-up. Producers wake it in two cases only:
//! when it said it is idle (nothing pending, so nothing else would wake it), and every
//! [`WAKE_EVERY`] pushes of a thread (so a burst is shipped before the queue fills). Both are
//! amortized: a handler makes the wake-up syscall at most once per [`WAKE_EVERY`] calls, or once
//! per idle period. A lost wake-up costs latency, never an event: the worker also polls.

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};

use crossbeam_queue::ArrayQueue;
use tokio::sync::Notify;

use crate::diag;
use crate::event::Event;
use crate::stats::{COUNTERS, Counters};

/// Queue capacity used when events are recorded before `init()` chose one.
pub(crate) const DEFAULT_CAPACITY: usize = 16_384;

/// Pushes per thread between two wake-ups of a busy worker.
const WAKE_EVERY: u32 = 1024;

/// Whether recorded events are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum State {
    /// Not initialized yet: events wait in the queue.
    Pending = 0,
    /// A worker drains the queue.
    Running = 1,
    /// No credentials or a bad configuration: events are dropped.
    Disabled = 2,
    /// Shut down: events are dropped until the next `init()`.
    Stopped = 3,
}

static STATE: AtomicU8 = AtomicU8::new(State::Pending as u8);
/// Which `init` the current worker belongs to. A worker that a timed-out shutdown left behind
/// sees a newer generation and stops taking events, so one worker at most consumes the queue.
static GENERATION: AtomicU64 = AtomicU64::new(0);
static QUEUE: OnceLock<ArrayQueue<Event>> = OnceLock::new();
static WORKER_IDLE: AtomicBool = AtomicBool::new(false);
static QUEUE_FULL: diag::Once = diag::Once::new();
static DISABLED: diag::Once = diag::Once::new();

/// Wakes the worker; see the module docs for when.
pub(crate) static WAKE: Notify = Notify::const_new();

thread_local! {
    static PUSHES: Cell<u32> = const { Cell::new(0) };
}

pub(crate) fn set_state(state: State) {
    STATE.store(state as u8, Relaxed);
}

/// Starts a new generation of worker; returns its number.
pub(crate) fn next_generation() -> u64 {
    GENERATION.fetch_add(1, Relaxed) + 1
}

pub(crate) fn generation() -> u64 {
    GENERATION.load(Relaxed)
}

pub(crate) fn state() -> State {
    match STATE.load(Relaxed) {
        0 => State::Pending,
        1 => State::Running,
        2 => State::Disabled,
        _ => State::Stopped,
    }
}

/// The queue, created with `capacity` unless events recorded earlier already created it.
/// Returns the queue and whether it has the asked capacity.
pub(crate) fn get_or_create(capacity: usize) -> (&'static ArrayQueue<Event>, bool) {
    let queue = QUEUE.get_or_init(|| ArrayQueue::new(capacity));
    (queue, queue.capacity() == capacity)
}

fn queue() -> &'static ArrayQueue<Event> {
    QUEUE.get_or_init(|| ArrayQueue::new(DEFAULT_CAPACITY))
}

/// Events in the queue now.
pub(crate) fn len() -> usize {
    QUEUE.get().map_or(0, ArrayQueue::len)
}

/// The hot path: hands a finished call to the worker, or drops and counts it.
#[inline]
pub(crate) fn push(event: Event) {
    if STATE.load(Relaxed) > State::Running as u8 {
        Counters::add(&COUNTERS.dropped, 1);
        DISABLED.report(format_args!(
            "analytics is disabled or shut down: events are counted as dropped"
        ));
        return;
    }
    match queue().push(event) {
        Ok(()) => wake_if_due(),
        Err(_full) => {
            Counters::add(&COUNTERS.dropped, 1);
            QUEUE_FULL.report(format_args!(
                "the event queue is full: events are being dropped (see mcp_analytics::stats())"
            ));
        }
    }
}

#[inline]
fn wake_if_due() {
    if WORKER_IDLE.load(Relaxed) && WORKER_IDLE.swap(false, Relaxed) {
        WAKE.notify_one();
        return;
    }
    let due = PUSHES
        .try_with(|pushes| {
            let n = pushes.get().wrapping_add(1);
            pushes.set(n);
            n % WAKE_EVERY == 0
        })
        .unwrap_or(false);
    if due {
        WAKE.notify_one();
    }
}

/// The worker says whether it has nothing pending, i.e. whether the next push must wake it.
pub(crate) fn set_worker_idle(idle: bool) {
    WORKER_IDLE.store(idle, Relaxed);
}

/// Takes the oldest queued event; only the worker (or a shutdown that outlived it) calls this.
pub(crate) fn pop() -> Option<Event> {
    let event = QUEUE.get()?.pop()?;
    Counters::add(&COUNTERS.taken, 1);
    Some(event)
}

/// Empties the queue, counting what it held as dropped. Used when analytics is disabled.
pub(crate) fn discard_all() -> usize {
    let mut discarded = 0;
    while let Some(event) = QUEUE.get().and_then(ArrayQueue::pop) {
        drop(event);
        discarded += 1;
    }
    Counters::add(&COUNTERS.dropped, discarded);
    discarded
}
