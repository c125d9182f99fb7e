//! Pacing: request starts are spaced by the configured minimum interval, and held back when the
//! service says its rate limit is exhausted (a 429's `Retry-After`, or `X-RateLimit-Remaining:
//! 0` with `X-RateLimit-Reset`), for every later request, not only the retried one.

use std::time::Duration;

use http::StatusCode;
use http::header::HeaderMap;
use tokio::time::{Instant, sleep_until};

use super::retry::{MAX_RETRY_AFTER, retry_after};

pub(crate) struct Pacer {
    min_interval: Duration,
    next: Instant,
}

impl Pacer {
    pub(crate) fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            next: Instant::now(),
        }
    }

    /// Waits until the next request may start.
    pub(crate) async fn wait_turn(&mut self) {
        sleep_until(self.next).await;
        self.next = Instant::now() + self.min_interval;
    }

    fn hold_for(&mut self, delay: Duration) {
        self.next = self.next.max(Instant::now() + delay);
    }

    /// Takes in what an answer says of the rate limit.
    pub(crate) fn observe(&mut self, status: StatusCode, headers: &HeaderMap) {
        if status == StatusCode::TOO_MANY_REQUESTS
            && let Some(delay) = retry_after(headers)
        {
            self.hold_for(delay.min(MAX_RETRY_AFTER));
        }
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<u64>().ok())
        };
        if number("x-ratelimit-remaining") == Some(0)
            && let Some(reset) = number("x-ratelimit-reset")
        {
            self.hold_for(Duration::from_secs(reset).min(MAX_RETRY_AFTER));
        }
    }
}

#[cfg(test)]
mod tests {
    use http::header::HeaderValue;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_exhausted_rate_limit_holds_back_the_next_request() {
        let mut pacer = Pacer::new(Duration::from_millis(20));
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        headers.insert("x-ratelimit-reset", HeaderValue::from_static("3"));
        pacer.wait_turn().await;
        pacer.observe(StatusCode::ACCEPTED, &headers);
        let before = Instant::now();
        pacer.wait_turn().await;
        assert!(Instant::now() - before >= Duration::from_secs(3));
        let before = Instant::now();
        pacer.wait_turn().await;
        assert_eq!(Instant::now() - before, Duration::from_millis(20));
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_holds_back_for_its_retry_after() {
        let mut pacer = Pacer::new(Duration::from_millis(20));
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("2"));
        pacer.wait_turn().await;
        pacer.observe(StatusCode::TOO_MANY_REQUESTS, &headers);
        let before = Instant::now();
        pacer.wait_turn().await;
        assert!(Instant::now() - before >= Duration::from_secs(2));
    }
}
