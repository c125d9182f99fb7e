//! A bounded, lock-free, multi-producer queue with one consumer, sharded by producing thread.
//!
//! A push is one compare-and-swap: no lock, no allocation, no syscall. Each thread pushes to a
//! home shard of its own, assigned round-robin on its first push, so that threads recording at
//! once do not fight over one cache line (on two cores, one shared queue tripled the cost of a
//! push). A full shard hands the item to the next, so the queue as a whole holds its capacity;
//! the consumer pops the shards in turn.
//!
//! What is pushed, when the consumer is woken and what a full queue means are the caller's
//! business (`global`); this module only stores.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

use crossbeam_queue::ArrayQueue;

/// Shards of at least this many items each, and at most [`MAX_SHARDS`] of them.
const MIN_SHARD_CAPACITY: usize = 1024;
const MAX_SHARDS: usize = 8;

/// Home shards are handed out in turn: two threads get different shards.
static NEXT_HOME: AtomicUsize = AtomicUsize::new(0);

/// What a producing thread keeps: its home shard and how many pushes it made. Plain `Cell`s
/// with `const` initializers: no lazy initialization or destructor on access.
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
pub(crate) struct Queue<T> {
    shards: Box<[ArrayQueue<T>]>,
    /// The shard the consumer pops first next time: each pop starts one further, so no shard
    /// waits behind a busy one.
    next_pop: AtomicUsize,
    /// Set when a push found every shard full, cleared by the next pop. While it is set, a push
    /// whose home shard is full fails at once instead of trying every other shard: a full queue
    /// (the endpoint down for a while) must not make each call several times dearer.
    full: AtomicBool,
}

/// A push that took its item.
pub(crate) struct Pushed {
    /// How many pushes the calling thread has made, this one included (wrapping).
    pub(crate) pushes_by_thread: u32,
}

impl<T> Queue<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        let count = (capacity / MIN_SHARD_CAPACITY).clamp(1, MAX_SHARDS);
        // The first `capacity % count` shards take one item more.
        let shards = (0..count)
            .map(|i| ArrayQueue::new(capacity / count + usize::from(i < capacity % count)))
            .collect();
        Self {
            shards,
            next_pop: AtomicUsize::new(0),
            full: AtomicBool::new(false),
        }
    }

    /// How many items it holds at most.
    pub(crate) fn capacity(&self) -> usize {
        self.shards.iter().map(ArrayQueue::capacity).sum()
    }

    /// How many items it holds now.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(ArrayQueue::len).sum()
    }

    /// Pushes `item` onto the calling thread's home shard, or the next one with room; gives the
    /// item back when the queue is full.
    #[inline]
    pub(crate) fn push(&self, item: T) -> Result<Pushed, T> {
        // One look at the thread's locals. A thread whose locals are being destroyed pushes
        // from the first shard, counted as its first push.
        let (home, pushes_by_thread) = PRODUCER
            .try_with(|producer| {
                let pushes = producer.pushes.get().wrapping_add(1);
                producer.pushes.set(pushes);
                (home_shard(producer, self.shards.len()), pushes)
            })
            .unwrap_or((0, 1));
        let shard = self.push_from(item, home)?;
        if shard != home {
            // Its own was full: start from the shard that took it next time, rather than try
            // the full one first on every push.
            let _ = PRODUCER.try_with(|producer| producer.home.set(shard));
        }
        Ok(Pushed { pushes_by_thread })
    }

    /// Pushes onto shard `home`, or the next one with room; returns the shard that took it.
    #[inline]
    fn push_from(&self, item: T, home: usize) -> Result<usize, T> {
        let mut item = match self.shards[home].push(item) {
            Ok(()) => return Ok(home),
            Err(refused) if self.full.load(Relaxed) => return Err(refused),
            Err(refused) => refused,
        };
        let count = self.shards.len();
        for shard in (home + 1..count).chain(0..home) {
            match self.shards[shard].push(item) {
                Ok(()) => return Ok(shard),
                Err(refused) => item = refused,
            }
        }
        self.full.store(true, Relaxed);
        Err(item)
    }

    /// Takes an item, from the shards in turn.
    pub(crate) fn pop(&self) -> Option<T> {
        let count = self.shards.len();
        let first = self.next_pop.load(Relaxed) % count;
        let item = (first..count).chain(0..first).find_map(|shard| {
            let item = self.shards[shard].pop()?;
            self.next_pop.store(shard + 1, Relaxed);
            Some(item)
        })?;
        if self.full.load(Relaxed) {
            self.full.store(false, Relaxed);
        }
        Some(item)
    }
}

/// The calling thread's home shard among `count`, assigned on its first push.
#[inline]
fn home_shard(producer: &Producer, count: usize) -> usize {
    let mut home = producer.home.get();
    if home == UNASSIGNED {
        home = NEXT_HOME.fetch_add(1, Relaxed) % count;
        producer.home.set(home);
    }
    home
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_the_capacity_exactly() {
        for (capacity, shards) in [(1, 1), (1_000, 1), (2_048, 2), (16_384, 8), (100_003, 8)] {
            let queue = Queue::<u64>::new(capacity);
            assert_eq!(queue.shards.len(), shards, "capacity {capacity}");
            assert_eq!(queue.capacity(), capacity);
        }
    }

    #[test]
    fn a_full_shard_passes_items_on_until_the_whole_queue_is_full() {
        let queue = Queue::new(4_096); // 4 shards of 1,024
        let mut used = Vec::new();
        for n in 0..4_096_u64 {
            used.push(queue.push_from(n, 2).expect("room somewhere"));
        }
        // Home first, then the next shards in turn, wrapping around.
        assert!(used[..1_024].iter().all(|&shard| shard == 2));
        assert!(used[1_024..2_048].iter().all(|&shard| shard == 3));
        assert!(used[2_048..3_072].iter().all(|&shard| shard == 0));
        assert!(used[3_072..].iter().all(|&shard| shard == 1));
        assert_eq!(queue.len(), 4_096);
        let refused = queue.push_from(4_096, 0).expect_err("the queue is full");
        assert_eq!(refused, 4_096, "the refused item comes back");

        // Room made anywhere is found again: a pop clears the full queue's shortcut.
        assert!(queue.pop().is_some());
        assert!(queue.push_from(4_097, 1).is_ok(), "the freed slot takes it");
        assert!(queue.push_from(4_098, 1).is_err());
    }

    #[test]
    fn pops_take_the_shards_in_turn_and_lose_nothing() {
        let queue = Queue::new(3_072); // 3 shards of 1,024
        for n in 0..30_u64 {
            queue.push_from(n, (n % 3) as usize).unwrap();
        }
        let first: Vec<u64> = (0..3).map(|_| queue.pop().unwrap()).collect();
        let mut shards: Vec<u64> = first.iter().map(|n| n % 3).collect();
        shards.sort_unstable();
        assert_eq!(shards, [0, 1, 2], "one from each shard: {first:?}");
        let mut popped: Vec<u64> = first;
        popped.extend(std::iter::from_fn(|| queue.pop()));
        popped.sort_unstable();
        assert_eq!(popped, (0..30).collect::<Vec<_>>());
    }

    #[test]
    fn a_thread_keeps_its_home_shard_and_moves_off_a_full_one() {
        let queue = Queue::new(2_048); // 2 shards of 1,024
        std::thread::scope(|s| {
            s.spawn(|| {
                for n in 0..2_048_u64 {
                    assert!(queue.push(n).is_ok(), "room for {n}");
                }
                assert!(queue.push(2_048).is_err(), "full");
            });
        });
        assert_eq!(queue.len(), 2_048);
    }
}
