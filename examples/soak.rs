//! Soak: the endpoint is down, a handler is called as fast as one thread can, and memory stays
//! bounded by the design, whatever the number of calls.
//!
//! ```sh
//! cargo run --release --example soak -- 10_000_000
//! ```
//!
//! Analytics points at a loopback port nothing listens on, so every request is refused and
//! retried while events keep coming: the queue fills, then further events are dropped and
//! counted. The process's peak resident memory (`VmHWM` in `/proc/self/status`) must stay under
//! a bound computed from the design:
//!
//! - the queue: `capacity` slots of at most 136 bytes (an event is at most 128 bytes, checked by
//!   the runtime's `queued_events_stay_small` test, plus the slot's 8-byte stamp), allocated
//!   once;
//! - the worker's batches: one drain round takes at most `capacity` events, on top of an open
//!   batch of fewer than `max_batch_events`, each encoded in well under 512 bytes here; plus the
//!   gzip'd bodies of the batch being sent and of the four that may wait behind it;
//! - a fixed allowance for the worker thread, its runtime and HTTP client, and the allocator.
//!
//! Also checked: every event is accounted for (`dropped == emitted - enqueued`), and the worker
//! holds no more events than one drain round plus its closed batches. Exits non-zero on a failed
//! check. The same logic runs with 1 000 000 events in `tests/concurrency.rs`.

use std::fmt;
use std::time::{Duration, Instant};

use mcp_analytics::mcp_tool;

/// The default queue capacity (what `init()` gives a server that sets nothing).
const CAPACITY: u64 = 16_384;
/// The batch limits of this run.
const MAX_BATCH_EVENTS: u64 = 10_000;
const MAX_BATCH_BYTES: u64 = 4 << 20;
/// Compressed batches held at once: the one in flight and the four that may wait behind it.
const GZIPPED_BATCHES: u64 = 5;
/// Bytes per queue slot: an event (at most 128 bytes) and the slot's stamp.
const SLOT_BYTES: u64 = 136;
/// Bytes per encoded event: a generous bound for this tool's lines (about 450 bytes).
const LINE_BYTES: u64 = 512;
/// The worker thread's stack and runtime, the HTTP client, allocator slack.
const ALLOWANCE_BYTES: u64 = 8 << 20;

const MIB: f64 = 1024.0 * 1024.0;

#[mcp_tool]
fn soak_tool(i: u64) -> u64 {
    i
}

/// What a soak run measured.
#[derive(Debug)]
pub struct Report {
    pub emitted: u64,
    pub emit_time: Duration,
    /// Counters right after emitting.
    pub enqueued: u64,
    pub dropped: u64,
    pub sent: u64,
    pub failed: u64,
    pub capacity: u64,
    /// Events in the queue right after emitting (emptied then, counted as dropped).
    pub queued: u64,
    /// Events the worker had taken into batches and neither sent nor given up on.
    pub held_by_worker: u64,
    /// `VmRSS` before `init`, and `VmRSS`/`VmHWM` after emitting, in bytes (`None` off Linux).
    pub baseline_rss: Option<u64>,
    pub rss: Option<u64>,
    pub peak_rss: Option<u64>,
    pub rss_bound: Option<u64>,
    /// What the shutdown said, and the counters after it.
    pub shutdown: String,
    pub final_stats: mcp_analytics::Stats,
}

impl Report {
    /// The checks that failed; empty when the run is good.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.dropped != self.emitted - self.enqueued {
            problems.push(format!(
                "dropped {} != emitted {} - enqueued {}",
                self.dropped, self.emitted, self.enqueued
            ));
        }
        // A drain round's worth in the open batch, and the closed batches: the one in flight
        // and those waiting behind it.
        let worker_bound = self.capacity + GZIPPED_BATCHES * MAX_BATCH_EVENTS;
        if self.held_by_worker > worker_bound {
            problems.push(format!(
                "the worker holds {} events, more than a drain round and {GZIPPED_BATCHES} \
                 closed batches ({worker_bound})",
                self.held_by_worker
            ));
        }
        if self.enqueued > self.capacity + self.held_by_worker + self.sent + self.failed {
            problems.push(format!(
                "enqueued {} > capacity {} + held by the worker {} + sent {} + failed {}",
                self.enqueued, self.capacity, self.held_by_worker, self.sent, self.failed
            ));
        }
        if let (Some(peak), Some(bound)) = (self.peak_rss, self.rss_bound)
            && peak > bound
        {
            problems.push(format!(
                "peak RSS {:.1} MiB exceeds the bound {:.1} MiB",
                peak as f64 / MIB,
                bound as f64 / MIB
            ));
        }
        let stats = &self.final_stats;
        if stats.sent + stats.failed + stats.dropped != self.emitted {
            problems.push(format!(
                "after shutdown: sent {} + failed {} + dropped {} != emitted {}",
                stats.sent, stats.failed, stats.dropped, self.emitted
            ));
        }
        problems
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |bytes: Option<u64>| match bytes {
            Some(bytes) => format!("{:.1} MiB", bytes as f64 / MIB),
            None => "unavailable".to_owned(),
        };
        writeln!(
            f,
            "emitted:        {} in {:?} ({:.1} ns per call)",
            self.emitted,
            self.emit_time,
            self.emit_time.as_nanos() as f64 / self.emitted.max(1) as f64
        )?;
        writeln!(f, "enqueued:       {}", self.enqueued)?;
        writeln!(f, "dropped:        {}", self.dropped)?;
        writeln!(f, "sent:           {}", self.sent)?;
        writeln!(f, "failed:         {}", self.failed)?;
        writeln!(f, "queue capacity: {}", self.capacity)?;
        writeln!(
            f,
            "accounted:      dropped {} == emitted - enqueued {}: {}",
            self.dropped,
            self.emitted - self.enqueued,
            self.dropped == self.emitted - self.enqueued
        )?;
        let target = self.emitted.saturating_sub(self.capacity);
        let taken = self.held_by_worker + self.sent + self.failed;
        writeln!(
            f,
            "issue's target: dropped {} vs emitted - capacity {}: they differ by {}, the events \
             the worker took out of the queue ({taken}: {} held in its batches, {} sent, {} \
             failed) minus the queue slots left free ({} of {})",
            self.dropped,
            target,
            i128::from(target) - i128::from(self.dropped),
            self.held_by_worker,
            self.sent,
            self.failed,
            self.capacity.saturating_sub(self.queued),
            self.capacity
        )?;
        writeln!(
            f,
            "memory:         RSS before init {}, after emitting {}, peak {}; bound {}",
            mib(self.baseline_rss),
            mib(self.rss),
            mib(self.peak_rss),
            mib(self.rss_bound)
        )?;
        writeln!(
            f,
            "bound:          RSS before init + queue {} × {SLOT_BYTES} B + worker \
             ({} + {MAX_BATCH_EVENTS}) × {LINE_BYTES} B + gzip'd copies {GZIPPED_BATCHES} × {MAX_BATCH_BYTES} B / 4 \
             + allowance {ALLOWANCE_BYTES} B",
            self.capacity, self.capacity
        )?;
        writeln!(f, "shutdown:       {}", self.shutdown)?;
        let stats = &self.final_stats;
        write!(
            f,
            "after shutdown: sent {} + failed {} + dropped {} = {} (emitted {})",
            stats.sent,
            stats.failed,
            stats.dropped,
            stats.sent + stats.failed + stats.dropped,
            self.emitted
        )
    }
}

/// A `/proc/self/status` memory field, in bytes.
fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let kib = line
            .strip_prefix(field)?
            .strip_prefix(':')?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse::<u64>()
            .ok()?;
        Some(kib * 1024)
    })
}

/// Runs the soak with `events` calls; the process must not have initialized analytics before.
pub fn run(events: u64) -> Report {
    let baseline_rss = status_bytes("VmRSS");
    // A loopback port nothing listens on: every connection is refused.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        listener.local_addr().expect("its address").port()
    };
    let _analytics = mcp_analytics::builder()
        .read_env(false)
        .api_url(format!("http://127.0.0.1:{port}"))
        .token("soak-token")
        // The in-memory bound alone: the soak measures what the queue holds and drops.
        .spool(false)
        .queue_capacity(CAPACITY as usize)
        .max_batch_events(MAX_BATCH_EVENTS as usize)
        .max_batch_bytes(MAX_BATCH_BYTES as usize)
        .shutdown_timeout(Duration::from_millis(500))
        .try_init()
        .expect("analytics starts");

    let started = Instant::now();
    for i in 0..events {
        std::hint::black_box(soak_tool(std::hint::black_box(i)));
    }
    let emit_time = started.elapsed();

    let stats = mcp_analytics::stats();
    let rss = status_bytes("VmRSS");
    let peak_rss = status_bytes("VmHWM");
    // How many of the enqueued events are still queued, and so how many the worker took.
    let queued = mcp_analytics::testing::discard_queued() as u64;
    let taken = stats.enqueued.saturating_sub(queued);
    let held_by_worker = taken.saturating_sub(stats.sent + stats.failed);

    let rss_bound = baseline_rss.map(|baseline| {
        baseline
            + CAPACITY * SLOT_BYTES
            + (CAPACITY + MAX_BATCH_EVENTS) * LINE_BYTES
            + GZIPPED_BATCHES * MAX_BATCH_BYTES / 4
            + ALLOWANCE_BYTES
    });

    let shutdown = match mcp_analytics::shutdown(Duration::from_millis(500)) {
        Ok(()) => "Ok".to_owned(),
        Err(error) => format!("{error}"),
    };
    Report {
        emitted: events,
        emit_time,
        enqueued: stats.enqueued,
        dropped: stats.dropped,
        sent: stats.sent,
        failed: stats.failed,
        capacity: CAPACITY,
        queued,
        held_by_worker,
        baseline_rss,
        rss,
        peak_rss,
        rss_bound,
        shutdown,
        final_stats: mcp_analytics::stats(),
    }
}

fn main() {
    let events = match std::env::args().nth(1) {
        None => 10_000_000,
        Some(arg) => match arg.replace('_', "").parse::<u64>() {
            Ok(events) => events,
            Err(_) => {
                eprintln!("usage: soak [EVENTS]   (default 10_000_000)");
                std::process::exit(2);
            }
        },
    };
    let report = run(events);
    println!("{report}");
    let problems = report.problems();
    if !problems.is_empty() {
        for problem in &problems {
            println!("FAILED: {problem}");
        }
        std::process::exit(1);
    }
}
