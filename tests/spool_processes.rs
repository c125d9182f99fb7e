//! The disk spool shared by several processes: copies of one server that exit while the Events
//! API is down or asks them to wait, start at the same moment, die by `kill -9` while writing,
//! or fill their disk, all over one spool directory. Whatever happens to the processes, every
//! event that reached a whole spool file arrives once, and nothing else arrives.
//!
//! Each copy of the server is a child process: this test binary run again for one of the
//! `child_*` tests below ([`common::spawn_own_process`]), told by environment variables which
//! events to record, where the receiver and the spool are; in a normal run those tests do
//! nothing. The parent owns the loopback receiver and judges what arrived. Child `k` records
//! events named `ev-{k * 1000 + j}`, so every event is told apart whichever process delivered
//! it, and the copies print their counters (`mcp_analytics::stats()`) for the parent to add up.
//!
//! The parent steers the children through their stdin rather than by sleeping: a child waits
//! for a line before it starts, when asked to start with another, and for the end of its stdin
//! before it exits (which dropping the guard makes a shutdown: secure to disk, then send in
//! the time left). A parent that fails drops its children's stdin: they stop soon after.
//!
//! Each test prints one line of figures, visible with `--nocapture`:
//!
//! ```text
//! spool <name>: emitted N, delivered-unique N, duplicated D, discarded X, spooled S, replayed R, …
//! ```
//!
//! The spool within one process is `spool.rs`. Unix only: `kill -9`, and mount namespaces
//! for the full disk (on Linux).

#![cfg(unix)]

mod common;

use std::cell::RefCell;
use std::io::{BufRead as _, Write as _};
use std::ops::{AddAssign, Range};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use common::{SpoolDir, Tally, emit, eventually, in_child, spawn_own_process, wait_own_process};
use mcp_analytics::Builder;
use mcp_analytics_receiver::{DEFAULT_TOKEN, Receiver, Row, Scripted};

// What the parent tells a child, in its environment (see `Run`).
/// The receiver's URL.
const URL: &str = "SPOOL_PROCS_URL";
/// The spool directory every copy shares.
const DIR: &str = "SPOOL_PROCS_DIR";
/// The first of the events it records, and how many.
const FIRST: &str = "SPOOL_PROCS_FIRST";
const COUNT: &str = "SPOOL_PROCS_COUNT";
/// `max_batch_events`, when not the default.
const BATCH: &str = "SPOOL_PROCS_BATCH";
/// A file to create once loaded, before waiting for the parent's word to go on.
const READY: &str = "SPOOL_PROCS_READY";

/// The longest any child may take: far more than any needs, so that only a hung child hits it.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest the parent waits for rows, or for the spool to empty.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// Scenarios run one after the other: each starts up to a handful of processes, and a 2-core
/// machine running two scenarios' worth beside a build would only make every timeout tighter.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static SCENARIOS: Mutex<()> = Mutex::new(());
    SCENARIOS.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------
// The children.

/// A copy of the server (in a child process only): waits for a line on its stdin first if told
/// to (`READY`), records its events, and exits, shutting analytics down, once its stdin ends;
/// then prints its counters.
#[test]
fn child_server() {
    if !in_child() {
        return;
    }
    if let Some(ready) = std::env::var_os(READY) {
        std::fs::write(ready, b"").expect("the ready marker is written");
        if !parent_says_go() {
            return; // The parent gave up on this copy.
        }
    }
    let mut builder = child_builder();
    if let Some(events) = number(BATCH) {
        builder = builder.max_batch_events(events as usize);
    }
    let analytics = builder.try_init().expect("analytics starts");
    let first = number(FIRST).unwrap_or(0);
    emit(first..first + number(COUNT).unwrap_or(0));
    wait_for_release();
    drop(analytics);
    print_counters("");
}

/// A busy copy of the server (in a child process only) against a dead endpoint, with one
/// attempt per batch and small batches: it writes spool files continuously until the parent
/// kills it (or, should the parent be gone, until its stdin ends).
#[test]
fn child_spools_until_killed() {
    if !in_child() {
        return;
    }
    let _analytics = child_builder()
        .max_attempts(1)
        .max_batch_events(20)
        .max_batch_age(Duration::from_millis(5))
        // Every failed batch is one attempt and one file: don't let pacing slow the writes.
        .max_requests_per_second(1000)
        .try_init()
        .expect("analytics starts");
    let released = Arc::new(AtomicBool::new(false));
    std::thread::spawn({
        let released = Arc::clone(&released);
        move || {
            wait_for_release();
            released.store(true, Ordering::Relaxed);
        }
    });
    let started = Instant::now();
    let mut i = 0;
    while !released.load(Ordering::Relaxed) && started.elapsed() < CHILD_TIMEOUT {
        emit(i..i + 20);
        i += 20;
        // The pace of a busy server, not a wait for anything: the queue keeps up.
        std::thread::sleep(Duration::from_millis(3));
    }
}

/// Events a round of [`child_fills_a_tiny_disk`] records: one batch, one file.
const TINY_DISK_ROUND: u32 = 50;
/// Most rounds: a 64 KiB disk holds a few dozen files of 50 events, this is ten times that.
const TINY_DISK_ROUNDS: u32 = 400;
/// What [`child_fills_a_tiny_disk`] records last, on a full disk, the endpoint up again.
const TINY_DISK_AT_EXIT: Range<u32> =
    TINY_DISK_ROUNDS * TINY_DISK_ROUND..TINY_DISK_ROUNDS * TINY_DISK_ROUND + 10;

/// A copy of the server (in a child process only) whose spool is a tiny filesystem of its own
/// (see [`spool_processes_a_full_disk_warns_once_and_counts_the_rest_failed`]): it records
/// against a dead endpoint round after round, until a few rounds after the disk first refused
/// a file. The handler keeps answering, nothing is dropped, and what the disk refused counts as
/// failed. Then, once the parent has brought the endpoint back, it records a few more events
/// and exits at once: the disk refuses them too, and they go out all the same.
#[test]
fn child_fills_a_tiny_disk() {
    if !in_child() {
        return;
    }
    let analytics = child_builder()
        .max_attempts(1)
        .max_batch_events(TINY_DISK_ROUND as usize)
        .try_init()
        .expect("analytics starts");
    let mut emitted = 0;
    let mut rounds_refused = 0;
    let mut last_refused = false;
    for round in 0..TINY_DISK_ROUNDS {
        let failed_before = mcp_analytics::stats().failed;
        // The handler keeps working: the events are taken, none dropped (checked below).
        emit(round * TINY_DISK_ROUND..(round + 1) * TINY_DISK_ROUND);
        emitted += u64::from(TINY_DISK_ROUND);
        let settled = eventually(CHILD_TIMEOUT, || {
            let stats = mcp_analytics::stats();
            stats.spooled + stats.failed + stats.dropped == emitted
        });
        let stats = mcp_analytics::stats();
        assert!(settled, "the round is settled: {stats:?}");
        last_refused = stats.failed > failed_before;
        rounds_refused += u32::from(last_refused);
        // Refused a few times, the last time too: the disk is full, not nearly.
        if rounds_refused >= 4 && last_refused {
            break;
        }
    }
    let stats = mcp_analytics::stats();
    assert!(last_refused, "the disk never filled: {stats:?}");
    // Full for a file of 50 events may leave room for a smaller one: take the last bytes, so
    // that the disk surely refuses what comes at exit.
    let dir = PathBuf::from(var(DIR));
    take_the_last_bytes(&dir.join("filler"));

    std::fs::write(var(READY), b"").expect("the ready marker is written");
    if !parent_says_go() {
        return;
    }
    emit(TINY_DISK_AT_EXIT);
    emitted += TINY_DISK_AT_EXIT.len() as u64;
    // The batch is still open: the shutdown finds it, and the disk refuses it.
    drop(analytics);

    let files = whole_files(&dir);
    let on_disk: u64 = files.iter().map(|name| events_in(name)).sum();
    let stats = mcp_analytics::stats();
    assert_eq!(stats.enqueued, emitted, "{stats:?}");
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert_eq!(
        stats.spooled + stats.failed + stats.sent,
        emitted,
        "{stats:?}"
    );
    assert!(stats.spooled > 0 && stats.failed > 0, "{stats:?}");
    assert_eq!(
        on_disk,
        stats.spooled - stats.replayed,
        "the files hold what was spooled and not replayed: {files:?}"
    );
    assert!(
        partial_files(&dir).is_empty(),
        "a refused file is not left half-written"
    );
    print_counters(&format!("files={}", files.len()));
}

/// Writes `path` until the disk (a tmpfs: no cache to flush) refuses more.
fn take_the_last_bytes(path: &Path) {
    let mut filler = std::fs::File::create(path).expect("a filler file");
    while filler.write_all(&[b'x'; 512]).is_ok() {}
}

/// What every copy of the server starts with: the parent's receiver, the shared spool, batches
/// that close quickly.
fn child_builder() -> Builder {
    mcp_analytics::builder()
        .read_env(false)
        .api_url(var(URL))
        .token(DEFAULT_TOKEN)
        .spool(true)
        .spool_dir(var(DIR))
        .max_batch_age(Duration::from_millis(20))
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("the parent sets {name}"))
}

fn number(name: &str) -> Option<u32> {
    std::env::var(name)
        .ok()
        .map(|text| text.parse().unwrap_or_else(|_| panic!("{name}={text}")))
}

/// Blocks until the parent writes a line (true) or closes stdin (false).
fn parent_says_go() -> bool {
    let mut line = String::new();
    matches!(std::io::stdin().lock().read_line(&mut line), Ok(n) if n > 0)
}

/// Blocks until the parent closes stdin: its word that this copy may exit.
fn wait_for_release() {
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
}

/// Prints this process's counters for the parent ([`Counters::parse`]), with `extra` fields.
fn print_counters(extra: &str) {
    let stats = mcp_analytics::stats();
    // On a line of its own: libtest may have printed the test's name without a newline.
    println!(
        "\nchild-counters enqueued={} sent={} failed={} dropped={} spooled={} replayed={} \
         discarded={} maybe_duplicated={} {extra}",
        stats.enqueued,
        stats.sent,
        stats.failed,
        stats.dropped,
        stats.spooled,
        stats.replayed,
        stats.discarded,
        stats.maybe_duplicated,
    );
}

// ---------------------------------------------------------------------------------------------
// The parent's side.

/// What one copy of the server is told to do.
#[derive(Clone, Default)]
struct Run {
    /// The events it records.
    events: Range<u32>,
    /// `max_batch_events`, if not the default: smaller batches, more files.
    batch: Option<u32>,
    /// A file it creates once loaded, before waiting for a line on its stdin to start.
    ready: Option<PathBuf>,
}

impl Run {
    /// Copy `k` of the server, recording `count` events of its own.
    fn recording(k: u32, count: u32) -> Self {
        Self {
            events: k * 1000..k * 1000 + count,
            ..Self::default()
        }
    }

    /// The names of the events it records.
    fn names(&self) -> Vec<String> {
        self.events.clone().map(|i| format!("ev-{i}")).collect()
    }

    /// Starts it against `receiver`, over `spool`.
    fn spawn(&self, receiver: &Receiver, spool: &SpoolDir) -> Child {
        spawn_with("child_server", &self.env(receiver, spool))
    }

    fn env(&self, receiver: &Receiver, spool: &SpoolDir) -> Vec<(&'static str, String)> {
        let mut env = vec![
            (URL, receiver.url()),
            (DIR, spool.0.display().to_string()),
            (FIRST, self.events.start.to_string()),
            (COUNT, self.events.len().to_string()),
        ];
        if let Some(batch) = self.batch {
            env.push((BATCH, batch.to_string()));
        }
        if let Some(ready) = &self.ready {
            env.push((READY, ready.display().to_string()));
        }
        env
    }
}

/// Spawns a child for `test` with `env`, as [`Run::env`] builds it.
fn spawn_with(test: &str, env: &[(&'static str, String)]) -> Child {
    spawn_own_process(test, &borrowed(env))
}

fn borrowed<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    env.iter()
        .map(|(key, value)| (*key, value.as_str()))
        .collect()
}

/// A child's counters, as it printed them on exit.
#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    enqueued: u64,
    sent: u64,
    failed: u64,
    dropped: u64,
    spooled: u64,
    replayed: u64,
    discarded: u64,
    maybe_duplicated: u64,
}

impl Counters {
    /// Reads the `child-counters` line of a child's stdout.
    fn parse(stdout: &str) -> Self {
        let line = stdout
            .lines()
            .find_map(|line| line.split_once("child-counters ").map(|(_, rest)| rest))
            .unwrap_or_else(|| panic!("the child printed no counters:\n{stdout}"));
        let mut counters = Self::default();
        for field in line.split_whitespace() {
            let Some((key, value)) = field.split_once('=') else {
                continue;
            };
            let slot = match key {
                "enqueued" => &mut counters.enqueued,
                "sent" => &mut counters.sent,
                "failed" => &mut counters.failed,
                "dropped" => &mut counters.dropped,
                "spooled" => &mut counters.spooled,
                "replayed" => &mut counters.replayed,
                "discarded" => &mut counters.discarded,
                "maybe_duplicated" => &mut counters.maybe_duplicated,
                _ => continue,
            };
            *slot = value
                .parse()
                .unwrap_or_else(|_| panic!("{field} in {line}"));
        }
        counters
    }

    /// Asserts that everything it recorded was either sent or spooled: nothing lost.
    #[track_caller]
    fn assert_nothing_lost(&self, what: &str) {
        assert_eq!(
            (self.failed, self.dropped, self.discarded),
            (0, 0, 0),
            "{what}: {self:?}"
        );
    }
}

impl AddAssign for Counters {
    fn add_assign(&mut self, other: Self) {
        self.enqueued += other.enqueued;
        self.sent += other.sent;
        self.failed += other.failed;
        self.dropped += other.dropped;
        self.spooled += other.spooled;
        self.replayed += other.replayed;
        self.discarded += other.discarded;
        self.maybe_duplicated += other.maybe_duplicated;
    }
}

/// Lets a child exit (closes its stdin) and waits for it; fails if it failed, or if any of
/// its threads panicked or it met an unreadable spool file. Returns its counters.
#[track_caller]
fn finish(child: Child) -> Counters {
    let output = wait_own_process(child, CHILD_TIMEOUT);
    let (stdout, stderr) = texts(&output);
    assert!(
        output.status.success() && !stderr.contains("panicked") && !stderr.contains("set aside"),
        "a child failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    Counters::parse(&stdout)
}

/// Finishes every child, adding up their counters. All are let go at once, so that they shut
/// down side by side, not one after the other.
#[track_caller]
fn finish_all(mut children: Vec<Child>) -> Counters {
    for child in &mut children {
        drop(child.stdin.take());
    }
    let mut total = Counters::default();
    for child in children {
        total += finish(child);
    }
    total
}

fn texts(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Waits until at least `n` rows arrived and the spool holds no file; fails after the timeout.
#[track_caller]
fn wait_delivered(receiver: &Receiver, spool: &SpoolDir, n: usize) {
    let rows = receiver.wait_for_rows(n, DELIVERY_TIMEOUT).len();
    assert!(rows >= n, "only {rows} of {n} rows arrived");
    let emptied = eventually(DELIVERY_TIMEOUT, || spool.files().is_empty());
    assert!(emptied, "the spool still holds {:?}", spool.files());
}

/// Asserts that the receiver refused no request: every body a process sent, from whichever
/// file, was whole gzip of well-formed rows. A 429 is the scenario's own script.
#[track_caller]
fn assert_no_request_refused(receiver: &Receiver) {
    for request in receiver.requests() {
        let refused = (400..500).contains(&request.status) && request.status != 429;
        assert!(!refused, "a request was refused: {request:?}");
        assert_eq!(request.quarantined, 0, "rows were quarantined: {request:?}");
    }
}

/// Asserts that every emitted name arrived, and none more than `tolerated` extra times in all
/// (events a process said it may have delivered already: see `Stats::maybe_duplicated`), and
/// prints the scenario's figures, with `extra` at the end.
#[track_caller]
fn assert_each_once(
    name: &str,
    emitted: &[String],
    rows: &[Row],
    children: Counters,
    tolerated: u64,
    extra: &str,
) {
    let tally = Tally::of(emitted, rows);
    println!(
        "spool {name}: emitted {}, delivered-unique {}, duplicated {}, discarded {}, \
         spooled {}, replayed {}, maybe-duplicated {}{extra}",
        tally.emitted,
        tally.delivered_unique,
        tally.duplicates,
        children.discarded,
        children.spooled,
        children.replayed,
        children.maybe_duplicated,
    );
    tally.assert_nothing_lost();
    assert!(
        tally.duplicates as u64 <= tolerated,
        "delivered more than once: {:?} ({children:?})",
        tally
            .copies
            .iter()
            .filter(|&(_, &n)| n > 1)
            .collect::<Vec<_>>()
    );
}

/// The whole spooled files in `dir`: what a later run may send.
fn whole_files(dir: &Path) -> Vec<String> {
    names_in(dir, |name| name.ends_with(".ndjson.gz"))
}

/// The files in `dir` being written, or left half-written by a writer that died.
fn partial_files(dir: &Path) -> Vec<String> {
    names_in(dir, |name| name.starts_with(".partial-"))
}

fn names_in(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| keep(name))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The events a spooled file holds, as its name says:
/// `{created}-{pid}-{sequence}-{events}[-sent].{datasource}.ndjson.gz`.
fn events_in(name: &str) -> u64 {
    let (stem, _) = name.split_once('.').expect("a spooled file's name");
    stem.split('-')
        .nth(3)
        .and_then(|events| events.parse().ok())
        .unwrap_or_else(|| panic!("no event count in `{name}`"))
}

// ---------------------------------------------------------------------------------------------
// The scenarios.

#[test]
fn spool_processes_exits_while_down_and_while_rate_limited_then_a_later_copy_delivers_once() {
    let _turn = one_at_a_time();
    let spool = SpoolDir::new("procs-exits");
    let receiver = Receiver::start();

    // A copy exits with the endpoint down: everything goes to disk.
    receiver.go_down();
    let down = Run::recording(0, 170);
    let down_counters = finish(down.spawn(&receiver, &spool));
    assert_eq!(down_counters.spooled, 170, "{down_counters:?}");
    down_counters.assert_nothing_lost("the copy that exited while the endpoint was down");
    assert!(!spool.files().is_empty());

    // Another exits while the endpoint asks it to wait: the first answer is a 429 with
    // `Retry-After: 1`, and it exits during that second.
    receiver.go_up();
    receiver.script([
        Scripted::retry_after(429, "1"),
        Scripted::retry_after(429, "1"),
        Scripted::retry_after(429, "1"),
    ]);
    let limited = Run::recording(1, 170);
    let child = limited.spawn(&receiver, &spool);
    let requests = receiver.wait_for_requests(1, DELIVERY_TIMEOUT);
    assert_eq!(
        requests.first().map(|r| r.status),
        Some(429),
        "{requests:?}"
    );
    let limited_counters = finish(child);
    limited_counters.assert_nothing_lost("the copy that exited during 429s");

    // A later copy, the endpoint up: it sends what both left.
    let later = Run::default().spawn(&receiver, &spool);
    let emitted = [down.names(), limited.names()].concat();
    wait_delivered(&receiver, &spool, emitted.len());
    let later_counters = finish(later);
    let mut children = down_counters;
    children += limited_counters;
    children += later_counters;
    // Read once every copy is gone: nothing can arrive any more.
    let rows = receiver.rows();
    assert_no_request_refused(&receiver);
    assert_each_once(
        "exits-down-and-429",
        &emitted,
        &rows,
        children,
        // A 429 answered in time leaves nothing uncertain; only a send cut short by the
        // deadline, which a very slow machine could cause, may have reached the receiver.
        children.maybe_duplicated,
        &format!(", spooled by the 429 copy {}", limited_counters.spooled),
    );
    assert_eq!(
        children.sent + children.replayed,
        rows.len() as u64,
        "the copies' ledgers add up to what arrived: {children:?}"
    );
    assert!(spool.files().is_empty(), "{:?}", spool.files());
}

#[test]
fn spool_processes_twenty_short_lived_copies_then_one_delivers_every_event_once() {
    /// Copies running at once: enough to write beside each other, few enough for 2 cores.
    const AT_ONCE: u32 = 10;
    const COPIES: u32 = 20;
    let _turn = one_at_a_time();
    let spool = SpoolDir::new("procs-twenty");
    let receiver = Receiver::start();
    receiver.go_down();

    let mut emitted = Vec::new();
    let mut children = Counters::default();
    for wave in 0..COPIES / AT_ONCE {
        let runs: Vec<Run> = (0..AT_ONCE)
            .map(|k| Run::recording(wave * AT_ONCE + k, 50))
            .collect();
        let started: Vec<Child> = runs
            .iter()
            .map(|run| run.spawn(&receiver, &spool))
            .collect();
        let wave_counters = finish_all(started);
        assert_eq!(
            wave_counters.spooled,
            u64::from(AT_ONCE * 50),
            "{wave_counters:?}"
        );
        wave_counters.assert_nothing_lost("a short-lived copy");
        children += wave_counters;
        emitted.extend(runs.iter().flat_map(Run::names));
    }
    let files = spool.files().len();

    receiver.go_up();
    let later = Run::default().spawn(&receiver, &spool);
    wait_delivered(&receiver, &spool, emitted.len());
    let later_counters = finish(later);
    children += later_counters;
    let rows = receiver.rows();
    assert_no_request_refused(&receiver);
    assert_each_once(
        "twenty-copies",
        &emitted,
        &rows,
        children,
        0,
        &format!(", processes {}, files {files}", COPIES + 1),
    );
    assert_eq!(
        later_counters.replayed,
        emitted.len() as u64,
        "{later_counters:?}"
    );
}

#[test]
fn spool_processes_two_copies_starting_at_once_send_each_file_once() {
    const FILLERS: u32 = 4;
    let _turn = one_at_a_time();
    let spool = SpoolDir::new("procs-two-at-once");
    let markers = SpoolDir::new("procs-two-at-once-ready");
    std::fs::create_dir_all(&markers.0).expect("a directory for the ready markers");
    let receiver = Receiver::start();

    // Earlier copies leave many small files, the endpoint down.
    receiver.go_down();
    let fillers: Vec<Run> = (0..FILLERS)
        .map(|k| Run {
            batch: Some(10),
            ..Run::recording(k, 50)
        })
        .collect();
    let started: Vec<Child> = fillers
        .iter()
        .map(|run| run.spawn(&receiver, &spool))
        .collect();
    let mut children = finish_all(started);
    children.assert_nothing_lost("a copy filling the spool");
    let emitted: Vec<String> = fillers.iter().flat_map(Run::names).collect();
    let files = spool.files().len();
    assert!(files >= 10, "the spool holds {files} files");

    // Two copies, both loaded and waiting, are told to start in the same instant.
    receiver.go_up();
    let copies: Vec<(Child, PathBuf)> = (0..2)
        .map(|k| {
            let ready = markers.0.join(format!("ready-{k}"));
            let run = Run {
                ready: Some(ready.clone()),
                ..Run::default()
            };
            (run.spawn(&receiver, &spool), ready)
        })
        .collect();
    let loaded = eventually(CHILD_TIMEOUT, || {
        copies.iter().all(|(_, ready)| ready.exists())
    });
    assert!(loaded, "both copies are loaded");
    let mut copies: Vec<Child> = copies.into_iter().map(|(child, _)| child).collect();
    for child in &mut copies {
        let stdin = child.stdin.as_mut().expect("the child's stdin");
        stdin
            .write_all(b"go\n")
            .expect("the child is told to start");
    }
    wait_delivered(&receiver, &spool, emitted.len());
    let split: Vec<u64> = copies
        .into_iter()
        .map(|child| {
            let counters = finish(child);
            children += counters;
            counters.replayed
        })
        .collect();
    let rows = receiver.rows();
    assert_no_request_refused(&receiver);
    assert_each_once(
        "two-at-once",
        &emitted,
        &rows,
        children,
        0,
        &format!(", files {files}, replayed by each {split:?}"),
    );
    assert_eq!(rows.len(), emitted.len(), "no file was sent twice");
    assert_eq!(
        split.iter().sum::<u64>(),
        emitted.len() as u64,
        "no file was counted by both copies"
    );
}

#[test]
fn spool_processes_kill_9_while_spooling_leaves_only_whole_files() {
    let _turn = one_at_a_time();
    let spool = SpoolDir::new("procs-kill-9");
    let receiver = Receiver::start();
    receiver.go_down();

    let env = Run::default().env(&receiver, &spool);
    let mut busy = spawn_with("child_spools_until_killed", &env);
    let spooling = eventually(CHILD_TIMEOUT, || spool.files().len() >= 5);
    assert!(
        spooling,
        "the busy copy writes spool files: {:?}",
        spool.files()
    );
    // Best effort: kill it just as a file is being written, if one is seen in time.
    let caught_writing = eventually(Duration::from_secs(2), || {
        !partial_files(&spool.0).is_empty()
    });
    busy.kill().expect("the busy copy is killed");
    let output = wait_own_process(busy, CHILD_TIMEOUT);
    assert_eq!(output.status.signal(), Some(9), "{:?}", texts(&output));

    // What a later run may send: the whole files, as their names count them.
    let files = whole_files(&spool.0);
    let partial = partial_files(&spool.0);
    let in_files: u64 = files.iter().map(|name| events_in(name)).sum();
    receiver.go_up();
    let later = Run::default().spawn(&receiver, &spool);
    wait_delivered(&receiver, &spool, in_files as usize);
    let later_counters = finish(later);
    let rows = receiver.rows();
    assert_no_request_refused(&receiver);

    let arrived: Vec<&str> = rows.iter().map(|row| row.record_str("tool")).collect();
    let mut unique = arrived.clone();
    unique.sort_unstable();
    unique.dedup();
    println!(
        "spool kill-9: emitted {in_files} in whole files ({} files, {} partial left, a write \
         seen under way at the kill: {}), delivered-unique {}, duplicated {}, discarded {}, \
         replayed {}",
        files.len(),
        partial.len(),
        if caught_writing { "yes" } else { "no" },
        unique.len(),
        arrived.len() - unique.len(),
        later_counters.discarded,
        later_counters.replayed,
    );
    assert_eq!(
        rows.len() as u64,
        in_files,
        "exactly the whole files' rows arrived"
    );
    assert_eq!(unique.len(), arrived.len(), "no name arrived twice");
    assert_eq!(later_counters.replayed, in_files, "{later_counters:?}");
    later_counters.assert_nothing_lost("the later copy");
    // A half-written file is never taken for a spooled one: still there (it is removed only
    // once old), unsent.
    assert_eq!(
        partial_files(&spool.0),
        partial,
        "partial files are left alone"
    );
}

#[test]
fn spool_processes_a_full_disk_warns_once_and_counts_the_rest_failed() {
    let _turn = one_at_a_time();
    if let Err(why) = can_mount_in_a_namespace() {
        println!("spool full-disk: skipped: {why}");
        return;
    }
    let spool = SpoolDir::new("procs-full-disk");
    // The mount point: the child mounts a 64 KiB tmpfs over it, in its own mount namespace.
    std::fs::create_dir_all(&spool.0).expect("the mount point");
    let markers = SpoolDir::new("procs-full-disk-ready");
    std::fs::create_dir_all(&markers.0).expect("a directory for the ready marker");
    let ready = markers.0.join("full");
    let receiver = Receiver::start();
    receiver.go_down();

    let run = Run {
        ready: Some(ready.clone()),
        ..Run::default()
    };
    let env = run.env(&receiver, &spool);
    let inner = common::own_process_command("child_fills_a_tiny_disk", &borrowed(&env));
    let mut command = Command::new("unshare");
    command
        .args(["-rm", "sh", "-c", TINY_DISK_SCRIPT, "sh"])
        .arg(&spool.0)
        .arg(inner.get_program())
        .args(inner.get_args())
        .current_dir(std::env::temp_dir());
    for (key, value) in inner.get_envs() {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    let child = RefCell::new(common::spawn_piped(&mut command));

    // Once its disk is full, the endpoint comes back, and the child records its last events.
    // (A child that could not mount its disk exits at once: no need to wait for it.)
    let full_or_gone = eventually(CHILD_TIMEOUT, || {
        ready.exists() || matches!(child.borrow_mut().try_wait(), Ok(Some(_)))
    });
    assert!(full_or_gone, "the child fills its disk");
    let mut child = child.into_inner();
    if ready.exists() {
        receiver.go_up();
        let stdin = child.stdin.as_mut().expect("the child's stdin");
        stdin
            .write_all(b"go\n")
            .expect("the child is told to go on");
    }
    let output = wait_own_process(child, CHILD_TIMEOUT);
    let (stdout, stderr) = texts(&output);
    if output.status.code() == Some(MOUNT_REFUSED) {
        println!("spool full-disk: skipped: cannot mount a tmpfs in a namespace: {stderr}");
        return;
    }
    assert!(
        output.status.success(),
        "the copy on a full disk failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let counters = Counters::parse(&stdout);
    let rows = receiver.rows();
    assert_no_request_refused(&receiver);
    let arrived: Vec<&str> = rows.iter().map(|row| row.record_str("tool")).collect();
    let mut unique = arrived.clone();
    unique.sort_unstable();
    unique.dedup();
    let warnings = stderr.matches("cannot write to the spool at").count();
    println!(
        "spool full-disk: emitted {}, delivered-unique {}, duplicated {}, discarded {}, \
         spooled {}, failed {}, sent at exit {}, replayed {}, warnings {warnings}",
        counters.enqueued,
        unique.len(),
        arrived.len() - unique.len(),
        counters.discarded,
        counters.spooled,
        counters.failed,
        counters.sent,
        counters.replayed,
    );
    assert_eq!(warnings, 1, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(counters.failed > 0 && counters.spooled > 0, "{counters:?}");
    assert_eq!(
        counters.spooled + counters.failed + counters.sent,
        counters.enqueued
    );
    let missing: Vec<String> = TINY_DISK_AT_EXIT
        .map(|i| format!("ev-{i}"))
        .filter(|name| !arrived.contains(&name.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "what the full disk refused at exit goes out, the endpoint answering: {missing:?} \
         missing ({counters:?})"
    );
    assert_eq!(
        counters.sent,
        TINY_DISK_AT_EXIT.len() as u64,
        "being in memory only, they went out first, before the spool's files: {counters:?}"
    );
    assert_eq!(unique.len(), arrived.len(), "no name arrived twice");
    assert_eq!(arrived.len() as u64, counters.sent + counters.replayed);
    // The files were on the child's tmpfs, gone with its namespace: never on the real disk.
    assert!(spool.files().is_empty(), "{:?}", spool.files());
}

/// Mounts a 64 KiB tmpfs on `$1`, then runs the rest of the arguments; exits with
/// [`MOUNT_REFUSED`] if the mount is not permitted.
const TINY_DISK_SCRIPT: &str =
    r#"mount -t tmpfs -o size=64k tmpfs "$1" || exit 97; shift; exec "$@""#;
const MOUNT_REFUSED: i32 = 97;

/// Whether this machine lets an unprivileged process have a mount namespace of its own
/// (`unshare -rm`), the only way to give a test a full disk without root.
fn can_mount_in_a_namespace() -> Result<(), String> {
    let output = Command::new("unshare")
        .args(["-rm", "true"])
        .output()
        .map_err(|error| format!("`unshare` cannot run: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`unshare -rm true` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}
