//! Measuring a call as a server makes it: the worker live and shipping to a loopback Events API
//! while the calls are timed, in short rounds interleaved with the uninstrumented twin, paced so
//! that the worker keeps up and every timed call takes the enqueue path.

use std::hint::black_box;
use std::time::{Duration, Instant};

use mcp_analytics::{Builder, Guard};
use mcp_analytics_receiver::Receiver;
use serde_json::{Value, json};

use super::Subject;

/// Calls per timed round.
pub const ROUND: u64 = 500;

/// A subject round starts at most this often: [`ROUND`] events every 2 ms, 250,000 events a
/// second at most, which the worker ships with room to spare, so that the queue never fills and
/// no timed call takes the (cheaper) drop path. Between rounds the thread sleeps, untimed,
/// leaving the CPU to the worker and the receiver as a server's idle moments do.
pub const ROUND_PERIOD: Duration = Duration::from_millis(2);

/// A builder for analytics shipping to `receiver`: the default configuration with only the
/// endpoint and its token set, and the environment left out so that a `TB_*` variable or a
/// `.env` file cannot point the benchmark elsewhere.
pub fn shipping_to(receiver: &Receiver) -> Builder {
    mcp_analytics::builder()
        .read_env(false)
        .api_url(receiver.url())
        .token(receiver.token())
}

/// A loopback Events API in its light mode (it checks each request's envelope and counts the
/// lines, without parsing them: on two cores the strict receiver would take the CPU the worker
/// needs) and analytics shipping to it, the worker running. The spool is off: with the endpoint
/// up it has nothing to do, and it would read and write the user's cache directory.
pub struct Live {
    // Dropped first: its shutdown ships what is left while the receiver still answers.
    _analytics: Guard,
    pub receiver: Receiver,
}

impl Live {
    pub fn start() -> Live {
        let receiver = Receiver::builder().count_only(true).build();
        let analytics = shipping_to(&receiver)
            .spool(false)
            .try_init()
            .expect("analytics starts");
        Live {
            _analytics: analytics,
            receiver,
        }
    }

    /// Ships what is queued, and checks that the receiver counted every event the worker sent.
    pub fn settle(&self) -> mcp_analytics::Stats {
        mcp_analytics::flush(Duration::from_secs(30)).expect("the receiver acknowledges");
        let stats = mcp_analytics::stats();
        assert_eq!(
            self.receiver.accepted_rows() as u64,
            stats.sent,
            "the receiver counted every event sent"
        );
        stats
    }
}

/// A subject timed in rounds against its uninstrumented twin. Object-safe, so that one list
/// holds subjects of different types; the dynamic call is once per round, not per call.
pub trait Paired {
    /// Times one round of the subject and one of the twin, in the order given, each after the
    /// untimed preparation its calls need; returns (subject, twin).
    fn round(&self, subject_first: bool) -> (Duration, Duration);
}

/// A subject and its twin.
pub struct Pair<S, T>(pub S, pub T);

impl<S: Subject, T: Subject> Paired for Pair<S, T> {
    fn round(&self, subject_first: bool) -> (Duration, Duration) {
        if subject_first {
            let subject = timed_round(&self.0);
            (subject, timed_round(&self.1))
        } else {
            let twin = timed_round(&self.1);
            (timed_round(&self.0), twin)
        }
    }
}

fn timed_round(subject: &impl Subject) -> Duration {
    let prepared = subject.start_run();
    let started = Instant::now();
    for i in 0..ROUND {
        black_box(subject.call(black_box(i)));
    }
    let elapsed = started.elapsed();
    drop(prepared);
    elapsed
}

/// One subject's rounds: ns per call of each subject round and of the twin round beside it.
#[derive(Default)]
pub struct Rounds {
    subject: Vec<f64>,
    twin: Vec<f64>,
    /// Rounds during which `stats().dropped` moved (read untimed around each round).
    rounds_with_drops: u64,
}

impl Rounds {
    /// The figures: the added ns per call (median over rounds of (subject round - twin round)
    /// / [`ROUND`]) with its 10th and 90th percentiles, and each side's median ns per call.
    pub fn summary(&self) -> Value {
        let added: Vec<f64> = self
            .subject
            .iter()
            .zip(&self.twin)
            .map(|(s, t)| s - t)
            .collect();
        let mut sorted = added.clone();
        sorted.sort_by(f64::total_cmp);
        let pct = |p| mcp_analytics_receiver::percentile(&sorted, p);
        json!({
            "rounds": added.len(),
            "added_ns": pct(50.0),
            "added_ns_p10": pct(10.0),
            "added_ns_p90": pct(90.0),
            "ns_per_call": super::median(self.subject.clone()),
            "twin_ns_per_call": super::median(self.twin.clone()),
            "rounds_with_drops": self.rounds_with_drops,
        })
    }
}

/// Times `rounds` rounds of each subject against its twin, the subjects taking turns round by
/// round (so that the machine's moods weigh on all alike), subject and twin taking turns at going
/// first (so that whichever runs after the pause between rounds, with colder caches, is each
/// half the time). A round starts at most every [`ROUND_PERIOD`]; `warm_up` rounds of each are
/// run first and left out.
pub fn interleaved(subjects: &[&dyn Paired], rounds: usize, warm_up: usize) -> Vec<Rounds> {
    let mut figures: Vec<Rounds> = subjects.iter().map(|_| Rounds::default()).collect();
    let mut next_start = Instant::now();
    for round in 0..warm_up + rounds {
        for (subject, figures) in subjects.iter().zip(&mut figures) {
            let now = Instant::now();
            if now < next_start {
                std::thread::sleep(next_start - now);
            }
            next_start = next_start.max(now) + ROUND_PERIOD;
            let dropped = mcp_analytics::stats().dropped;
            let (subject, twin) = subject.round(round % 2 == 0);
            if round < warm_up {
                continue;
            }
            if mcp_analytics::stats().dropped != dropped {
                figures.rounds_with_drops += 1;
            }
            let per_call = |elapsed: Duration| elapsed.as_nanos() as f64 / ROUND as f64;
            figures.subject.push(per_call(subject));
            figures.twin.push(per_call(twin));
        }
    }
    figures
}
