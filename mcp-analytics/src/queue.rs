//! A bounded, lock-free queue with many producers and one consumer, built so that a producer
//! never waits for the consumer, nor pays for its being busy.
//!
//! Most of the capacity is cut into rings, single-producer single-consumer ring buffers
//! (`rtrb`'s), each written by one thread at a time: a thread claims a ring on its first push
//! and keeps it until the ring is full or the thread ends. A push onto one's own ring is a
//! write into the slot and a release store of the ring's tail: no compare-and-swap, no lock, no
//! allocation, no syscall, and no read of a cache line the consumer writes (the ring's head is
//! read only when the producer's last look at it says the ring is full). A queue that every
//! producer shares needs a read-modify-write on a line that the consumer pops from, which costs
//! a cache miss on every push once the consumer keeps up, as a server's worker does.
//!
//! A thread whose ring is full moves to a free ring with room, so that one busy thread can use
//! the whole queue. A thread that finds no ring of its own (more threads record at once than
//! there are rings) pushes onto the overflow, a queue that all such threads share (crossbeam's
//! `ArrayQueue`, one compare-and-swap a push). A thread being torn down, its claim given back,
//! claims a ring for each push and gives it back at once.
//!
//! What is pushed, when the consumer is woken and what a full queue means are the caller's
//! business (`global`); this module only stores, and says when a push found its ring full, the
//! moment to wake the consumer.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::LocalKey;

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use rtrb::{Consumer, Producer, PushError, RingBuffer};

/// Rings hold at least this many items: a ring fills at most this often, and a full ring is
/// when the consumer is woken.
const MIN_RING: usize = 1024;
/// Rings hold at least this share of the capacity each, so that a large queue has a few dozen
/// rings to look at rather than thousands.
const RING_SHARE: usize = 32;
/// The overflow holds at least this share of the capacity: the threads that find no ring.
const OVERFLOW_SHARE: usize = 8;

/// Pushes through the overflow between two wake-ups, per thread: the overflow has no rings to
/// fill, so producers that use it wake the consumer by count.
const OVERFLOW_WAKE_EVERY: u32 = 1024;

/// Each queue's number, so that a thread's claim on a ring names its queue.
static NEXT_QUEUE_ID: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    /// Pushes the thread made through an overflow.
    static OVERFLOW_PUSHES: Cell<u32> = const { Cell::new(0) };
}

/// What can be queued: a type with thread-locals of its own for the thread's claim on a ring
/// (a `thread_local!` cannot be generic). [`queue_item!`] implements it.
pub(crate) trait Item: Send + Sized + 'static {
    /// The calling thread's claim on a ring of a queue of this type. Without a destructor, so
    /// that reaching it is a plain access that cannot fail, even while the thread's other
    /// locals are being destroyed: see [`Item::give_back`].
    fn claims() -> &'static LocalKey<Claims<Self>>;
    /// What gives the thread's claim back when the thread ends: a local with a destructor,
    /// touched when the thread claims a ring, never on a push.
    fn give_back() -> &'static LocalKey<GiveBack<Self>>;
}

/// Implements [`Item`] for a type.
macro_rules! queue_item {
    ($type:ty) => {
        impl $crate::queue::Item for $type {
            #[inline(always)]
            fn claims() -> &'static ::std::thread::LocalKey<$crate::queue::Claims<Self>> {
                ::std::thread_local! {
                    static CLAIMS: $crate::queue::Claims<$type> =
                        const { $crate::queue::Claims::new() };
                }
                &CLAIMS
            }

            fn give_back() -> &'static ::std::thread::LocalKey<$crate::queue::GiveBack<Self>> {
                ::std::thread_local! {
                    static GIVE_BACK: $crate::queue::GiveBack<$type> =
                        const { $crate::queue::GiveBack::new() };
                }
                &GIVE_BACK
            }
        }
    };
}
pub(crate) use queue_item;

/// A thread's claim on a ring: the ring's producer, taken from its home until the thread gives
/// it back (its ring is full, or the thread ends). `ManuallyDrop`: the local has no destructor
/// (see [`Item::claims`]); [`GiveBack`] empties it as the thread ends.
pub(crate) struct Claims<T>(RefCell<ManuallyDrop<Option<Claimed<T>>>>);

/// Gives the thread's claim back when the thread ends (its destructor).
pub(crate) struct GiveBack<T: Item>(PhantomData<T>);

struct Claimed<T> {
    queue: usize,
    ring: usize,
    producer: Producer<T>,
    /// Where the producer goes back to: shared, so that it can go back whether or not the
    /// queue still exists.
    home: Arc<Mutex<Option<Producer<T>>>>,
}

impl<T> Claims<T> {
    pub(crate) const fn new() -> Self {
        Self(RefCell::new(ManuallyDrop::new(None)))
    }

    /// Pushes the item in `slot` onto the thread's ring of queue `queue`, if it has one with
    /// room; returns whether it has one, full. The item stays in `slot` unless pushed.
    #[inline]
    fn push(&self, queue: usize, slot: &mut Option<T>) -> bool {
        let Ok(mut claimed) = self.0.try_borrow_mut() else {
            return false;
        };
        let Some(claimed) = claimed.as_mut().filter(|claimed| claimed.queue == queue) else {
            return false;
        };
        let Some(item) = slot.take() else {
            return false;
        };
        match claimed.producer.push(item) {
            Ok(()) => false,
            Err(PushError::Full(item)) => {
                *slot = Some(item);
                true
            }
        }
    }

    /// Holds `next` from now on, giving the previous claim back.
    fn replace(&self, next: Option<Claimed<T>>) {
        let previous = match self.0.try_borrow_mut() {
            Ok(mut claimed) => std::mem::replace(&mut **claimed, next),
            Err(_) => next,
        };
        if let Some(previous) = previous {
            previous.give_back();
        }
    }
}

impl<T: Item> GiveBack<T> {
    pub(crate) const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<T: Item> Drop for GiveBack<T> {
    fn drop(&mut self) {
        T::claims().with(|claims| claims.replace(None));
    }
}

impl<T> Claimed<T> {
    fn give_back(self) {
        *lock(&self.home) = Some(self.producer);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; should it, the data is still whole.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A ring: its producer at home while no thread owns it, its consumer for the consumer.
struct Ring<T> {
    home: Arc<Mutex<Option<Producer<T>>>>,
    /// Locked by the consumer only (and by `len`): never by a producer.
    consumer: Mutex<Consumer<T>>,
    capacity: usize,
}

/// The queue: rings of one capacity between them and the overflow.
pub(crate) struct Queue<T> {
    id: usize,
    rings: Box<[Ring<T>]>,
    overflow: Option<ArrayQueue<T>>,
    /// The ring the consumer reads first next time: each drain starts one further, so no ring
    /// waits behind a busy one. Touched by the consumer only, on a line of its own: producers
    /// read the fields beside it on every push.
    next_drain: CachePadded<AtomicUsize>,
    /// Set when a push found the whole queue full, cleared by the next drain that takes
    /// anything. While it is set, a push whose ring is full fails at once instead of looking
    /// at every other ring: a full queue (the endpoint down for a while) must not make each
    /// call several times dearer.
    full: CachePadded<AtomicBool>,
}

/// A push that took its item.
pub(crate) struct Pushed {
    /// Whether the consumer should be woken: the pushing thread's ring was full, or it made
    /// its next so many pushes through the overflow.
    pub(crate) wake: bool,
}

impl<T: Item> Queue<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        let (rings, ring_capacity, overflow) = layout(capacity);
        let rings = (0..rings)
            .map(|_| {
                let (producer, consumer) = RingBuffer::new(ring_capacity);
                Ring {
                    home: Arc::new(Mutex::new(Some(producer))),
                    consumer: Mutex::new(consumer),
                    capacity: ring_capacity,
                }
            })
            .collect();
        Self {
            id: NEXT_QUEUE_ID.fetch_add(1, Relaxed),
            rings,
            overflow: (overflow > 0).then(|| ArrayQueue::new(overflow)),
            next_drain: CachePadded::new(AtomicUsize::new(0)),
            full: CachePadded::new(AtomicBool::new(false)),
        }
    }

    /// How many items it holds at most.
    pub(crate) fn capacity(&self) -> usize {
        let rings: usize = self.rings.iter().map(|ring| ring.capacity).sum();
        rings + self.overflow.as_ref().map_or(0, ArrayQueue::capacity)
    }

    /// How many items it holds now.
    pub(crate) fn len(&self) -> usize {
        let rings: usize = self
            .rings
            .iter()
            .map(|ring| lock(&ring.consumer).slots())
            .sum();
        rings + self.overflow.as_ref().map_or(0, ArrayQueue::len)
    }

    /// Pushes `item` onto the calling thread's ring, another ring with room, or the overflow;
    /// gives the item back when the queue is full.
    #[inline]
    pub(crate) fn push(&self, item: T) -> Result<Pushed, T> {
        // The item stays in `slot` unless pushed. (`try_with` on a local without a destructor
        // cannot fail; it keeps the item whatever happens, where `with` would have to panic.)
        let mut slot = Some(item);
        let ring_full = T::claims()
            .try_with(|claims| claims.push(self.id, &mut slot))
            .unwrap_or(false);
        match slot {
            None => Ok(Pushed { wake: false }),
            Some(item) => self.push_elsewhere(item, ring_full),
        }
    }

    /// The thread has no ring here, or its ring is full (`ring_full`): claims a ring with
    /// room, or pushes onto the overflow. Out of line: a thread comes here once per ring it
    /// fills.
    #[cold]
    #[inline(never)]
    fn push_elsewhere(&self, mut item: T, ring_full: bool) -> Result<Pushed, T> {
        let wake = ring_full;
        let mut start = 0;
        if ring_full {
            // Give the full ring back, and look at the next ones first.
            T::claims().with(|claims| {
                if let Ok(claimed) = claims.0.try_borrow()
                    && let Some(claimed) = claimed.as_ref()
                {
                    start = claimed.ring + 1;
                }
                claims.replace(None);
            });
        }
        if !self.full.load(Relaxed) {
            let count = self.rings.len();
            for ring in (start..count).chain(0..start.min(count)) {
                match self.claim_and_push(ring, item) {
                    Ok(()) => return Ok(Pushed { wake }),
                    Err(refused) => item = refused,
                }
            }
        }
        self.push_overflow(item, wake)
    }

    /// Claims ring `ring` if nobody owns it and pushes `item` onto it, keeping the claim for
    /// the thread's next pushes; gives `item` back if the ring is owned or full.
    fn claim_and_push(&self, ring: usize, item: T) -> Result<(), T> {
        let home = &self.rings[ring].home;
        let Some(mut producer) = home.try_lock().ok().and_then(|mut home| home.take()) else {
            return Err(item);
        };
        let pushed = producer.push(item);
        let claimed = Claimed {
            queue: self.id,
            ring,
            producer,
            home: Arc::clone(home),
        };
        match pushed {
            Ok(()) => {
                // Kept only if it will be given back when the thread ends: a thread whose
                // locals are being destroyed keeps none.
                if T::give_back().try_with(|_| ()).is_ok() {
                    T::claims().with(|claims| claims.replace(Some(claimed)));
                } else {
                    claimed.give_back();
                }
                Ok(())
            }
            Err(PushError::Full(item)) => {
                // Its last owner filled it and moved on.
                claimed.give_back();
                Err(item)
            }
        }
    }

    fn push_overflow(&self, item: T, wake: bool) -> Result<Pushed, T> {
        let Some(overflow) = &self.overflow else {
            self.full.store(true, Relaxed);
            return Err(item);
        };
        match overflow.push(item) {
            Ok(()) => {
                let pushes = OVERFLOW_PUSHES
                    .try_with(|pushes| {
                        let next = pushes.get().wrapping_add(1);
                        pushes.set(next);
                        next
                    })
                    .unwrap_or(0);
                Ok(Pushed {
                    wake: wake || pushes.is_multiple_of(OVERFLOW_WAKE_EVERY),
                })
            }
            Err(refused) => {
                self.full.store(true, Relaxed);
                Err(refused)
            }
        }
    }

    /// Takes up to `most` items, the rings in turn and then the overflow, handing each to
    /// `each` until it says to stop; returns how many it took.
    pub(crate) fn drain(&self, most: usize, mut each: impl FnMut(T) -> bool) -> usize {
        let taken = self.drain_rings(most, &mut each);
        let taken = match &self.overflow {
            Some(overflow) if taken.1 => {
                taken.0 + take_from(|| overflow.pop(), most - taken.0, &mut each).0
            }
            _ => taken.0,
        };
        if taken > 0 && self.full.load(Relaxed) {
            self.full.store(false, Relaxed);
        }
        taken
    }

    /// The rings' part of [`Queue::drain`]: how many it took, and whether to go on.
    fn drain_rings(&self, most: usize, each: &mut impl FnMut(T) -> bool) -> (usize, bool) {
        let count = self.rings.len();
        if count == 0 {
            return (0, true);
        }
        let first = self.next_drain.load(Relaxed) % count;
        self.next_drain.store(first + 1, Relaxed);
        let mut taken = 0;
        for ring in (first..count).chain(0..first) {
            let mut consumer = lock(&self.rings[ring].consumer);
            let (took, go_on) = take_from(|| consumer.pop().ok(), most - taken, each);
            taken += took;
            if !go_on || taken == most {
                return (taken, false);
            }
        }
        (taken, true)
    }

    /// Takes one item.
    pub(crate) fn pop(&self) -> Option<T> {
        let mut popped = None;
        self.drain(1, |item| {
            popped = Some(item);
            false
        });
        popped
    }
}

/// Takes up to `most` items from `pop`, handing each to `each` until it says to stop; returns
/// how many it took, and whether `each` wants more.
fn take_from<T>(
    mut pop: impl FnMut() -> Option<T>,
    most: usize,
    each: &mut impl FnMut(T) -> bool,
) -> (usize, bool) {
    let mut taken = 0;
    while taken < most {
        let Some(item) = pop() else { break };
        taken += 1;
        if !each(item) {
            return (taken, false);
        }
    }
    (taken, true)
}

/// How `capacity` is cut: how many rings, how large each, and what the overflow holds. A small
/// queue is all overflow; otherwise the rings take all but an eighth or so, in powers of two.
fn layout(capacity: usize) -> (usize, usize, usize) {
    if capacity < 2 * MIN_RING {
        return (0, 0, capacity);
    }
    let ring = prev_power_of_two((capacity / RING_SHARE).max(MIN_RING));
    let rings = (capacity - capacity / OVERFLOW_SHARE) / ring;
    (rings, ring, capacity - rings * ring)
}

fn prev_power_of_two(n: usize) -> usize {
    1 << (usize::BITS - 1 - n.leading_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;

    queue_item!(u64);
    queue_item!(Arc<()>);

    fn drain_all<T: Item>(queue: &Queue<T>) -> Vec<T> {
        let mut items = Vec::new();
        queue.drain(usize::MAX, |item| {
            items.push(item);
            true
        });
        items
    }

    /// The ring the calling thread owns, if any.
    fn own_ring() -> Option<usize> {
        u64::claims().with(|claims| claims.0.borrow().as_ref().map(|claimed| claimed.ring))
    }

    #[test]
    fn rings_and_overflow_split_the_capacity_exactly() {
        for (capacity, rings, ring) in [
            (1, 0, 0),
            (2_047, 0, 0),
            (2_048, 1, 1_024),
            (16_384, 14, 1_024),
            (100_003, 42, 2_048),
            (1 << 20, 28, 32_768),
        ] {
            let queue = Queue::<u64>::new(capacity);
            assert_eq!(queue.rings.len(), rings, "capacity {capacity}");
            assert!(queue.rings.iter().all(|r| r.capacity == ring));
            assert_eq!(queue.capacity(), capacity);
        }
    }

    #[test]
    fn one_thread_fills_every_ring_then_the_overflow_then_is_refused() {
        let queue = Queue::new(4_096); // 3 rings of 1,024 and 1,024 of overflow
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut wakes = 0;
                for n in 0..4_096_u64 {
                    let pushed = queue.push(n).unwrap_or_else(|_| panic!("room for {n}"));
                    wakes += usize::from(pushed.wake);
                }
                // A wake-up each time a ring filled (three rings), and after 1,024 pushes
                // through the overflow.
                assert_eq!(wakes, 4);
                assert_eq!(
                    queue.push(4_096).err(),
                    Some(4_096),
                    "full: the item comes back"
                );
            });
        });
        assert_eq!(queue.len(), 4_096);
        let mut items = drain_all(&queue);
        items.sort_unstable();
        assert_eq!(items, (0..4_096).collect::<Vec<_>>());
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn room_made_anywhere_is_found_again_after_the_queue_was_full() {
        let queue = Queue::new(2_048); // 1 ring of 1,024 and 1,024 of overflow
        for n in 0..2_048_u64 {
            assert!(queue.push(n).is_ok());
        }
        assert!(queue.push(2_048).is_err());
        assert!(queue.full.load(Relaxed));
        assert!(
            queue.pop().is_some(),
            "the drain clears the full queue's shortcut"
        );
        assert!(!queue.full.load(Relaxed));
        assert!(queue.push(2_049).is_ok(), "the freed slot takes it");
        assert!(queue.push(2_050).is_err());
    }

    #[test]
    fn two_threads_get_rings_of_their_own_and_give_them_back_when_they_end() {
        let queue = Arc::new(Queue::new(16_384));
        let (ring_sender, ring_receiver) = std::sync::mpsc::channel();
        let (done_sender, done_receiver) = std::sync::mpsc::channel::<()>();
        let first = std::thread::spawn({
            let queue = Arc::clone(&queue);
            move || {
                queue.push(1_u64).unwrap();
                ring_sender.send(own_ring()).unwrap();
                // Holds its ring until the second thread has claimed one.
                done_receiver.recv().unwrap();
            }
        });
        let first_ring = ring_receiver.recv().unwrap();
        let second = std::thread::spawn({
            let queue = Arc::clone(&queue);
            move || {
                queue.push(2_u64).unwrap();
                let second_ring = own_ring();
                assert!(first_ring.is_some() && second_ring.is_some());
                assert_ne!(first_ring, second_ring, "each thread its own ring");
                done_sender.send(()).unwrap();
            }
        });
        // `join` returns once a thread is gone, its locals' destructors run: unlike the end of
        // a `thread::scope`, which comes as the closure returns.
        first.join().unwrap();
        second.join().unwrap();
        assert!(queue.rings.iter().all(|ring| lock(&ring.home).is_some()));
        let mut items = drain_all(&queue);
        items.sort_unstable();
        assert_eq!(items, [1, 2]);
    }

    #[test]
    fn drains_take_the_rings_in_turn_stop_when_told_and_lose_nothing() {
        let queue = Queue::new(4_096);
        std::thread::scope(|s| {
            for t in 0..3_u64 {
                let queue = &queue;
                s.spawn(move || {
                    for n in 0..10 {
                        queue.push(t * 100 + n).unwrap();
                    }
                });
            }
        });
        let mut first = Vec::new();
        let taken = queue.drain(usize::MAX, |item| {
            first.push(item);
            first.len() < 4
        });
        assert_eq!(taken, 4, "stops at the item it was told to stop at");
        let mut all = first;
        all.extend(drain_all(&queue));
        all.sort_unstable();
        let expected: Vec<u64> = (0..3)
            .flat_map(|t| (0..10).map(move |n| t * 100 + n))
            .collect();
        assert_eq!(all, expected);
    }

    #[test]
    fn a_concurrent_producer_and_consumer_move_every_item_once() {
        const ITEMS: u64 = 200_000;
        let queue = Queue::new(2_048);
        let mut seen = Vec::with_capacity(ITEMS as usize);
        std::thread::scope(|s| {
            let queue = &queue;
            s.spawn(move || {
                for n in 0..ITEMS {
                    let mut item = n;
                    // Full: wait for the consumer (here only: a handler never waits).
                    while let Err(refused) = queue.push(item) {
                        item = refused;
                        std::thread::yield_now();
                    }
                }
            });
            while (seen.len() as u64) < ITEMS {
                let taken = queue.drain(512, |item| {
                    seen.push(item);
                    true
                });
                if taken == 0 {
                    std::thread::yield_now();
                }
            }
        });
        seen.sort_unstable();
        assert!(seen.iter().copied().eq(0..ITEMS), "each item exactly once");
    }

    #[test]
    fn items_left_in_the_queue_are_dropped_with_it() {
        let item = Arc::new(());
        let queue = Queue::new(4_096);
        for _ in 0..3_000 {
            queue.push(Arc::clone(&item)).unwrap();
        }
        assert_eq!(Arc::strong_count(&item), 3_001);
        // This thread still holds a ring's producer: its items go with the queue's consumer
        // and the producer, whichever goes last.
        drop(queue);
        Arc::<()>::claims().with(|claims| claims.replace(None));
        assert_eq!(Arc::strong_count(&item), 1);
    }
}
