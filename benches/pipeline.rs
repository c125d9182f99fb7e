//! The shipper's side: how many events a second go from a handler to acknowledged by a loopback
//! Events API, with gzip and without; the worker's CPU time per million events; the bytes on the
//! wire per event; and the memory a queued event takes.
//!
//! Run: `cargo bench --bench pipeline` (or `cargo xtask bench`, which runs every benchmark and
//! writes `BENCHMARKS.md`). Besides criterion's report, prints the medians at the end.
//!
//! - **Throughput**: each iteration records [`EVENTS_PER_ITERATION`] calls of a mix of tools,
//!   prompts and resources (one call in 16 failing with an error text, sessions rotating among
//!   16) through the real attributes, as fast as the queue takes them, and each sample ends with
//!   `flush()`, which returns once the receiver has acknowledged everything. The queue has its
//!   default capacity; the emitting thread waits whenever it is nearly full, so that the figure
//!   is the worker's sustained rate with nothing dropped (asserted). The receiver parses and
//!   validates every line (it does not keep them): it is the strict test receiver, and it runs
//!   on this machine's other core, beside the emitting thread.
//! - **Worker CPU**: the worker thread's own CPU time (`/proc/self/task/*/schedstat`), per
//!   million delivered events, and as a share of the elapsed time: at most 1.0 by construction
//!   (one thread), and the headroom left.
//! - **Wire bytes**: request bodies as sent (`Content-Length`), per event.
//! - **Memory**: the live heap a queue slot takes (measured by a counting allocator around the
//!   queue's creation), and what a failed call's event allocates besides (its error text).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use common::workload::{self, get_weather, search_documents};
use criterion::{Criterion, SamplingMode, Throughput};
use mcp_analytics::session::SessionId;
use mcp_analytics_receiver::Receiver;
use serde_json::{Value, json};

/// Calls per criterion iteration.
const EVENTS_PER_ITERATION: u64 = 100_000;
/// Criterion's samples per configuration; the medians are taken over these.
const SAMPLES: usize = 10;
/// The emitting thread keeps this much of the queue free, so that nothing is dropped.
const QUEUE_HEADROOM: u64 = 1_024;

/// Counts live heap bytes, to measure what the queue and its events take.
struct CountingAllocator;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: defers every allocation to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Relaxed);
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Relaxed);
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Records `n` calls of the workload as fast as the queue takes them, never letting it fill up.
fn emit(n: u64, sessions: &[SessionId]) {
    let high_water = mcp_analytics::Builder::DEFAULT_QUEUE_CAPACITY as u64 - QUEUE_HEADROOM;
    let mut i = 0;
    while i < n {
        while mcp_analytics::stats().queued > high_water {
            // Sleep rather than spin: on two cores a spinning emitter would take CPU from the
            // worker and the receiver it is waiting for.
            std::thread::sleep(Duration::from_micros(200));
        }
        let end = (i + workload::CALLS_PER_SESSION).min(n);
        workload::calls(i..end, sessions);
        i = end;
    }
}

/// What one criterion sample measured.
#[derive(Debug, Clone, Copy)]
struct Sample {
    events: u64,
    elapsed: Duration,
    worker_cpu: Duration,
    receiver_cpu: Duration,
    wire_bytes: u64,
}

/// The samples of the configuration being measured, warm-up invocations first.
static SAMPLED: Mutex<Vec<Sample>> = Mutex::new(Vec::new());

/// Bytes on the wire of every acknowledged request so far.
fn acknowledged_wire_bytes(receiver: &Receiver) -> u64 {
    receiver
        .requests()
        .iter()
        .filter(|request| (200..300).contains(&request.status))
        .map(|request| request.body_bytes as u64)
        .sum()
}

/// Delivers events through a fresh worker and receiver, gzip on or off, and returns the medians.
fn measure(c: &mut Criterion, name: &str, gzip: bool, sessions: &[SessionId]) -> Value {
    let receiver = Receiver::builder().keep_rows(false).build();
    let _analytics = mcp_analytics::builder()
        .read_env(false)
        .api_url(receiver.url())
        .token(receiver.token())
        .spool(false)
        .gzip(gzip)
        .shutdown_timeout(Duration::from_secs(30))
        .try_init()
        .expect("analytics starts");
    let worker = common::ThreadCpu::find("mcp-analytics").expect("the worker thread is in /proc");
    let receiver_thread =
        common::ThreadCpu::find("events-api-rec").expect("the receiver thread is in /proc");

    SAMPLED.lock().unwrap().clear();
    let mut group = c.benchmark_group("pipeline");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(SAMPLES)
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(EVENTS_PER_ITERATION));
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let events = iters * EVENTS_PER_ITERATION;
            let before = mcp_analytics::stats();
            let (worker_before, receiver_before) = (worker.used(), receiver_thread.used());
            let (accepted_before, wire_before) =
                (receiver.accepted_rows(), acknowledged_wire_bytes(&receiver));

            let started = Instant::now();
            emit(events, sessions);
            mcp_analytics::flush(Duration::from_secs(60)).expect("the receiver acknowledges");
            let elapsed = started.elapsed();

            let after = mcp_analytics::stats();
            assert_eq!(after.dropped, before.dropped, "nothing is dropped");
            assert_eq!(after.failed, before.failed, "nothing fails");
            assert_eq!(after.sent - before.sent, events, "everything is delivered");
            assert_eq!(
                (receiver.accepted_rows() - accepted_before) as u64,
                events,
                "the receiver accepted every event"
            );
            SAMPLED.lock().unwrap().push(Sample {
                events,
                elapsed,
                worker_cpu: worker.used() - worker_before,
                receiver_cpu: receiver_thread.used() - receiver_before,
                wire_bytes: acknowledged_wire_bytes(&receiver) - wire_before,
            });
            elapsed
        });
    });
    group.finish();
    mcp_analytics::shutdown(Duration::from_secs(30)).expect("the receiver is up");

    let sampled = SAMPLED.lock().unwrap();
    medians(&sampled[sampled.len().saturating_sub(SAMPLES)..])
}

/// The median over samples of `figure`.
fn median(samples: &[Sample], figure: impl Fn(&Sample) -> f64) -> f64 {
    common::median(samples.iter().map(figure).collect())
}

fn medians(samples: &[Sample]) -> Value {
    let per_second = |s: &Sample| s.events as f64 / s.elapsed.as_secs_f64();
    json!({
        "samples": samples.len(),
        "events_per_second": median(samples, per_second),
        "worker_cpu_ms_per_million": median(samples, |s| {
            s.worker_cpu.as_secs_f64() * 1e3 * 1e6 / s.events as f64
        }),
        "worker_cores": median(samples, |s| s.worker_cpu.as_secs_f64() / s.elapsed.as_secs_f64()),
        "worker_capacity_events_per_second": median(samples, |s| {
            s.events as f64 / s.worker_cpu.as_secs_f64()
        }),
        "receiver_cores": median(samples, |s| {
            s.receiver_cpu.as_secs_f64() / s.elapsed.as_secs_f64()
        }),
        "wire_bytes_per_event": median(samples, |s| s.wire_bytes as f64 / s.events as f64),
    })
}

/// The live heap a queue slot takes, and what a failed call's event allocates while queued.
/// Must run first: the first recorded call creates the queue.
fn measure_memory() -> Value {
    let before = LIVE_BYTES.load(Relaxed);
    get_weather(1);
    let queue_and_one_event = LIVE_BYTES.load(Relaxed) - before;
    let slot_bytes =
        queue_and_one_event as f64 / mcp_analytics::Builder::DEFAULT_QUEUE_CAPACITY as f64;

    // Errors carry their text: measure the extra heap over many queued failed calls, their
    // error `String`s (the handler's own allocation, freed when the event is made) included.
    const FAILED: u64 = 1_000;
    let before = LIVE_BYTES.load(Relaxed);
    (0..FAILED).for_each(|i| drop(search_documents(i * 16 + 5)));
    let error_event_bytes = (LIVE_BYTES.load(Relaxed) - before) as f64 / FAILED as f64;
    let error_text = search_documents(5).unwrap_err();
    assert_eq!(mcp_analytics::stats().queued, FAILED + 2);
    mcp_analytics::testing::discard_queued();
    json!({
        "slot_bytes": slot_bytes,
        "error_event_extra_bytes": error_event_bytes,
        "error_text": error_text,
    })
}

fn main() {
    let memory = measure_memory();
    let sessions = workload::sessions();
    let mut c = Criterion::default().configure_from_args();
    let gzip = measure(&mut c, "gzip", true, &sessions);
    let identity = measure(&mut c, "identity", false, &sessions);
    c.final_summary();

    common::report(
        "pipeline",
        &json!({
            "events_per_iteration": EVENTS_PER_ITERATION,
            "memory": memory,
            "gzip": gzip,
            "identity": identity,
        }),
    );
}
