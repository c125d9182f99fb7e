//! The process-wide state between the code that records rows and the worker that ships them:
//! whether rows are accepted, which worker consumes them, the queue itself, and the wake-up.
//!
//! Handlers push; only the worker pops. When the queue is full a row is dropped and counted,
//! and a single warning goes to stderr. Rows recorded before `init()` wait here and ship once
//! the worker starts.
//!
//! Waking the worker: while rows come in, the worker looks at the queue on its own, often
//! enough that a thread's ring does not fill in between; producers wake it only when it said
//! it is idle (nothing pending, so nothing else would wake it), and when a thread's ring filled
//! (a burst the worker's rounds did not keep up with). A handler thus makes the wake-up
//! syscall once per idle period or per ring it fills, not per call. A lost wake-up costs
//! latency, never a row: the worker also polls.
//!
//! What a push reads that others write would cost it a cache miss each time the writer wrote:
//! the flags and counters the worker writes sit on cache lines of their own.

use std::sync::OnceLock;
use std::sync::atomic::Ordering::{Relaxed, Release, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize};

use crossbeam_utils::CachePadded;
use tokio::sync::Notify;

use crate::diag;
use crate::queue::{Queue, queue_item};
use crate::rows::{CallRow, LogRow, Row};
use crate::stats::COUNTERS;

/// How many rows may wait for the worker unless the builder says otherwise: at 50,000 calls a
/// second, a third of a second of calls, or 1 MiB of memory.
pub(crate) const DEFAULT_CAPACITY: usize = 16_384;

/// Log lines may hold at most this part of the queue's capacity, so that a storm of them leaves
/// the rest to handler calls.
const LOG_SHARE: usize = 2; // one half

/// Whether recorded rows are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum State {
    /// Not initialized yet: rows wait in the queue.
    Pending = 0,
    /// A worker drains the queue.
    Running = 1,
    /// A start failed: rows are dropped until a successful `init()`.
    Disabled = 2,
    /// Shut down: rows are dropped until the next `init()`.
    Stopped = 3,
}

/// Read by every push; written by `init` and `shutdown` only.
static STATE: CachePadded<AtomicU8> = CachePadded::new(AtomicU8::new(State::Pending as u8));
/// Which `init` the current worker belongs to. A worker that a timed-out shutdown left behind
/// sees a newer generation and stops taking rows, so one worker at most consumes the queue.
static GENERATION: CachePadded<AtomicU64> = CachePadded::new(AtomicU64::new(0));
static QUEUE: OnceLock<Queue<Row>> = OnceLock::new();
queue_item!(Row);
/// Read by every push; written when the worker goes idle and by the push that wakes it.
static WORKER_IDLE: CachePadded<AtomicBool> = CachePadded::new(AtomicBool::new(false));
/// Log lines queued now: they may take a [`LOG_SHARE`] of the queue at most.
static LOG_LINES: CachePadded<AtomicUsize> = CachePadded::new(AtomicUsize::new(0));

static QUEUE_FULL: diag::Once = diag::Once::new();
static NOT_ACCEPTING: diag::Once = diag::Once::new();
static LOG_SHARE_FULL: diag::Once = diag::Once::new();

/// Wakes the worker; see the module docs for when. Padded: the worker writes it each time it
/// waits.
pub(crate) static WAKE: CachePadded<Notify> = CachePadded::new(Notify::const_new());

pub(crate) fn set_state(state: State) {
    STATE.store(state as u8, Relaxed);
}

pub(crate) fn state() -> State {
    match STATE.load(Relaxed) {
        0 => State::Pending,
        1 => State::Running,
        2 => State::Disabled,
        _ => State::Stopped,
    }
}

/// Starts a new generation of worker; returns its number.
pub(crate) fn next_generation() -> u64 {
    GENERATION.fetch_add(1, Relaxed) + 1
}

/// The queue, created with `capacity` unless rows recorded earlier already created it.
/// Returns its capacity, which is `capacity` unless it already existed.
pub(crate) fn create_queue(capacity: usize) -> usize {
    QUEUE.get_or_init(|| Queue::new(capacity)).capacity()
}

fn queue() -> &'static Queue<Row> {
    // Rows recorded before `init()` chose a capacity.
    QUEUE.get_or_init(|| Queue::new(DEFAULT_CAPACITY))
}

/// Rows in the queue now.
pub(crate) fn queued() -> usize {
    QUEUE.get().map_or(0, Queue::len)
}

/// The hot path: hands a finished call to the worker, or drops and counts it.
#[inline]
pub(crate) fn push_call(call: CallRow) {
    push(Row::Call(call));
}

/// Queues a log line, unless log lines hold their share of the queue already.
// Only the `tracing` layer makes log lines.
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) fn push_log(line: Box<LogRow>) {
    let share = queue().capacity().div_ceil(LOG_SHARE);
    if LOG_LINES.fetch_add(1, Relaxed) >= share {
        LOG_LINES.fetch_sub(1, Relaxed);
        COUNTERS.dropped.add(1);
        COUNTERS.dropped_log_lines.add(1);
        LOG_SHARE_FULL.report(format_args!(
            "log lines fill their half of the event queue: log lines are being dropped, handler \
             calls keep the other half (see mcp_analytics::stats())"
        ));
        return;
    }
    if !push(Row::Log(line)) {
        LOG_LINES.fetch_sub(1, Relaxed);
    }
}

/// Queues `row`, or drops and counts it; returns whether it was queued.
#[inline]
fn push(row: Row) -> bool {
    if STATE.load(Relaxed) > State::Running as u8 {
        COUNTERS.dropped.add(1);
        NOT_ACCEPTING.report(format_args!(
            "analytics is disabled or shut down: events are counted as dropped"
        ));
        return false;
    }
    match queue().push(row) {
        Ok(pushed) => {
            if pushed.wake || (WORKER_IDLE.load(Relaxed) && WORKER_IDLE.swap(false, Relaxed)) {
                WAKE.notify_one();
            }
            true
        }
        Err(_full) => {
            COUNTERS.dropped.add(1);
            QUEUE_FULL.report(format_args!(
                "the event queue is full: events are being dropped (see mcp_analytics::stats())"
            ));
            false
        }
    }
}

/// The worker says whether it has nothing pending, i.e. whether the next push must wake it.
/// Stored only when it changes: every push reads the flag.
pub(crate) fn set_worker_idle(idle: bool) {
    if WORKER_IDLE.load(Relaxed) != idle {
        WORKER_IDLE.store(idle, Relaxed);
    }
}

/// Workers popping rows now; see [`supersede`].
static POPPING: CachePadded<AtomicUsize> = CachePadded::new(AtomicUsize::new(0));

/// Takes up to `most` queued rows for the worker of `generation`, handing each to `each` until
/// it says to stop; returns how many it took, or `None` when a later generation superseded the
/// worker (it must take no more).
pub(crate) fn pop_for(
    generation: u64,
    most: usize,
    mut each: impl FnMut(Row) -> bool,
) -> Option<usize> {
    // Announce the pops, then check the generation; `supersede` does the opposite, so either
    // this sees the new generation, or `supersede` sees these pops and waits for them.
    POPPING.fetch_add(1, SeqCst);
    let current = GENERATION.load(SeqCst) == generation;
    let mut taken = 0;
    if current && let Some(queue) = QUEUE.get() {
        taken = queue.drain(most, |row| each(count_taken(row)));
    }
    POPPING.fetch_sub(1, Release);
    current.then_some(taken)
}

/// Stops the worker of `generation` from taking any more rows, and waits until it has finished
/// the pops it started (a chunk's worth at most), so that what it took can be counted exactly.
pub(crate) fn supersede(generation: u64) {
    let _ = GENERATION.compare_exchange(generation, generation + 1, SeqCst, SeqCst);
    while POPPING.load(SeqCst) > 0 {
        std::thread::yield_now();
    }
}

/// Takes a queued row, counting it as taken.
pub(crate) fn pop() -> Option<Row> {
    QUEUE.get()?.pop().map(count_taken)
}

/// A row the worker took out of the queue: counted as taken, and out of it.
fn count_taken(row: Row) -> Row {
    COUNTERS.taken.add(1);
    left_queue(row)
}

/// Takes a row out of the queue.
fn take() -> Option<Row> {
    QUEUE.get()?.pop().map(left_queue)
}

/// A row out of the queue: a log line gives its place in the log share back.
fn left_queue(row: Row) -> Row {
    if matches!(row, Row::Log(_)) {
        LOG_LINES.fetch_sub(1, Relaxed);
    }
    row
}

/// Empties the queue, counting what it held as dropped: what no worker will ever ship.
pub(crate) fn discard_queued() -> usize {
    let discarded = std::iter::from_fn(take).count();
    COUNTERS.dropped.add(discarded);
    discarded
}
