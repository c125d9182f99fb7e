//! Batches to the Events API: `POST {base}/v0/events?name={datasource}`, NDJSON, gzip.
//!
//! The service's rules, as documented by Tinybird: 2xx is success; 429 and 5xx (500, 502, 503,
//! 504), timeouts and connection errors are retried with exponential backoff, honoring
//! `Retry-After` (seconds or an HTTP-date), a bounded number of times; 413 means the body is too
//! large, so the batch is split in two; any other answer (400, 403, 404, 422, ...) is final: the
//! batch is counted as failed and the cause reported once on stderr. Requests are paced under
//! the datasource's rate limit, and a 429 or an exhausted `X-RateLimit-Remaining` holds back every
//! later request, not only the retried one.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{StatusCode, Url};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

use crate::batch::Batch;
use crate::config::{Config, Token};
use crate::diag;
use crate::stats::{COUNTERS, Counters};

/// First retry delay; each further attempt doubles it, up to [`MAX_BACKOFF`].
const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A `Retry-After` longer than this gives the batch up rather than stall every later one.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// How much of a refusal's body is quoted on stderr.
const QUOTED_BODY: usize = 200;

/// The worker's connection to the Events API.
pub(crate) struct Transport {
    client: reqwest::Client,
    url: Url,
    authorization: HeaderValue,
    /// Kept only to scrub it from anything the service echoes back.
    token: Token,
    gzip: bool,
    max_attempts: u32,
    pacer: Pacer,
    /// Set once, by `shutdown()`: past it, nothing is sent or retried.
    deadline: watch::Receiver<Option<std::time::Instant>>,
}

/// Why a request did not deliver its batch.
enum Failure {
    /// 413: split and send again.
    TooLarge,
    /// A final answer: the batch cannot be delivered as it is.
    Refused { status: StatusCode, body: String },
    /// Every attempt failed with a retryable error, or the service asked to wait too long.
    GaveUp { attempts: u32, last: String },
    /// The shutdown deadline passed.
    Deadline,
}

impl Transport {
    pub(crate) fn new(
        config: &Config,
        deadline: watch::Receiver<Option<std::time::Instant>>,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("mcp-analytics/", env!("CARGO_PKG_VERSION")))
            // rustls verifying against Mozilla's roots (webpki), the same on every machine,
            // rather than whatever the host's store holds.
            .tls_certs_only(webpki_roots())
            .build()?;
        let mut authorization = HeaderValue::try_from(format!("Bearer {}", config.token.expose()))
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
        // Keeps the value out of reqwest's and hyper's own debug output.
        authorization.set_sensitive(true);
        Ok(Self {
            client,
            url: config.events_url.clone(),
            authorization,
            token: config.token.clone(),
            gzip: config.gzip,
            max_attempts: config.max_attempts,
            pacer: Pacer::new(config.min_request_interval),
            deadline,
        })
    }

    /// Delivers `batch`, splitting it on 413, and counts the outcome. Returns how many events
    /// were abandoned because the shutdown deadline passed.
    pub(crate) async fn deliver(&mut self, batch: Batch) -> usize {
        let mut abandoned = 0;
        let mut pending = vec![batch];
        while let Some(mut batch) = pending.pop() {
            match self.send(&mut batch).await {
                Ok(()) => {}
                Err(Failure::TooLarge) => match batch.split() {
                    Ok((head, tail)) => {
                        pending.push(tail);
                        pending.push(head);
                    }
                    Err(batch) => fail(
                        &batch,
                        format_args!("an event is larger than the Events API accepts (413)"),
                    ),
                },
                Err(Failure::Refused { status, body }) => {
                    let body = body.replace(self.token.expose(), "<redacted>");
                    report_refusal(&batch, status, &body);
                }
                Err(Failure::GaveUp { attempts, last }) => fail(
                    &batch,
                    format_args!("gave up after {attempts} attempts, the last: {last}"),
                ),
                Err(Failure::Deadline) => {
                    Counters::add(&COUNTERS.failed, batch.events);
                    abandoned += batch.events;
                }
            }
        }
        abandoned
    }

    async fn send(&mut self, batch: &mut Batch) -> Result<(), Failure> {
        // Past the deadline, not even the compression is worth doing: shutdown is waiting.
        if self
            .deadline
            .borrow()
            .is_some_and(|deadline| std::time::Instant::now() >= deadline)
        {
            return Err(Failure::Deadline);
        }
        let (body, encoding) = batch.payload(self.gzip);
        let mut attempt = 1;
        // Whether an earlier attempt may have been processed although we saw no answer.
        let mut maybe_delivered = false;
        loop {
            before_deadline(&self.deadline, self.pacer.wait_turn())
                .await
                .ok_or(Failure::Deadline)?;
            let mut request = self
                .client
                .post(self.url.clone())
                .header(header::AUTHORIZATION, self.authorization.clone())
                .header(header::CONTENT_TYPE, "application/x-ndjson")
                .body(body.clone());
            if let Some(encoding) = encoding {
                request = request.header(header::CONTENT_ENCODING, encoding);
            }
            let answer = before_deadline(&self.deadline, request.send())
                .await
                .ok_or(Failure::Deadline)?;

            let (retry_after, last) = match answer {
                Ok(response) => {
                    let status = response.status();
                    self.pacer.observe(status, response.headers());
                    if status.is_success() {
                        let body = response.bytes().await.unwrap_or_default();
                        acknowledge(batch, &body);
                        if maybe_delivered {
                            Counters::add(&COUNTERS.maybe_duplicated, batch.events);
                        }
                        return Ok(());
                    }
                    if status == StatusCode::PAYLOAD_TOO_LARGE {
                        return Err(Failure::TooLarge);
                    }
                    if !is_retryable(status) {
                        let body = response.text().await.unwrap_or_default();
                        return Err(Failure::Refused { status, body });
                    }
                    (retry_after(response.headers()), format!("HTTP {status}"))
                }
                Err(error) => {
                    // A failed connection sent nothing; a timeout or a connection lost after
                    // sending leaves the outcome unknown.
                    maybe_delivered |= !error.is_connect();
                    (None, error.without_url().to_string())
                }
            };

            if attempt >= self.max_attempts {
                return Err(Failure::GaveUp {
                    attempts: attempt,
                    last,
                });
            }
            let delay = match retry_after {
                Some(asked) if asked > MAX_RETRY_AFTER => {
                    return Err(Failure::GaveUp {
                        attempts: attempt,
                        last: format!("{last} with Retry-After {}s", asked.as_secs()),
                    });
                }
                Some(asked) => asked,
                None => backoff(attempt),
            };
            before_deadline(&self.deadline, tokio::time::sleep(delay))
                .await
                .ok_or(Failure::Deadline)?;
            // Counted once it is really sent again, not when a deadline cuts the wait short.
            Counters::add(&COUNTERS.retried, 1);
            attempt += 1;
        }
    }
}

/// Mozilla's trusted root certificates, as shipped by the rustls project.
fn webpki_roots() -> impl Iterator<Item = reqwest::Certificate> {
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .filter_map(|der| reqwest::Certificate::from_der(der).ok())
}

/// Runs `future` to completion unless the shutdown deadline passes first.
async fn before_deadline<F: Future>(
    deadline: &watch::Receiver<Option<std::time::Instant>>,
    future: F,
) -> Option<F::Output> {
    let mut deadline = deadline.clone();
    tokio::select! {
        output = future => Some(output),
        () = deadline_passed(&mut deadline) => None,
    }
}

/// Completes once a deadline is set and has passed; never before.
async fn deadline_passed(deadline: &mut watch::Receiver<Option<std::time::Instant>>) {
    loop {
        let current = *deadline.borrow_and_update();
        if let Some(at) = current {
            sleep_until(Instant::from_std(at)).await;
            return;
        }
        if deadline.changed().await.is_err() {
            // The handle is gone, so no deadline will ever be set.
            std::future::pending::<()>().await;
        }
    }
}

fn is_retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// Exponential backoff with jitter: between half and all of `200 ms × 2^(attempt-1)`, capped at
/// 10 s, so producers that failed together do not retry together.
fn backoff(attempt: u32) -> Duration {
    let ceiling = INITIAL_BACKOFF
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    ceiling / 2 + ceiling.mul_f64(fastrand::f64() / 2.0)
}

/// `Retry-After` as delay-seconds or an HTTP-date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// Spaces request starts by the configured minimum interval and holds them back when the service
/// says its rate limit is exhausted.
struct Pacer {
    min_interval: Duration,
    next: Instant,
}

impl Pacer {
    fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            next: Instant::now(),
        }
    }

    async fn wait_turn(&mut self) {
        sleep_until(self.next).await;
        self.next = Instant::now() + self.min_interval;
    }

    fn hold_for(&mut self, delay: Duration) {
        self.next = self.next.max(Instant::now() + delay);
    }

    fn observe(&mut self, status: StatusCode, headers: &HeaderMap) {
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

/// Counts a delivered batch, and reports once if the service quarantined rows of it: the
/// datasource's schema does not match the events, which only the user can fix.
fn acknowledge(batch: &Batch, body: &[u8]) {
    Counters::add(&COUNTERS.sent, batch.events);
    Counters::add(&COUNTERS.batches, 1);
    let quarantined = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|answer| answer.get("quarantined_rows")?.as_u64())
        .unwrap_or(0);
    if quarantined > 0 {
        COUNTERS
            .quarantined
            .fetch_add(quarantined, std::sync::atomic::Ordering::Relaxed);
        static QUARANTINE: diag::Once = diag::Once::new();
        QUARANTINE.report(format_args!(
            "the Events API quarantined {quarantined} rows: the datasource's schema does not \
             match the events (see its `_quarantine` datasource)"
        ));
    }
}

fn fail(batch: &Batch, why: std::fmt::Arguments<'_>) {
    Counters::add(&COUNTERS.failed, batch.events);
    static GAVE_UP: diag::Once = diag::Once::new();
    GAVE_UP.report(format_args!(
        "dropped a batch of {} events: {why} (reported once; see mcp_analytics::stats())",
        batch.events
    ));
}

/// Counts a refused batch and reports each refusing status once, with what to check.
fn report_refusal(batch: &Batch, status: StatusCode, body: &str) {
    Counters::add(&COUNTERS.failed, batch.events);
    static REPORTED: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let first = REPORTED
        .lock()
        .map(|mut seen| {
            seen.get_or_insert_with(HashSet::new)
                .insert(status.as_u16())
        })
        .unwrap_or(true);
    if !first {
        return;
    }
    let hint = match status.as_u16() {
        401 | 403 => "check that TB_WRITE_TOKEN is valid and can append to the datasource",
        404 => "check TB_API_URL (the workspace's region) and the datasource name",
        400 | 422 => "the service could not take these rows",
        _ => "the service refused the request",
    };
    let mut quoted: String = body.chars().take(QUOTED_BODY).collect();
    quoted.retain(|c| !c.is_control());
    diag::report(format_args!(
        "the Events API refused a batch of {} events with {status}: {hint}; it answered `{quoted}` \
         (reported once per status; such batches count as failed)",
        batch.events
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_webpki_root_is_usable() {
        assert_eq!(
            webpki_roots().count(),
            webpki_root_certs::TLS_SERVER_ROOT_CERTS.len()
        );
        assert!(webpki_root_certs::TLS_SERVER_ROOT_CERTS.len() > 100);
    }

    #[test]
    fn backoff_grows_with_jitter_and_stays_capped() {
        for attempt in 1..=30 {
            let ceiling = INITIAL_BACKOFF
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(MAX_BACKOFF);
            let delay = backoff(attempt);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{attempt}: {delay:?}"
            );
        }
    }

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));

        let later = std::time::SystemTime::now() + Duration::from_secs(30);
        let date = httpdate::fmt_http_date(later);
        headers.insert(header::RETRY_AFTER, HeaderValue::from_str(&date).unwrap());
        let delay = retry_after(&headers).unwrap();
        assert!(
            delay > Duration::from_secs(27) && delay <= Duration::from_secs(30),
            "{delay:?}"
        );

        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));

        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn only_the_services_transient_answers_are_retried() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(
                is_retryable(StatusCode::from_u16(status).unwrap()),
                "{status}"
            );
        }
        for status in [400, 401, 403, 404, 411, 413, 422, 501] {
            assert!(
                !is_retryable(StatusCode::from_u16(status).unwrap()),
                "{status}"
            );
        }
    }

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
}
