//! The global, bounded, lock-free queue between handlers and the worker.
//!
//! Handlers push; only the worker pops. A push is one compare-and-swap: no lock, no allocation,
//! no syscall. When the queue is full the event is dropped and counted, and a single warning goes
//! to stderr. Events recorded before `init()` wait here and ship once the worker starts.
//!
//! The queue is sharded: each thread pushes to a home shard of its own, assigned round-robin on
//! its first push, so that threads recording at once do not fight over one cache line (on two
//! cores, one shared queue tripled the cost of a push). A full shard hands the event to the next,
//! so the queue as a whole holds its capacity; the worker pops the shards in turn.
//!
//! Waking the worker: it sleeps until a timer or a wake-up. Producers wake it in two cases only:
//! when it said it is idle (nothing pending, so nothing else would wake it), and every
//! [`WAKE_EVERY`] pushes of a thread (so a burst is shipped before the queue fills). Both are
//! amortized: a handler makes the wake-up syscall at most once per [`WAKE_EVERY`] calls, or once
//! per idle period. A lost wake-up costs latency, never an event: the worker also polls.

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering::Relaxed};

use crossbeam_queue::ArrayQueue;
use tokio::sync::Notify;

use crate::diag;
use crate::event::Event;
use crate::stats::{COUNTERS, Counters};

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
static QUEUE: OnceLock<Queue> = OnceLock::new();
static WORKER_IDLE: AtomicBool = AtomicBool::new(false);
static QUEUE_FULL: diag::Once = diag::Once::new();
static DISABLED: diag::Once = diag::Once::new();

/// Wakes the worker; see the module docs for when.
pub(crate) static WAKE: Notify = Notify::const_new();

/// Shards of at least this many events each, and at most [`MAX_SHARDS`] of them.
const MIN_SHARD_CAPACITY: usize = 1024;
const MAX_SHARDS: usize = 8;

/// Home shards are handed out in turn: two threads get different shards.
static NEXT_HOME: AtomicUsize = AtomicUsize::new(0);

/// What a producing thread keeps: its home shard and its pushes since its last wake-up call.
/// Plain `Cell`s with `const` initializers: no lazy initialization or destructor on access.
struct Producer {
    home: Cell<usize>,
    pushes: Cell<u32>,
}

const UNASSIGNED: usize = usize::MAX;

thread_local! {
    static PRODUCER: Producer = const {
        Producer {
            home: Cell::new(UNASSIGNED),
            pushes: Cell::new(0),
        }
    };
}

/// The queue: shards of one capacity between them.
pub(crate) struct Queue {
    shards: Box<[ArrayQueue<Event>]>,
    /// The shard the worker pops first next time: each pop starts one further, so no shard waits
    /// behind a busy one.
    next_pop: AtomicUsize,
    /// Set when a push found every shard full, cleared by the next pop. While it is set, a push
    /// whose home shard is full drops at once instead of trying every other shard: a full queue
    /// (the endpoint down for a while) must not make each call several times dearer.
    full: AtomicBool,
}

impl Queue {
    fn new(capacity: usize) -> Self {
        let count = (capacity / MIN_SHARD_CAPACITY).clamp(1, MAX_SHARDS);
        // The first `capacity % count` shards take one event more.
        let shards = (0..count)
            .map(|i| ArrayQueue::new(capacity / count + usize::from(i < capacity % count)))
            .collect();
        Self {
            shards,
            next_pop: AtomicUsize::new(0),
            full: AtomicBool::new(false),
        }
    }

    /// How many events it holds at most.
    pub(crate) fn capacity(&self) -> usize {
        self.shards.iter().map(ArrayQueue::capacity).sum()
    }

    fn len(&self) -> usize {
        self.shards.iter().map(ArrayQueue::len).sum()
    }

    /// Pushes onto shard `home`, or the next one with room; returns the shard that took it.
    #[inline]
    fn push(&self, event: Event, home: usize) -> Result<usize, Event> {
        let mut event = match self.shards[home].push(event) {
            Ok(()) => return Ok(home),
            Err(refused) if self.full.load(Relaxed) => return Err(refused),
            Err(refused) => refused,
        };
        let count = self.shards.len();
        for shard in (home + 1..count).chain(0..home) {
            match self.shards[shard].push(event) {
                Ok(()) => return Ok(shard),
                Err(refused) => event = refused,
            }
        }
        self.full.store(true, Relaxed);
        Err(event)
    }

    fn pop(&self) -> Option<Event> {
        let count = self.shards.len();
        let first = self.next_pop.load(Relaxed) % count;
        let event = (first..count).chain(0..first).find_map(|shard| {
            let event = self.shards[shard].pop()?;
            self.next_pop.store(shard + 1, Relaxed);
            Some(event)
        })?;
        if self.full.load(Relaxed) {
            self.full.store(false, Relaxed);
        }
        Some(event)
    }
}

/// The calling thread's home shard among `count`: assigned on its first push, and moved to the
/// shard that took its last event when its own was full, so that a thread whose shard filled
/// does not try it again on every push.
#[inline]
fn home_shard(producer: &Producer, count: usize) -> usize {
    let mut home = producer.home.get();
    if home == UNASSIGNED {
        home = NEXT_HOME.fetch_add(1, Relaxed) % count;
        producer.home.set(home);
    }
    home
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
pub(crate) fn get_or_create(capacity: usize) -> (&'static Queue, bool) {
    let queue = QUEUE.get_or_init(|| Queue::new(capacity));
    (queue, queue.capacity() == capacity)
}

fn queue() -> &'static Queue {
    // Events recorded before `init()` chose a capacity.
    QUEUE.get_or_init(|| Queue::new(crate::DEFAULT_QUEUE_CAPACITY))
}

/// Events in the queue now.
pub(crate) fn len() -> usize {
    QUEUE.get().map_or(0, Queue::len)
}

/// The hot path: hands a finished call to the worker, or drops and counts it. Returns whether
/// the event was queued.
#[inline]
pub(crate) fn push(event: Event) -> bool {
    if STATE.load(Relaxed) > State::Running as u8 {
        Counters::add(&COUNTERS.dropped, 1);
        DISABLED.report(format_args!(
            "analytics is disabled or shut down: events are counted as dropped"
        ));
        return false;
    }
    let queue = queue();
    // One look at the thread's locals: its home shard, and whether this push is one that wakes
    // a busy worker. A thread whose locals are being destroyed pushes from the first shard.
    let (home, wake_due) = PRODUCER
        .try_with(|producer| {
            let pushes = producer.pushes.get().wrapping_add(1);
            producer.pushes.set(pushes);
            (
                home_shard(producer, queue.shards.len()),
                pushes % WAKE_EVERY == 0,
            )
        })
        .unwrap_or((0, false));
    match queue.push(event, home) {
        Ok(shard) => {
            if shard != home {
                let _ = PRODUCER.try_with(|producer| producer.home.set(shard));
            }
            if wake_due || (WORKER_IDLE.load(Relaxed) && WORKER_IDLE.swap(false, Relaxed)) {
                WAKE.notify_one();
            }
            true
        }
        Err(_full) => {
            Counters::add(&COUNTERS.dropped, 1);
            QUEUE_FULL.report(format_args!(
                "the event queue is full: events are being dropped (see mcp_analytics::stats())"
            ));
            false
        }
    }
}

/// Log lines queued now: they may take [`LOG_SHARE`] of the queue at most.
#[cfg(feature = "tracing")]
static LOG_LINES: AtomicUsize = AtomicUsize::new(0);
#[cfg(feature = "tracing")]
static LOG_SHARE_FULL: diag::Once = diag::Once::new();

/// Log lines may hold at most this part of the queue's capacity, so that a storm of them leaves
/// the rest to handler calls.
#[cfg(feature = "tracing")]
const LOG_SHARE: usize = 2; // one half

/// Queues a log line of the `tracing` layer, unless log lines hold their share already.
#[cfg(feature = "tracing")]
pub(crate) fn push_log(event: Event) {
    let share = queue().capacity().div_ceil(LOG_SHARE);
    if LOG_LINES.fetch_add(1, Relaxed) >= share {
        LOG_LINES.fetch_sub(1, Relaxed);
        Counters::add(&COUNTERS.dropped, 1);
        Counters::add(&COUNTERS.dropped_log_lines, 1);
        LOG_SHARE_FULL.report(format_args!(
            "log lines fill their half of the event queue: log lines are being dropped, handler \
             calls keep the other half (see mcp_analytics::stats())"
        ));
        return;
    }
    if !push(event) {
        LOG_LINES.fetch_sub(1, Relaxed);
    }
}

/// Counts a log line out of the queue.
#[cfg(feature = "tracing")]
fn taken(event: &Event) {
    if event.is_log() {
        LOG_LINES.fetch_sub(1, Relaxed);
    }
}

#[cfg(not(feature = "tracing"))]
fn taken(_: &Event) {}

/// The worker says whether it has nothing pending, i.e. whether the next push must wake it.
pub(crate) fn set_worker_idle(idle: bool) {
    WORKER_IDLE.store(idle, Relaxed);
}

/// Takes the oldest queued event; only the worker (or a shutdown that outlived it) calls this.
pub(crate) fn pop() -> Option<Event> {
    let event = QUEUE.get()?.pop()?;
    taken(&event);
    Counters::add(&COUNTERS.taken, 1);
    Some(event)
}

/// Empties the queue, counting what it held as dropped. Used when analytics is disabled.
pub(crate) fn discard_all() -> usize {
    let mut discarded = 0;
    while let Some(event) = QUEUE.get().and_then(Queue::pop) {
        taken(&event);
        drop(event);
        discarded += 1;
    }
    Counters::add(&COUNTERS.dropped, discarded);
    discarded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Callsite, Kind, Outcome};

    static SITE: Callsite = Callsite::new(Kind::Tool, "t", "t", "app", "1.0.0");

    /// An event told apart by its duration.
    fn event(n: u64) -> Event {
        Event {
            callsite: &SITE,
            session: None,
            details: None,
            started: 0,
            duration_ns: n,
            outcome: Outcome::Ok,
        }
    }

    #[test]
    fn shards_split_the_capacity_exactly() {
        for (capacity, shards) in [(1, 1), (1_000, 1), (2_048, 2), (16_384, 8), (100_003, 8)] {
            let queue = Queue::new(capacity);
            assert_eq!(queue.shards.len(), shards, "capacity {capacity}");
            assert_eq!(queue.capacity(), capacity);
        }
    }

    #[test]
    fn a_full_shard_passes_events_on_until_the_whole_queue_is_full() {
        let queue = Queue::new(4_096); // 4 shards of 1,024
        let mut used = Vec::new();
        for n in 0..4_096 {
            used.push(queue.push(event(n), 2).expect("room somewhere"));
        }
        // Home first, then the next shards in turn, wrapping around.
        assert!(used[..1_024].iter().all(|&shard| shard == 2));
        assert!(used[1_024..2_048].iter().all(|&shard| shard == 3));
        assert!(used[2_048..3_072].iter().all(|&shard| shard == 0));
        assert!(used[3_072..].iter().all(|&shard| shard == 1));
        assert_eq!(queue.len(), 4_096);
        let refused = queue.push(event(4_096), 0).expect_err("the queue is full");
        assert_eq!(refused.duration_ns, 4_096, "the refused event comes back");

        // Room made anywhere is found again: a pop clears the full queue's shortcut.
        assert!(queue.pop().is_some());
        assert!(
            queue.push(event(4_097), 1).is_ok(),
            "the freed slot takes it"
        );
        assert!(queue.push(event(4_098), 1).is_err());
    }

    #[test]
    fn pops_take_the_shards_in_turn_and_lose_nothing() {
        let queue = Queue::new(3_072); // 3 shards of 1,024
        for n in 0..30 {
            queue.push(event(n), (n % 3) as usize).unwrap();
        }
        let first: Vec<u64> = (0..3).map(|_| queue.pop().unwrap().duration_ns).collect();
        let mut shards: Vec<u64> = first.iter().map(|n| n % 3).collect();
        shards.sort_unstable();
        assert_eq!(shards, [0, 1, 2], "one from each shard: {first:?}");
        let mut popped: Vec<u64> = first;
        popped.extend(std::iter::from_fn(|| queue.pop()).map(|e| e.duration_ns));
        popped.sort_unstable();
        assert_eq!(popped, (0..30).collect::<Vec<_>>());
    }
}
