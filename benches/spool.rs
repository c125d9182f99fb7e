//! What the disk spool costs, end to end, with the real worker and a real loopback Events API:
//! how fast the worker writes events to the spool while the endpoint is down, how fast a later
//! run replays them, how many bytes an event takes on disk, and how quickly `shutdown()` secures
//! what is queued on disk while the endpoint hangs. Each rate comes with a baseline measured in
//! the same run: the same events delivered live to an endpoint that is up.
//!
//! Run: `cargo bench --bench spool` (or `cargo xtask bench`, which runs every benchmark and writes
//! `BENCHMARKS.md`). Takes under a minute. Prints a summary table at the end, then the figures as
//! JSON (written to `$MCP_ANALYTICS_BENCH_OUT/spool.json` for `cargo xtask bench`, as
//! `pipeline` and `outage` do). Without `--bench` (`cargo test --benches`) it runs one small
//! sample of each, as a smoke test, and writes nothing.
//!
//! Every figure is the median over [`SAMPLES`] samples. A sample is a whole life cycle of the
//! pipeline (`try_init` .. `shutdown`), in four steps run one after the other, so that the
//! machine's load, which varies, weighs on all four alike:
//!
//! 1. **Spooling** (endpoint down: a loopback port nothing listens on). First, untimed, one event
//!    is flushed, so that a batch is in flight and being retried, as one is when an outage
//!    begins (it is retried until the shutdown deadline). Then [`EVENTS`] events are recorded
//!    as fast as the queue (default capacity) takes them; during an outage the worker moves the
//!    batches waiting to ship to the spool whenever the queue is half full. Then `shutdown()`
//!    secures the rest (the queue, the open batch) on disk. The figure: events per second from
//!    the first event until `stats().spooled` counts all of them. The one-event batch in flight
//!    is on disk at once too, but counted in `spooled` only when its delivery ends, at the
//!    deadline: that is why it is kept apart from the timed events.
//! 2. **Replay** (endpoint up): a new `try_init` over the spool step 1 left, and the time until
//!    `stats().replayed` counts every event in it and the directory holds no spooled file.
//!    `try_init` itself (building the HTTP client, starting the worker) is in the time.
//! 3. **Live delivery**, the baseline (endpoint up, spool on and empty): the same [`EVENTS`]
//!    recorded the same way, and the time until `flush()` returns with all of them acknowledged
//!    (`stats().sent`).
//! 4. **Shutdown with the endpoint hanging** (a receiver scripted with `Scripted::Hang`): one
//!    event is flushed and its request held unanswered; then [`SHUTDOWN_EVENTS`] events are
//!    recorded, and the worker takes them into its next batch (waited for, at most 2 s:
//!    `queued_at_shutdown` says how many it had not taken). The figure: the time from calling
//!    `shutdown()` until `stats().spooled` counts them, and until the spooled files' names count
//!    them and the held batch's copy (everything secured on disk). `shutdown()` itself returns
//!    only at its deadline, as it must: it goes on trying to deliver in the time left.
//!
//! Worker CPU: the worker thread's CPU time over each timed span of steps 1 to 3 (from
//! `/proc/self/task/*/schedstat`, as in `pipeline`), per million events. What the worker does not
//! spend on CPU it spends waiting: for the disk (`fsync`), the receiver, or rows.
//!
//! Bytes on disk per event: after step 1, the spooled files' sizes (gzip'd NDJSON, as the
//! request bodies they will be) and their decompressed sizes, over the events they hold (their
//! lines, counted: the spool must hold each event once).
//!
//! The receiver is the tests' strict loopback Events API (it checks every line, keeps none), on
//! this machine's other core, as in `pipeline`. The spool goes to a directory under the system's
//! temporary directory (its file system is printed: a tmpfs would make `fsync` free), one per
//! sample and step, removed afterwards.
//!
//! Criterion does not sample here: a sample is a whole life cycle with a fixed number of events,
//! and one that ends at a shutdown deadline, where criterion scales the iterations per sample,
//! warms up, and takes at least 10 samples (several minutes). The samples are taken in `main`,
//! and their medians handed to `cargo xtask bench` as `pipeline` and `outage` hand theirs.

mod common;

use std::fs;
use std::io::Read as _;
use std::net::TcpListener;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use flate2::read::GzDecoder;
use mcp_analytics::{Builder, Guard, mcp_tool};
use mcp_analytics_receiver::{Receiver, Scripted};
use serde_json::{Value, json};

/// Events per sample for the rates (steps 1 to 3).
const EVENTS: u32 = 200_000;
/// Events waiting when `shutdown()` is called with the endpoint hanging (step 4).
const SHUTDOWN_EVENTS: u32 = 10_000;
/// Samples of each step; the medians are taken over these.
const SAMPLES: usize = 9;
/// The default `shutdown_timeout`: what a server that drops its guard gets.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(1500);
/// The emitting thread keeps this much of the queue free, so that nothing is dropped.
const QUEUE_HEADROOM: u64 = 1_024;
/// Between two looks at the counters or the directory while waiting for the worker: short
/// against what is timed, long enough not to take a core from the worker on a two-core machine.
const POLL: Duration = Duration::from_micros(200);
/// Longest wait for anything the worker is to do: past it, the benchmark fails.
const PATIENCE: Duration = Duration::from_secs(60);
/// The name of the event that is in flight when an outage or a hang begins.
const IN_FLIGHT: u32 = u32::MAX;

/// One event per call, named by its argument: each row differs from the next, as rows of a
/// server with many sessions and arguments do, so compression is not flattered.
#[mcp_tool(name = format!("ev-{i}"))]
fn ev(i: u32) -> u32 {
    i
}

/// Records events as fast as the queue takes them, never letting it fill up.
fn emit(range: Range<u32>) {
    let high_water = Builder::DEFAULT_QUEUE_CAPACITY as u64 - QUEUE_HEADROOM;
    for i in range {
        if i % 256 == 0 {
            while mcp_analytics::stats().queued > high_water {
                // Sleep rather than spin: a spinning emitter would take CPU from the worker.
                thread::sleep(POLL);
            }
        }
        ev(i);
    }
}

/// Polls `condition` until it holds, and returns when it was first seen to; panics after
/// [`PATIENCE`], saying what was awaited.
#[track_caller]
fn wait_for(what: &str, mut condition: impl FnMut() -> bool) -> Instant {
    let started = Instant::now();
    loop {
        if condition() {
            return Instant::now();
        }
        assert!(
            started.elapsed() < PATIENCE,
            "waited {PATIENCE:?} for {what}: {:?}",
            mcp_analytics::stats()
        );
        thread::sleep(POLL);
    }
}

/// Calls `shutdown()` on a thread of its own, so that the caller can watch the counters
/// meanwhile; the thread returns when the call started, how long it took, and whether it
/// settled everything.
fn shutdown_in_background() -> thread::JoinHandle<(Instant, Duration, bool)> {
    thread::spawn(|| {
        let called = Instant::now();
        let outcome = mcp_analytics::shutdown(SHUTDOWN_TIMEOUT);
        if let Err(error) = &outcome {
            eprintln!("shutdown: {error}");
        }
        (called, called.elapsed(), outcome.is_ok())
    })
}

/// A pipeline shipping to `url`, spooling to `dir`, otherwise as configured by default; and its
/// worker thread's CPU clock.
fn start(url: &str, token: &str, dir: &Path) -> (Guard, common::ThreadCpu) {
    let guard = mcp_analytics::builder()
        .read_env(false)
        .api_url(url)
        .token(token)
        .spool(true)
        .spool_dir(dir)
        .shutdown_timeout(SHUTDOWN_TIMEOUT)
        .try_init()
        .expect("analytics starts");
    // The previous worker is gone: every step's `shutdown()` settles, so joins it.
    let worker = common::ThreadCpu::find("mcp-analytics").expect("the worker thread is in /proc");
    (guard, worker)
}

/// CPU milliseconds per million events.
fn cpu_per_million(cpu: Duration, events: u64) -> f64 {
    cpu.as_secs_f64() * 1e3 * 1e6 / events as f64
}

/// The benchmark's scratch directory under the system's temporary directory, removed on drop
/// (a failed run included).
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("mcp-analytics-bench-spool-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("a scratch directory");
        Scratch(dir)
    }

    /// A spool directory of its own for `step` of `sample`, not created yet: the spool creates
    /// it, as it would the first time a server runs.
    fn spool_dir(&self, step: &str, sample: usize) -> PathBuf {
        self.0.join(format!("{step}-{sample}"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The spooled files in `dir` (those being written have another name until they are whole).
fn spooled_files(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| path.to_string_lossy().ends_with(".ndjson.gz"))
                .collect()
        })
        .unwrap_or_default()
}

/// Events in the spooled files of `dir`, read off their names, which the spool writes as
/// `{created}-{pid}-{sequence}-{events}[-sent].{datasource}.ndjson.gz` (see
/// `mcp-analytics/src/spool/name.rs`): cheap enough to poll while the worker writes, where
/// decompressing every file would take a core from it.
fn events_on_disk(dir: &Path) -> usize {
    spooled_files(dir)
        .iter()
        .map(|path| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            name.split('-')
                .nth(3)
                .and_then(|events| events.split('.').next())
                .and_then(|events| events.parse::<usize>().ok())
                .unwrap_or_else(|| panic!("a spooled file's name without its events: {name}"))
        })
        .sum()
}

/// What the spooled files of a directory hold.
#[derive(Debug, Clone, Copy)]
struct Contents {
    files: usize,
    /// Their sizes on disk: gzip'd NDJSON.
    gzip_bytes: u64,
    /// Their sizes decompressed: the NDJSON rows.
    ndjson_bytes: u64,
    /// Their lines: one per event.
    events: u64,
}

fn contents(dir: &Path) -> Contents {
    let mut contents = Contents {
        files: 0,
        gzip_bytes: 0,
        ndjson_bytes: 0,
        events: 0,
    };
    for path in spooled_files(dir) {
        let gzipped = fs::read(&path).expect("a spooled file can be read");
        let mut ndjson = Vec::new();
        GzDecoder::new(&gzipped[..])
            .read_to_end(&mut ndjson)
            .unwrap_or_else(|error| panic!("{} is not whole gzip: {error}", path.display()));
        contents.files += 1;
        contents.gzip_bytes += gzipped.len() as u64;
        contents.ndjson_bytes += ndjson.len() as u64;
        contents.events += ndjson.iter().filter(|&&b| b == b'\n').count() as u64;
    }
    contents
}

/// Step 1: what one sample of spooling with the endpoint down measured.
struct Spooling {
    events_per_second: f64,
    /// The worker's CPU time over the same span, per million events.
    worker_cpu_ms_per_million: f64,
    /// The whole `shutdown()` call: secure, then deliver until the deadline.
    shutdown: Duration,
    /// The spool it left (the timed events, and the one in flight at the start).
    left: Contents,
}

/// Step 1: records `events` with the endpoint down (a loopback port nothing listens on), then
/// shuts down; the spool is left in `dir`.
fn spool_while_down(dir: &Path, events: u32) -> Spooling {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        listener.local_addr().expect("its address").port()
    };
    let (analytics, worker) = start(&format!("http://127.0.0.1:{port}"), "bench-token", dir);
    let start_of_outage = mcp_analytics::stats();
    // The outage catches a batch in flight: it is retried (backing off) until the shutdown
    // deadline. A retry counted says the worker is in it, and knows the endpoint is down.
    ev(IN_FLIGHT);
    let _ = mcp_analytics::flush(Duration::from_millis(10));
    wait_for("the first batch's retry", || {
        mcp_analytics::stats().retried > start_of_outage.retried
    });

    let before = mcp_analytics::stats();
    let cpu_before = worker.used();
    let started = Instant::now();
    emit(0..events);
    let shutdown = shutdown_in_background();
    let spooled = wait_for("every event spooled", || {
        mcp_analytics::stats().spooled - before.spooled >= u64::from(events)
    });
    let cpu = worker.used() - cpu_before;
    let (_, took, settled) = shutdown.join().expect("shutdown returns");
    drop(analytics);

    let after = mcp_analytics::stats();
    assert!(settled, "shutdown settled everything: {after:?}");
    assert_eq!(
        after.spooled - start_of_outage.spooled,
        u64::from(events) + 1,
        "every event is spooled, the one in flight included: {after:?}"
    );
    assert_eq!(after.dropped, start_of_outage.dropped, "nothing is dropped");
    assert_eq!(after.failed, start_of_outage.failed, "nothing fails");
    assert_eq!(after.sent, start_of_outage.sent, "nothing is sent");
    let left = contents(dir);
    assert_eq!(
        left.events,
        u64::from(events) + 1,
        "the spool holds every event once: {left:?}"
    );
    Spooling {
        events_per_second: f64::from(events) / (spooled - started).as_secs_f64(),
        worker_cpu_ms_per_million: cpu_per_million(cpu, u64::from(events)),
        shutdown: took,
        left,
    }
}

/// Step 2: what one sample of replay measured.
struct Replay {
    events_per_second: f64,
    worker_cpu_ms_per_million: f64,
    /// Of the time, `try_init` itself.
    init: Duration,
}

/// Step 2: starts a pipeline over the spool in `dir`, which holds `events`, with `receiver` up,
/// and waits until it has replayed them all and the spool is empty.
fn replay(dir: &Path, receiver: &Receiver, events: u64) -> Replay {
    let before = mcp_analytics::stats();
    let accepted = receiver.accepted_rows();
    let started = Instant::now();
    let (analytics, worker) = start(&receiver.url(), receiver.token(), dir);
    let init = started.elapsed();
    let replayed = wait_for("every spooled event replayed", || {
        mcp_analytics::stats().replayed - before.replayed >= events && spooled_files(dir).is_empty()
    });
    let cpu = worker.used();
    mcp_analytics::shutdown(Duration::from_secs(10)).expect("the receiver is up");
    drop(analytics);

    let after = mcp_analytics::stats();
    assert_eq!(after.replayed - before.replayed, events, "{after:?}");
    assert_eq!(after.discarded, before.discarded, "nothing is discarded");
    assert_eq!(
        (receiver.accepted_rows() - accepted) as u64,
        events,
        "the receiver accepted every spooled event"
    );
    Replay {
        events_per_second: events as f64 / (replayed - started).as_secs_f64(),
        worker_cpu_ms_per_million: cpu_per_million(cpu, events),
        init,
    }
}

/// Step 3: what one sample of live delivery measured.
#[derive(Clone, Copy)]
struct Live {
    events_per_second: f64,
    worker_cpu_ms_per_million: f64,
}

/// Step 3, the baseline: records `events` with `receiver` up (and the spool on, empty), until
/// `flush()` saw them all acknowledged.
fn deliver_live(dir: &Path, receiver: &Receiver, events: u32) -> Live {
    let (analytics, worker) = start(&receiver.url(), receiver.token(), dir);
    let before = mcp_analytics::stats();
    let accepted = receiver.accepted_rows();
    let cpu_before = worker.used();
    let started = Instant::now();
    emit(0..events);
    mcp_analytics::flush(PATIENCE).expect("the receiver acknowledges");
    let elapsed = started.elapsed();
    let cpu = worker.used() - cpu_before;
    mcp_analytics::shutdown(Duration::from_secs(10)).expect("the receiver is up");
    drop(analytics);

    let after = mcp_analytics::stats();
    assert_eq!(after.sent - before.sent, u64::from(events), "{after:?}");
    assert_eq!(after.spooled, before.spooled, "nothing is spooled");
    assert_eq!(after.dropped, before.dropped, "nothing is dropped");
    assert_eq!(
        (receiver.accepted_rows() - accepted) as u64,
        u64::from(events),
        "the receiver accepted every event"
    );
    Live {
        events_per_second: f64::from(events) / elapsed.as_secs_f64(),
        worker_cpu_ms_per_million: cpu_per_million(cpu, u64::from(events)),
    }
}

/// Step 4: what one sample of a shutdown with the endpoint hanging measured.
struct Securing {
    /// From calling `shutdown()` until `stats().spooled` counts the events waiting.
    counted: Duration,
    /// From calling `shutdown()` until the spooled files hold them and the held batch's copy.
    on_disk: Duration,
    /// The whole `shutdown()` call.
    shutdown: Duration,
    /// Events still in the queue (not yet taken by the worker) when `shutdown()` was called.
    queued: u64,
}

/// Step 4: with a request held unanswered, records `events`, lets the worker take them, and
/// shuts down.
fn secure_while_hanging(dir: &Path, events: u32) -> Securing {
    let hanging = Receiver::start();
    hanging.script(std::iter::repeat_n(Scripted::Hang, 100));
    let (analytics, _) = start(&hanging.url(), hanging.token(), dir);
    ev(IN_FLIGHT);
    let _ = mcp_analytics::flush(Duration::from_millis(10));
    let held = hanging.wait_for_requests(1, PATIENCE);
    assert!(held.len() == 1 && held[0].status == 0, "held: {held:?}");

    emit(0..events);
    // The worker takes them into its next batch while the request hangs, up to the batch's
    // size limit (8 MiB): these events fit in it, so the queue empties.
    let taken = Instant::now();
    while mcp_analytics::stats().queued > 0 && taken.elapsed() < Duration::from_secs(2) {
        thread::sleep(POLL);
    }
    let before = mcp_analytics::stats();
    let shutdown = shutdown_in_background();
    let counted = wait_for("the waiting events spooled", || {
        mcp_analytics::stats().spooled - before.spooled >= u64::from(events)
    });
    let on_disk = wait_for("the waiting events and the held batch on disk", || {
        events_on_disk(dir) > events as usize
    });
    let (called, took, settled) = shutdown.join().expect("shutdown returns");
    drop(analytics);

    let after = mcp_analytics::stats();
    assert!(settled, "shutdown settled everything: {after:?}");
    assert_eq!(
        after.spooled - before.spooled,
        u64::from(events) + 1,
        "every event is spooled, the held one included: {after:?}"
    );
    assert_eq!(after.dropped, before.dropped, "nothing is dropped");
    assert_eq!(after.failed, before.failed, "nothing fails");
    Securing {
        counted: counted - called,
        on_disk: on_disk - called,
        shutdown: took,
        queued: before.queued,
    }
}

/// The file system `path` is on, from `/proc/self/mounts` (Linux); "unknown" elsewhere.
fn file_system(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    fs::read_to_string("/proc/self/mounts")
        .ok()
        .and_then(|mounts| {
            mounts
                .lines()
                .filter_map(|line| {
                    let mut fields = line.split_whitespace();
                    let (device, mount, kind) = (fields.next()?, fields.next()?, fields.next()?);
                    path.starts_with(mount)
                        .then(|| (mount.len(), format!("{kind} ({device})")))
                })
                .max_by_key(|(length, _)| *length)
                .map(|(_, file_system)| file_system)
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The median of `figure` over `samples`.
fn median<T>(samples: &[T], figure: impl Fn(&T) -> f64) -> f64 {
    common::median(samples.iter().map(figure).collect())
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// `value` (not negative) with `decimals` decimals and thousands separators.
fn number(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if fraction.is_empty() {
        grouped
    } else {
        format!("{grouped}.{fraction}")
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // A name filter (`cargo bench -- pipeline`) that does not match this benchmark skips it.
    let filters: Vec<&String> = args.iter().filter(|arg| !arg.starts_with('-')).collect();
    if !filters.is_empty()
        && !filters
            .iter()
            .any(|filter| "spool".contains(filter.as_str()))
    {
        return;
    }
    // `cargo bench` passes `--bench`; without it (`cargo test --benches`), one small sample of
    // each step checks that the benchmark works.
    let bench = args.iter().any(|arg| arg == "--bench");
    let (samples, events, shutdown_events) = if bench {
        (SAMPLES, EVENTS, SHUTDOWN_EVENTS)
    } else {
        (1, EVENTS / 10, SHUTDOWN_EVENTS / 10)
    };

    let scratch = Scratch::new();
    let file_system = file_system(&scratch.0);
    let receiver = Receiver::builder().keep_rows(false).build();
    let mut spooling = Vec::new();
    let mut replays = Vec::new();
    let mut live = Vec::new();
    let mut securing = Vec::new();
    for sample in 0..samples {
        let dir = scratch.spool_dir("spooled", sample);
        let spooled = spool_while_down(&dir, events);
        replays.push(replay(&dir, &receiver, spooled.left.events));
        spooling.push(spooled);
        live.push(deliver_live(
            &scratch.spool_dir("live", sample),
            &receiver,
            events,
        ));
        securing.push(secure_while_hanging(
            &scratch.spool_dir("hanging", sample),
            shutdown_events,
        ));
        eprintln!(
            "sample {}/{samples}: spooling {} events/s, replay {} events/s, live {} events/s, \
             secured in {} ms",
            sample + 1,
            number(spooling[sample].events_per_second, 0),
            number(replays[sample].events_per_second, 0),
            number(live[sample].events_per_second, 0),
            number(ms(securing[sample].counted), 1),
        );
    }
    drop(receiver);
    drop(scratch);

    let live_rate = median(&live, |l| l.events_per_second);
    let spool_rate = median(&spooling, |s| s.events_per_second);
    let replay_rate = median(&replays, |r| r.events_per_second);
    let per_event = |bytes: fn(&Contents) -> u64| {
        median(&spooling, |s| bytes(&s.left) as f64 / s.left.events as f64)
    };
    let summary = json!({
        "samples": samples,
        "events": events,
        "shutdown_events": shutdown_events,
        "shutdown_timeout_ms": ms(SHUTDOWN_TIMEOUT),
        "file_system": file_system,
        "live": {
            "events_per_second": live_rate,
            "worker_cpu_ms_per_million": median(&live, |l| l.worker_cpu_ms_per_million),
        },
        "spooling": {
            "events_per_second": spool_rate,
            "ratio_to_live": spool_rate / live_rate,
            "worker_cpu_ms_per_million": median(&spooling, |s| s.worker_cpu_ms_per_million),
            "shutdown_ms": median(&spooling, |s| ms(s.shutdown)),
        },
        "replay": {
            "events_per_second": replay_rate,
            "ratio_to_live": replay_rate / live_rate,
            "worker_cpu_ms_per_million": median(&replays, |r| r.worker_cpu_ms_per_million),
            "init_ms": median(&replays, |r| ms(r.init)),
        },
        "disk": {
            "gzip_bytes_per_event": per_event(|c| c.gzip_bytes),
            "ndjson_bytes_per_event": per_event(|c| c.ndjson_bytes),
            "files": median(&spooling, |s| s.left.files as f64),
        },
        "shutdown": {
            "counted_ms": median(&securing, |s| ms(s.counted)),
            "on_disk_ms": median(&securing, |s| ms(s.on_disk)),
            "shutdown_ms": median(&securing, |s| ms(s.shutdown)),
            "queued_at_shutdown": median(&securing, |s| s.queued as f64),
        },
    });
    print_table(&summary);
    if bench {
        common::report("spool", &summary);
    }
}

/// The summary, as a table a reader takes in at a glance.
fn print_table(summary: &Value) {
    let f = |path: &str| {
        summary
            .pointer(path)
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN)
    };
    let rows = [
        (
            "live delivery, endpoint up (baseline)".to_owned(),
            format!(
                "{} events/s; worker CPU {} ms per million",
                number(f("/live/events_per_second"), 0),
                number(f("/live/worker_cpu_ms_per_million"), 0)
            ),
        ),
        (
            "spooling, endpoint down".to_owned(),
            format!(
                "{} events/s ({}x live); worker CPU {} ms per million",
                number(f("/spooling/events_per_second"), 0),
                number(f("/spooling/ratio_to_live"), 2),
                number(f("/spooling/worker_cpu_ms_per_million"), 0)
            ),
        ),
        (
            "replay at start, endpoint up".to_owned(),
            format!(
                "{} events/s ({}x live); worker CPU {} ms per million",
                number(f("/replay/events_per_second"), 0),
                number(f("/replay/ratio_to_live"), 2),
                number(f("/replay/worker_cpu_ms_per_million"), 0)
            ),
        ),
        (
            "on disk per event: gzip'd / as NDJSON".to_owned(),
            format!(
                "{} / {} bytes ({} files)",
                number(f("/disk/gzip_bytes_per_event"), 1),
                number(f("/disk/ndjson_bytes_per_event"), 1),
                number(f("/disk/files"), 0)
            ),
        ),
        (
            format!(
                "shutdown, endpoint hanging: {} events counted spooled",
                number(f("/shutdown_events"), 0)
            ),
            format!("{} ms", number(f("/shutdown/counted_ms"), 1)),
        ),
        (
            "... and on disk with the held batch".to_owned(),
            format!("{} ms", number(f("/shutdown/on_disk_ms"), 1)),
        ),
        (
            "... shutdown() returned (deadline)".to_owned(),
            format!(
                "{} ms of {} ms",
                number(f("/shutdown/shutdown_ms"), 0),
                number(f("/shutdown_timeout_ms"), 0)
            ),
        ),
        (
            "shutdown after spooling, endpoint down".to_owned(),
            format!("{} ms", number(f("/spooling/shutdown_ms"), 0)),
        ),
    ];
    let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    println!(
        "\nspool: medians of {} samples, {} events each; spool on {}",
        number(f("/samples"), 0),
        number(f("/events"), 0),
        summary["file_system"].as_str().unwrap_or("unknown")
    );
    for (label, value) in rows {
        println!("  {label:<width$}  {value}");
    }
}
