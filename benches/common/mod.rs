//! What the benchmarks share: timing instrumented calls on the accept path.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Calls per timed run: well under the default queue capacity (16384).
pub const RUN: u64 = 8_192;

/// Times `iters` calls of `call` in runs that fit the queue, emptying it untimed between runs:
/// the figure is the cost of recording an event with room in the queue, the path every call
/// takes in a healthy server (a full queue's drop path is cheaper, and would flatter it).
pub fn timed(iters: u64, mut call: impl FnMut(u64) -> u64) -> Duration {
    let mut elapsed = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let run = RUN.min(iters - done);
        mcp_analytics::__private::discard_queued();
        let started = Instant::now();
        for i in 0..run {
            black_box(call(black_box(i)));
        }
        elapsed += started.elapsed();
        done += run;
    }
    elapsed
}
