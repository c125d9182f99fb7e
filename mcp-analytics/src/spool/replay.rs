//! When the worker looks in the spool for files to send: at start (an earlier run may have
//! left some), as soon as the service answers again after a failure or after something was
//! spooled, and every so often besides (another copy of the server may have left some).

use std::time::{Duration, Instant};

/// How often a worker with nothing else to go on looks in the spool.
const LOOK_AGAIN: Duration = Duration::from_secs(30);

/// The replay's schedule.
#[derive(Debug)]
pub(crate) struct Replay {
    /// Look now.
    due: bool,
    /// Look once a live delivery succeeds: the service was failing, or something was spooled.
    on_recovery: bool,
    /// Look at this time whatever happens.
    next_look: Instant,
}

impl Replay {
    /// Due at once: files of an earlier run go first.
    pub(crate) fn new() -> Self {
        Self {
            due: true,
            on_recovery: false,
            next_look: Instant::now() + LOOK_AGAIN,
        }
    }

    pub(crate) fn is_due(&self, now: Instant) -> bool {
        self.due || now >= self.next_look
    }

    /// The spool had nothing to send.
    pub(crate) fn found_nothing(&mut self) {
        self.due = false;
        self.next_look = Instant::now() + LOOK_AGAIN;
    }

    /// A spooled file was sent: look for the next one.
    pub(crate) fn sent(&mut self) {
        self.due = true;
    }

    /// Sending a spooled file failed: wait for the service to answer a live delivery.
    pub(crate) fn failed(&mut self) {
        self.found_nothing();
        self.on_recovery = true;
    }

    /// Something was spooled: send it once the service answers.
    pub(crate) fn stored(&mut self) {
        self.on_recovery = true;
    }

    /// A live batch was delivered: the service answers.
    pub(crate) fn delivered_live(&mut self) {
        if std::mem::take(&mut self.on_recovery) {
            self.due = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_resumes_when_the_service_answers_again() {
        let mut replay = Replay::new();
        let now = Instant::now();
        assert!(replay.is_due(now), "files of an earlier run go first");
        replay.sent();
        assert!(replay.is_due(now));
        replay.failed();
        assert!(!replay.is_due(Instant::now()));
        replay.delivered_live();
        assert!(replay.is_due(Instant::now()), "the service answers again");
        replay.found_nothing();
        replay.delivered_live();
        assert!(!replay.is_due(Instant::now()), "nothing was waiting");
        replay.stored();
        replay.delivered_live();
        assert!(replay.is_due(Instant::now()));
        replay.found_nothing();
        assert!(replay.is_due(Instant::now() + LOOK_AGAIN));
    }
}
