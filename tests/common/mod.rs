//! What several test binaries share: taking turns on the process-global pipeline, delivering to
//! memory or to a loopback receiver, and running a scenario in a process of its own, or in
//! several at once.
//!
//! The pipeline is process-global, like a logger: tests that configure it differently either
//! take turns in one process ([`Scenario`], [`MemoryScenario`]) or each get a fresh process
//! ([`in_own_process`]; several running at once: [`spawn_own_process`]). Tests that need no HTTP
//! deliver to [`Memory`], whose lines must pass the receiver's schema checks; the HTTP, fault and
//! security tests run against a [`Receiver`].

#![allow(dead_code)] // each test binary uses its own subset

use std::io::Read;
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mcp_analytics::testing::InMemory;
use mcp_analytics::{Builder, Guard, Stats};
use mcp_analytics_receiver::{Receiver, Row};

static SERIAL: Mutex<()> = Mutex::new(());

/// One test's turn on the process-global pipeline, whatever it delivers to: the next test in
/// the same binary waits until this one has shut its pipeline down (on drop).
pub struct Turn {
    pub analytics: Option<Guard>,
    before: Stats,
    _turn: MutexGuard<'static, ()>,
}

/// Counter changes since the turn started.
#[derive(Debug, PartialEq, Eq)]
pub struct Delta {
    pub sent: u64,
    pub failed: u64,
    pub retried: u64,
}

impl Turn {
    /// Waits for the turn, then starts the pipeline `builder` configures.
    fn start(builder: impl FnOnce() -> Builder) -> Self {
        let turn = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let before = mcp_analytics::stats();
        let analytics = builder().try_init().expect("analytics starts");
        Self {
            analytics: Some(analytics),
            before,
            _turn: turn,
        }
    }

    pub fn flush(&self) {
        mcp_analytics::flush(Duration::from_secs(30)).expect("flush finishes");
    }

    /// The counters at the start, to compute what this turn changed.
    pub fn stats_before(&self) -> Stats {
        self.before
    }

    pub fn delta(&self) -> Delta {
        let now = mcp_analytics::stats();
        Delta {
            sent: now.sent - self.before.sent,
            failed: now.failed - self.before.failed,
            retried: now.retried - self.before.retried,
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        // The guard's drop shuts the pipeline down within the turn's shutdown timeout, before
        // the lock lets the next test start.
        drop(self.analytics.take());
    }
}

/// One test's pipeline against its own receiver: a [`Turn`] (its methods through `Deref`).
pub struct Scenario {
    // Declared first, so dropped first: the pipeline shuts down while the receiver still runs.
    turn: Turn,
    pub receiver: Receiver,
}

impl Scenario {
    /// Starts the pipeline against `receiver`, configured by `configure` on top of the
    /// receiver's URL and token.
    pub fn start(receiver: Receiver, configure: impl FnOnce(Builder) -> Builder) -> Self {
        Self {
            turn: Turn::start(|| configure(builder_for(&receiver))),
            receiver,
        }
    }

    pub fn statuses(&self) -> Vec<u16> {
        self.receiver.requests().iter().map(|r| r.status).collect()
    }
}

impl Deref for Scenario {
    type Target = Turn;
    fn deref(&self) -> &Turn {
        &self.turn
    }
}

impl DerefMut for Scenario {
    fn deref_mut(&mut self) -> &mut Turn {
        &mut self.turn
    }
}

/// One test's pipeline delivering to memory of its own: a [`Turn`] (its methods through
/// `Deref`), the in-memory counterpart of [`Scenario`].
pub struct MemoryScenario {
    turn: Turn,
    pub memory: Memory,
}

impl MemoryScenario {
    /// Starts the pipeline delivering to fresh memory, configured by `configure`.
    pub fn start(configure: impl FnOnce(Builder) -> Builder) -> Self {
        let memory = Memory::new();
        Self {
            turn: Turn::start(|| configure(memory.builder())),
            memory,
        }
    }
}

impl Deref for MemoryScenario {
    type Target = Turn;
    fn deref(&self) -> &Turn {
        &self.turn
    }
}

/// What the pipeline delivered to memory, read as rows through the receiver's own schema checks
/// ([`Row::parse_lines`]): a line that does not fit panics with the reason, where the receiver
/// would have refused or quarantined it.
#[derive(Clone, Debug, Default)]
pub struct Memory {
    lines: InMemory,
}

impl Memory {
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder that delivers here; the environment is not read.
    pub fn builder(&self) -> Builder {
        mcp_analytics::builder().deliver_to(&self.lines)
    }

    /// Every row delivered so far, in order.
    pub fn rows(&self) -> Vec<Row> {
        parse(&self.lines.lines())
    }

    /// How many batches were delivered: a request's worth each.
    pub fn batches(&self) -> usize {
        self.lines.batches()
    }
}

fn parse(lines: &[String]) -> Vec<Row> {
    Row::parse_lines(
        Builder::DEFAULT_DATASOURCE,
        lines.iter().map(String::as_str),
    )
    .unwrap_or_else(|why| panic!("a delivered line does not fit the datasource: {why}"))
}

/// One pipeline for the whole test binary, delivering to memory, started on first use: for
/// tests that only record events and read back their own (distinct names, sessions).
pub fn shared_memory() -> &'static Memory {
    static MEMORY: LazyLock<Memory> = LazyLock::new(|| {
        let memory = Memory::new();
        let guard = memory
            .builder()
            .max_batch_age(Duration::from_millis(20))
            .try_init()
            .expect("analytics starts delivering to memory");
        // The pipeline lives as long as the test binary; tests flush what they need.
        std::mem::forget(guard);
        memory
    });
    &MEMORY
}

/// A builder pointed at `receiver`, ignoring the environment, without a spool: what a test
/// does not deliver must not reach the next test (or the user's cache directory). The spool's
/// own tests give theirs a directory of their own ([`SpoolDir`]).
pub fn builder_for(receiver: &Receiver) -> Builder {
    mcp_analytics::builder()
        .read_env(false)
        .api_url(receiver.url())
        .token(receiver.token())
        .spool(false)
}

/// A spool directory of a test's own, removed on drop.
pub struct SpoolDir(pub PathBuf);

impl SpoolDir {
    pub fn new(test: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("mcp-analytics-spool-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }

    /// The names of the spooled files, sorted (oldest first).
    pub fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .filter(|name| name.ends_with(".ndjson.gz"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

impl Drop for SpoolDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One event per call, named by its argument.
#[mcp_analytics::mcp_tool(name = format!("ev-{i}"))]
fn ev(i: u32) -> u32 {
    i
}

/// Records one event named `ev-{i}` for every `i` of `range`, and returns the names recorded.
pub fn emit(range: std::ops::Range<u32>) -> Vec<String> {
    range
        .map(|i| {
            ev(i);
            format!("ev-{i}")
        })
        .collect()
}

/// What arrived of the uniquely named events a test emitted: what was lost, duplicated, or
/// never emitted at all.
#[derive(Debug)]
pub struct Tally {
    pub emitted: usize,
    /// Emitted names that arrived at least once.
    pub delivered_unique: usize,
    /// Emitted names that never arrived.
    pub lost: Vec<String>,
    /// Extra copies: rows beyond the first of each name.
    pub duplicates: usize,
    /// How many times each name arrived.
    pub copies: std::collections::BTreeMap<String, usize>,
    /// Rows whose name was never emitted.
    pub unexpected: Vec<String>,
}

impl Tally {
    /// Tallies `rows` (tool rows) against the `emitted` names, which must be unique.
    pub fn of(emitted: &[String], rows: &[Row]) -> Tally {
        let mut copies: std::collections::BTreeMap<String, usize> =
            std::collections::BTreeMap::new();
        for row in rows {
            *copies.entry(row.record_str("tool").to_owned()).or_default() += 1;
        }
        let mut wanted: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
        for name in emitted {
            *wanted.entry(name.as_str()).or_default() += 1;
        }
        assert_eq!(wanted.len(), emitted.len(), "emitted names must be unique");
        let lost = emitted
            .iter()
            .filter(|name| !copies.contains_key(name.as_str()))
            .cloned()
            .collect::<Vec<_>>();
        let unexpected = copies
            .keys()
            .filter(|name| !wanted.contains_key(name.as_str()))
            .cloned()
            .collect();
        Tally {
            emitted: emitted.len(),
            delivered_unique: emitted.len() - lost.len(),
            lost,
            duplicates: copies.values().map(|&n| n - 1).sum(),
            copies,
            unexpected,
        }
    }

    /// Every name emitted arrived exactly once, and nothing else did.
    #[track_caller]
    pub fn assert_exactly_once(&self) {
        self.assert_nothing_lost();
        let twice: Vec<_> = self.copies.iter().filter(|&(_, &n)| n > 1).collect();
        assert!(twice.is_empty(), "duplicated: {twice:?}");
    }

    /// Every name emitted arrived, and nothing else did.
    #[track_caller]
    pub fn assert_nothing_lost(&self) {
        assert!(
            self.lost.is_empty(),
            "lost {}: {:?}",
            self.lost.len(),
            self.lost
        );
        assert!(
            self.unexpected.is_empty(),
            "unexpected: {:?}",
            self.unexpected
        );
        assert_eq!(self.delivered_unique, self.emitted);
    }
}

const CHILD: &str = "MCP_ANALYTICS_TEST_CHILD";

/// In the child: runs `scenario`. In the parent: re-runs this test binary as a child that runs
/// only `test` (with `env` set, in a fresh working directory, with no `TB_*` variables
/// inherited, and `MCP_ANALYTICS_SPOOL_DIR` in that directory unless `env` sets it: a scenario
/// whose `init` reads the environment never spools to the user's cache directory, nor to one
/// the developer's shell names), asserts it succeeded, and returns its stderr.
pub fn in_own_process(test: &str, env: &[(&str, &str)], scenario: impl FnOnce()) -> String {
    if std::env::var(CHILD).as_deref() == Ok(test) {
        scenario();
        return String::new();
    }
    let workdir = scratch_dir(test);
    let mut command = own_process_command(test, env);
    if !env.iter().any(|(key, _)| *key == "MCP_ANALYTICS_SPOOL_DIR") {
        command.env("MCP_ANALYTICS_SPOOL_DIR", workdir.join("spool"));
    }
    let output = command
        .current_dir(&workdir)
        .output()
        .expect("the test binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "scenario `{test}` failed:\n{}\n{stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
    let _ = std::fs::remove_dir_all(workdir);
    stderr
}

/// The command [`in_own_process`] and [`spawn_own_process`] run: this test binary again, running
/// only `test`, with `env` set and no `TB_*` variables inherited. For a child that needs a
/// wrapper around it (another mount namespace, say), whose caller runs it.
pub fn own_process_command(test: &str, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("the test binary's path"));
    command
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, test)
        .env_remove("TB_API_URL")
        .env_remove("TB_WRITE_TOKEN")
        .env_remove("TB_DATASOURCE");
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

/// Starts a child like [`in_own_process`]'s without waiting for it: several run at once, and
/// the parent acts on them while they run (kills one, or tells it to go on). Its stdin, stdout
/// and stderr are pipes: a child that waits on its stdin goes on when the parent writes to it
/// or closes it, which dropping the [`Child`] also does, so such a child does not outlive a
/// parent that failed.
/// It runs in the temporary directory, where no `.env` of the repository's is found. Finish it
/// with [`wait_own_process`].
pub fn spawn_own_process(test: &str, env: &[(&str, &str)]) -> Child {
    spawn_piped(own_process_command(test, env).current_dir(std::env::temp_dir()))
}

/// Spawns `command` with the pipes [`spawn_own_process`] describes.
pub fn spawn_piped(command: &mut Command) -> Child {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the child process starts")
}

/// Closes the stdin of a child of [`spawn_own_process`] (its signal to finish, if it waits on
/// it) and waits up to `timeout` for it to exit, reading its output meanwhile: a child whose
/// output filled a pipe nobody reads would never exit. Past the timeout, kills it and panics
/// with what it printed.
pub fn wait_own_process(mut child: Child, timeout: Duration) -> Output {
    drop(child.stdin.take());
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());
    let started = Instant::now();
    let exited = loop {
        match child.try_wait().expect("the child can be waited on") {
            Some(status) => break Some(status),
            None if started.elapsed() > timeout => break None,
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let status = exited.unwrap_or_else(|| {
        let _ = child.kill();
        child.wait().expect("the killed child can be waited on")
    });
    let output = Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    assert!(
        exited.is_some(),
        "the child {} did not exit within {timeout:?}; killed it:\n{}\n{}",
        child.id(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Reads `pipe` to its end on a thread of its own.
fn read_in_background(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// Whether this process is a child started by [`in_own_process`] or [`spawn_own_process`].
pub fn in_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-analytics-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// Waits until `condition` holds, checking every 5 ms; false if `timeout` passed first.
pub fn eventually(timeout: Duration, condition: impl Fn() -> bool) -> bool {
    let started = Instant::now();
    while !condition() {
        if started.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}
