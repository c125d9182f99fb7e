//! The monotonic clock every call reads: quanta's, which reads the CPU's invariant timestamp
//! counter where there is one (several times cheaper than `std::time::Instant` through the
//! vDSO) and the OS's monotonic clock elsewhere.
//!
//! The hot path reads it raw, in ticks; ticks become nanoseconds and wall-clock time on the
//! worker (see `wire`), never on the handler's thread.

use std::sync::OnceLock;

use quanta::Clock;

/// The clock. Made on first use, which calibrates the timestamp counter against the OS's clock
/// (a millisecond or so): `init()` makes it, so that no handler call pays for it.
pub(crate) fn clock() -> &'static Clock {
    static CLOCK: OnceLock<Clock> = OnceLock::new();
    CLOCK.get_or_init(Clock::new)
}

/// The clock's raw reading now, in ticks.
#[inline]
pub(crate) fn ticks() -> u64 {
    clock().raw()
}
