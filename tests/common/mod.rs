//! What several test binaries share: taking turns on the process-global pipeline, and running
//! a scenario in a process of its own.
//!
//! The pipeline is process-global, like a logger: tests that configure it differently either
//! take turns in one process ([`Scenario`]) or each get a fresh process ([`in_own_process`]).

#![allow(dead_code)] // each test binary uses its own subset

use std::path::PathBuf;
use std::process::Command;
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use mcp_analytics::{Builder, Guard, Stats};
use mcp_analytics_receiver::Receiver;

static SERIAL: Mutex<()> = Mutex::new(());

/// One test's pipeline against its own receiver: started on entry, shut down on drop, before
/// the next test in the same binary may start.
pub struct Scenario {
    pub analytics: Option<Guard>,
    pub receiver: Receiver,
    before: Stats,
    _turn: MutexGuard<'static, ()>,
}

/// Counter changes since the scenario started.
#[derive(Debug, PartialEq, Eq)]
pub struct Delta {
    pub sent: u64,
    pub failed: u64,
    pub retried: u64,
}

impl Scenario {
    /// Starts the pipeline against `receiver`, configured by `configure` on top of the
    /// receiver's URL and token.
    pub fn start(receiver: Receiver, configure: impl FnOnce(Builder) -> Builder) -> Self {
        let turn = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let before = mcp_analytics::stats();
        let analytics = configure(builder_for(&receiver))
            .try_init()
            .expect("analytics starts");
        Self {
            analytics: Some(analytics),
            receiver,
            before,
            _turn: turn,
        }
    }

    pub fn flush(&self) {
        mcp_analytics::flush(Duration::from_secs(30)).expect("flush finishes");
    }

    /// The counters at the start, to compute what this scenario changed.
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

    pub fn statuses(&self) -> Vec<u16> {
        self.receiver.requests().iter().map(|r| r.status).collect()
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        // The guard's drop shuts the pipeline down within the scenario's shutdown timeout.
        drop(self.analytics.take());
    }
}

/// One pipeline for the whole test binary, against its own receiver, started on first use: for
/// tests that only record events and read back their own (distinct names, sessions).
pub fn shared_receiver() -> &'static Receiver {
    static RECEIVER: LazyLock<Receiver> = LazyLock::new(|| {
        let receiver = Receiver::start();
        let guard = builder_for(&receiver)
            .max_batch_age(Duration::from_millis(20))
            .try_init()
            .expect("analytics starts against the loopback receiver");
        // The pipeline lives as long as the test binary; tests flush what they need.
        std::mem::forget(guard);
        receiver
    });
    &RECEIVER
}

/// A builder pointed at `receiver`, ignoring the environment.
pub fn builder_for(receiver: &Receiver) -> Builder {
    mcp_analytics::builder()
        .read_env(false)
        .api_url(receiver.url())
        .token(receiver.token())
}

const CHILD: &str = "MCP_ANALYTICS_TEST_CHILD";

/// In the child: runs `scenario`. In the parent: re-runs this test binary as a child that runs
/// only `test` (with `env` set, in a fresh working directory, with no `TB_*` variables
/// inherited), asserts it succeeded, and returns its stderr.
pub fn in_own_process(test: &str, env: &[(&str, &str)], scenario: impl FnOnce()) -> String {
    if std::env::var(CHILD).as_deref() == Ok(test) {
        scenario();
        return String::new();
    }
    let workdir = scratch_dir(test);
    let mut command = Command::new(std::env::current_exe().expect("the test binary's path"));
    command
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .current_dir(&workdir)
        .env(CHILD, test)
        .env_remove("TB_API_URL")
        .env_remove("TB_WRITE_TOKEN")
        .env_remove("TB_DATASOURCE");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("the test binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "scenario `{test}` failed:\n{}\n{stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
    let _ = std::fs::remove_dir_all(workdir);
    stderr
}

/// Whether this process is a child started by [`in_own_process`].
pub fn in_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-analytics-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}
