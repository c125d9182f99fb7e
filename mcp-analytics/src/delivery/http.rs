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

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::connect::{Connector, connector};
use super::rate_limit::Pacer;
use super::retry::{MAX_RETRY_AFTER, backoff, is_retryable, retry_after};
use super::{Deadline, Deferred, DeferredBecause, Deliver, Health, Report, report_dropped};
use crate::batch::Batch;
use crate::diag;
use crate::error::Error;
use crate::stats::COUNTERS;

/// How much of a refusal's body is quoted on stderr.
const QUOTED_BODY: usize = 200;

/// How much of an answer's body is read: the service's are a few hundred bytes of JSON.
const MAX_ANSWER: usize = 64 * 1024;

/// Who is calling, for the service's logs.
const USER_AGENT: &str = concat!("mcp-analytics/", env!("CARGO_PKG_VERSION"));

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
    client: Client<Connector, Full<Bytes>>,
    url: Uri,
    authorization: HeaderValue,
    /// The longest a request may take, from connecting to reading its answer.
    request_timeout: Duration,
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
    pub(crate) fn new(url: Uri, token: &str, options: &Options) -> Result<Self, Error> {
        let connector = connector(&url, options.connect_timeout).map_err(Error::HttpClient)?;
        // Connections are kept alive between batches, and closed after the pool's idle timeout
        // (90 s), which needs the timer.
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .build(connector);
        let mut authorization = HeaderValue::try_from(format!("Bearer {token}"))
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
        // Keeps the value out of hyper's own debug output.
        authorization.set_sensitive(true);
        Ok(Self {
            client,
            url,
            authorization,
            request_timeout: options.request_timeout,
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
            let request = self.request(body.clone(), encoding);
            let exchange = exchange(&self.client, request, self.request_timeout);
            let Some(answer) = deadline.before(exchange).await else {
                // The request may have gone out, and been processed.
                maybe_delivered = true;
                break Failure::Deadline;
            };

            let (retry_after, last) = match answer {
                Ok(Answer {
                    status,
                    headers,
                    body,
                }) => {
                    self.pacer.observe(status, &headers);
                    self.health.set(!is_retryable(status));
                    if status.is_success() {
                        return Ok(Acknowledged {
                            quarantined: quarantined(&body),
                            maybe_duplicated: maybe_delivered,
                        });
                    }
                    if status == StatusCode::PAYLOAD_TOO_LARGE {
                        return Err(Failure::TooLarge);
                    }
                    if !is_retryable(status) {
                        let body = String::from_utf8_lossy(&body).into_owned();
                        return Err(Failure::Refused { status, body });
                    }
                    (retry_after(&headers), format!("HTTP {status}"))
                }
                Err(error) => {
                    self.health.set(false);
                    // A failed connection sent nothing; a timeout or a connection lost after
                    // sending leaves the outcome unknown.
                    maybe_delivered |= !error.connect;
                    (None, error.message)
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

    /// The POST of one batch's body, gzip'd already when `encoding` says so.
    fn request(&self, body: Bytes, encoding: Option<&'static str>) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        request.uri_mut().clone_from(&self.url);
        let headers = request.headers_mut();
        headers.insert(header::AUTHORIZATION, self.authorization.clone());
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        if let Some(encoding) = encoding {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
        }
        request
    }
}

/// What the service answered: the status, the headers, and the start of the body.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// Why no answer came.
struct NoAnswer {
    /// Whether the connection could not be opened, so that nothing was sent.
    connect: bool,
    /// What went wrong, for the report: never the request's headers, so never the token.
    message: String,
}

/// Sends `request` and reads the answer, within `timeout` in all.
async fn exchange(
    client: &Client<Connector, Full<Bytes>>,
    request: Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<Answer, NoAnswer> {
    let exchange = async {
        let response = client.request(request).await.map_err(|error| NoAnswer {
            connect: error.is_connect(),
            message: describe(&error),
        })?;
        let (parts, body) = response.into_parts();
        // The body only tells how many rows were quarantined, or why a batch was refused:
        // one that cannot be read whole is no reason to send the batch again.
        let body = Limited::new(body, MAX_ANSWER)
            .collect()
            .await
            .map(http_body_util::Collected::to_bytes)
            .unwrap_or_default();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(NoAnswer {
                connect: false,
                message: format!("no answer within {timeout:?}"),
            })
        })
}

/// `error` and its causes, one after the other: hyper's own message alone ("client error
/// (Connect)") does not say what happened.
fn describe(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        message.push_str(": ");
        message.push_str(&error.to_string());
        cause = error.source();
    }
    message
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
    fn the_answer_says_how_many_rows_were_quarantined() {
        assert_eq!(
            quarantined(br#"{"successful_rows":8,"quarantined_rows":2}"#),
            2
        );
        assert_eq!(quarantined(b"accepted"), 0);
    }
}
