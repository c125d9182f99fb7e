//! Batches to the Events API: `POST {base}/v0/events?name={datasource}`, NDJSON, gzip.
//!
//! 2xx is success; retryable answers and errors are retried by the rules of [`super::retry`],
//! and a batch still undelivered after them is deferred (to the spool, when there is one);
//! 413 means the body is too large, so the batch is split in two; any other answer (400, 403,
//! 404, 422, ...) is final: the batch is given up and the cause reported once on stderr.
//! Requests start at the pace [`super::rate_limit`] allows.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{self, HeaderValue};
use reqwest::{StatusCode, Url};

use super::rate_limit::Pacer;
use super::retry::{MAX_RETRY_AFTER, backoff, is_retryable, retry_after};
use super::{Deadline, Deferred, DeferredBecause, Deliver, Health, Report, report_dropped};
use crate::batch::Batch;
use crate::diag;
use crate::error::Error;
use crate::stats::COUNTERS;

/// How much of a refusal's body is quoted on stderr.
const QUOTED_BODY: usize = 200;

/// How requests are made: what the configuration resolves for this delivery.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) request_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) min_request_interval: Duration,
    pub(crate) gzip: bool,
}

/// The worker's connection to the Events API. Not `Debug`: it holds the token.
pub(crate) struct EventsApi {
    client: reqwest::Client,
    url: Url,
    authorization: HeaderValue,
    /// Kept only to scrub it from anything the service echoes back.
    token: Box<str>,
    gzip: bool,
    max_attempts: u32,
    pacer: Pacer,
    health: Health,
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

/// What a delivered request reports.
struct Acknowledged {
    quarantined: u64,
    /// An earlier attempt may have been stored although no answer came.
    maybe_duplicated: bool,
}

impl EventsApi {
    /// A connection to `url` with `token`, not opened before the first request.
    pub(crate) fn new(url: Url, token: &str, options: &Options) -> Result<Self, Error> {
        let client = reqwest::Client::builder()
            .timeout(options.request_timeout)
            .connect_timeout(options.connect_timeout)
            .user_agent(concat!("mcp-analytics/", env!("CARGO_PKG_VERSION")))
            // rustls verifying against Mozilla's roots (webpki), the same on every machine,
            // rather than whatever the host's store holds.
            .tls_certs_only(webpki_roots())
            .build()
            .map_err(|error| Error::HttpClient(Box::new(error.without_url())))?;
        let mut authorization = HeaderValue::try_from(format!("Bearer {token}"))
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
        // Keeps the value out of reqwest's and hyper's own debug output.
        authorization.set_sensitive(true);
        Ok(Self {
            client,
            url,
            authorization,
            token: token.into(),
            gzip: options.gzip,
            max_attempts: options.max_attempts,
            pacer: Pacer::new(options.min_request_interval),
            health: Health::default(),
        })
    }

    async fn send(
        &mut self,
        batch: &mut Batch,
        deadline: &Deadline,
    ) -> Result<Acknowledged, Failure> {
        // Past the deadline, not even the compression is worth doing: shutdown is waiting.
        if deadline.has_passed() {
            return Err(Failure::Deadline);
        }
        let (body, encoding) = batch.payload(self.gzip);
        let mut attempt = 1;
        // Whether an earlier attempt may have been processed although we saw no answer.
        let mut maybe_delivered = batch.maybe_delivered;
        let failure = loop {
            if deadline.before(self.pacer.wait_turn()).await.is_none() {
                break Failure::Deadline;
            }
            let mut request = self
                .client
                .post(self.url.clone())
                .header(header::AUTHORIZATION, self.authorization.clone())
                .header(header::CONTENT_TYPE, "application/x-ndjson")
                .body(body.clone());
            if let Some(encoding) = encoding {
                request = request.header(header::CONTENT_ENCODING, encoding);
            }
            let Some(answer) = deadline.before(request.send()).await else {
                // The request may have gone out, and been processed.
                maybe_delivered = true;
                break Failure::Deadline;
            };

            let (retry_after, last) = match answer {
                Ok(response) => {
                    let status = response.status();
                    self.pacer.observe(status, response.headers());
                    self.health.set(!is_retryable(status));
                    if status.is_success() {
                        let body = response.bytes().await.unwrap_or_default();
                        return Ok(Acknowledged {
                            quarantined: quarantined(&body),
                            maybe_duplicated: maybe_delivered,
                        });
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
                    self.health.set(false);
                    // A failed connection sent nothing; a timeout or a connection lost after
                    // sending leaves the outcome unknown.
                    maybe_delivered |= !error.is_connect();
                    (None, error.without_url().to_string())
                }
            };

            if attempt >= self.max_attempts {
                break Failure::GaveUp {
                    attempts: attempt,
                    last,
                };
            }
            if deadline.is_secured() {
                // Shutting down, with the batch safe on disk: its next try is the next run's.
                break Failure::Deadline;
            }
            let delay = match retry_after {
                Some(asked) if asked > MAX_RETRY_AFTER => {
                    break Failure::GaveUp {
                        attempts: attempt,
                        last: format!("{last} with Retry-After {}s", asked.as_secs()),
                    };
                }
                Some(asked) => asked,
                None => backoff(attempt),
            };
            if deadline.wait_to_retry(delay).await.is_none() {
                break Failure::Deadline;
            }
            // Counted once it is really sent again, not when a deadline cuts the wait short.
            COUNTERS.retried.add(1);
            attempt += 1;
        };
        // Whoever sends it next must know that the service may hold its rows already.
        batch.maybe_delivered = maybe_delivered;
        Err(failure)
    }
}

impl Deliver for EventsApi {
    fn compresses(&self) -> bool {
        self.gzip
    }

    fn health(&self) -> Health {
        self.health.clone()
    }

    /// Splits on 413, so one batch may become several requests.
    async fn deliver(&mut self, batch: Batch, deadline: &Deadline) -> Report {
        let mut report = Report::default();
        let settled = &mut report.settled;
        let mut pending = vec![batch];
        while let Some(mut batch) = pending.pop() {
            let given_up = match self.send(&mut batch, deadline).await {
                Ok(acknowledged) => {
                    settled.sent += batch.events;
                    settled.batches += 1;
                    settled.quarantined += acknowledged.quarantined;
                    if acknowledged.maybe_duplicated {
                        settled.maybe_duplicated += batch.events;
                    }
                    report_quarantine(acknowledged.quarantined);
                    continue;
                }
                Err(Failure::TooLarge) => match batch.split() {
                    Ok((head, tail)) => {
                        pending.push(tail);
                        pending.push(head);
                        continue;
                    }
                    Err(batch) => {
                        report_dropped(
                            batch.events,
                            format_args!("an event is larger than the Events API accepts (413)"),
                        );
                        batch
                    }
                },
                Err(Failure::Refused { status, body }) => {
                    let body = body.replace(&*self.token, "<redacted>");
                    report_refusal(&batch, status, &body);
                    batch
                }
                Err(Failure::GaveUp { attempts, last }) => {
                    let why = DeferredBecause::GaveUp { attempts, last };
                    report.deferred.push(Deferred { batch, why });
                    continue;
                }
                Err(Failure::Deadline) => {
                    let why = DeferredBecause::Deadline;
                    report.deferred.push(Deferred { batch, why });
                    continue;
                }
            };
            settled.failed += given_up.events;
        }
        report
    }
}

/// Mozilla's trusted root certificates, as shipped by the rustls project.
fn webpki_roots() -> impl Iterator<Item = reqwest::Certificate> {
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .filter_map(|der| reqwest::Certificate::from_der(der).ok())
}

/// The rows a success answer says were quarantined.
fn quarantined(body: &[u8]) -> u64 {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|answer| answer.get("quarantined_rows")?.as_u64())
        .unwrap_or(0)
}

/// Reports once that the service quarantined rows: the datasource's schema does not match the
/// rows, which only the user can fix.
fn report_quarantine(quarantined: u64) {
    static QUARANTINE: diag::Once = diag::Once::new();
    if quarantined > 0 {
        QUARANTINE.report(format_args!(
            "the Events API quarantined {quarantined} rows: the datasource's schema does not \
             match the events (see its `_quarantine` datasource)"
        ));
    }
}

/// Reports each refusing status once, with what to check.
fn report_refusal(batch: &Batch, status: StatusCode, body: &str) {
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
    fn the_answer_says_how_many_rows_were_quarantined() {
        assert_eq!(
            quarantined(br#"{"successful_rows":8,"quarantined_rows":2}"#),
            2
        );
        assert_eq!(quarantined(b"accepted"), 0);
    }
}
