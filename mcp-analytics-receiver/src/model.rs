//! The plain data types the receiver hands back to tests: accepted rows, the request log and the
//! canned answers a test can script.

use std::time::{Duration, Instant};

use serde_json::{Map, Value};

/// One row accepted into a datasource, i.e. one NDJSON line that passed the `mcp_logs` schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The `timestamp` column, exactly as sent (`YYYY-MM-DD HH:MM:SS[.ffffff]`).
    pub timestamp: String,
    /// The `session` column.
    pub session: String,
    /// The `level` column.
    pub level: String,
    /// The `record` column, parsed: the client sends it as a string holding a JSON object.
    pub record: Map<String, Value>,
    /// The NDJSON line as received (after gunzip), without its trailing newline.
    pub raw: String,
    /// The datasource the row was sent to (the `name` query parameter).
    pub datasource: String,
}

impl Row {
    /// Parses NDJSON lines (a request body, or lines a test destination kept) as the receiver
    /// parses a request to `datasource`, with the same checks: every line must be a row of the
    /// `mcp_logs` schema, or the error says which line is not and why.
    ///
    /// ```
    /// let line = r#"{"timestamp":"2026-12-02 09:00:00.123","session":"s","level":"info","record":"{}"}"#;
    /// let rows = mcp_analytics_receiver::Row::parse_lines("mcp_logs", [line]).unwrap();
    /// assert_eq!(rows[0].session, "s");
    /// assert!(mcp_analytics_receiver::Row::parse_lines("mcp_logs", ["{}"]).is_err());
    /// ```
    pub fn parse_lines<'a>(
        datasource: &str,
        lines: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<Row>, String> {
        let mut body = Vec::new();
        for line in lines {
            body.extend_from_slice(line.as_bytes());
            body.push(b'\n');
        }
        if body.is_empty() {
            return Ok(Vec::new());
        }
        let batch = crate::schema::parse_batch(datasource, &body, true)
            .map_err(|bad| format!("line {}: {}", bad.line, bad.reason))?;
        match batch.quarantine_detail {
            Some(detail) => Err(detail),
            None => Ok(batch.rows),
        }
    }

    /// The string value of `key` in [`Row::record`]; `""` when the key is missing or not a string,
    /// which keeps assertions on optional fields short.
    pub fn record_str(&self, key: &str) -> &str {
        self.record.get(key).and_then(Value::as_str).unwrap_or("")
    }

    /// The `duration_ms` field of [`Row::record`], when present and numeric.
    pub fn duration_ms(&self) -> Option<f64> {
        self.record.get("duration_ms").and_then(Value::as_f64)
    }
}

/// What the receiver saw and answered for one HTTP request, rejected ones included.
#[derive(Debug, Clone)]
pub struct RequestLog {
    /// The status code answered; `0` for a request never answered: one held by
    /// [`Scripted::Hang`] (logged on arrival so a test can see it while it hangs), one reset by
    /// [`Scripted::Reset`], or one waiting in a [`Scripted::Delay`] when the receiver went down.
    /// [`RequestLog::detail`] says which.
    pub status: u16,
    /// The `name` query parameter as sent, whether or not it names a configured datasource.
    pub datasource: Option<String>,
    /// Whether the query asked for `wait=true`.
    pub wait: bool,
    /// Whether the body was declared as `Content-Encoding: gzip`.
    pub gzip: bool,
    /// The `Content-Type` header, if any (recorded, not enforced: Tinybird does not enforce it).
    pub content_type: Option<String>,
    /// The body size on the wire (compressed when gzipped), from `Content-Length`; `0` when the
    /// header is missing.
    pub body_bytes: usize,
    /// How many rows were accepted (`0` unless the request succeeded).
    pub rows: usize,
    /// How many lines were quarantined for violating the datasource schema.
    pub quarantined: usize,
    /// Why the request was rejected, or why its lines were quarantined; `None` for a clean success.
    pub detail: Option<String>,
    /// When the request reached the handler.
    pub received_at: Instant,
}

/// A canned answer for one upcoming request, queued with [`crate::Receiver::script`].
///
/// Scripted answers are consumed in order, one per incoming request (whatever its path or
/// method), before the request is validated.
///
/// What the client can know afterwards differs: a [`Scripted::Status`] is an answer, and stores
/// nothing; [`Scripted::Hang`] and [`Scripted::Reset`] leave the client without an answer
/// although nothing was stored; a [`Scripted::Delay`] longer than the client's timeout leaves it
/// without an answer although the rows *were* stored. A client that retries in the last case
/// makes a duplicate, and cannot tell the cases apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scripted {
    /// Answer with this status, an optional `Retry-After` header and this body (sent as
    /// `application/json`), without accepting any row.
    Status {
        /// The HTTP status code (200..=599).
        status: u16,
        /// The `Retry-After` header value, e.g. `"2"` or an HTTP date.
        retry_after: Option<String>,
        /// The response body; should be JSON, like Tinybird's error bodies.
        body: String,
    },
    /// Process the request normally: a no-op entry, e.g. to let one request through between
    /// failures.
    Accept,
    /// Receive the request (head and whole body), wait this long, then process it normally.
    ///
    /// The waiting and processing happen even if the client stops waiting: rows of a request
    /// whose client timed out (or closed the connection) are still stored, late, like a slow
    /// service that received the request does; the answer then goes nowhere. A client that
    /// retries after its timeout thus gets the rows stored twice: this is how a duplicate is made.
    /// Only [`crate::Receiver::go_down`] during the wait cancels it (nothing stored).
    Delay(Duration),
    /// Never answer: hold the request until the receiver shuts down (then answer 503) or goes
    /// down (then break the connection). Nothing is stored, even if the client gives up.
    Hang,
    /// Read the request head and the first chunk of the body that arrives (part of the body,
    /// unless it is small enough to arrive at once), then reset the connection (an RST, through
    /// `SO_LINGER` 0) without answering. Nothing is stored. The client sees a connection error
    /// after having sent its request, or while sending it: it cannot know whether the request
    /// was processed.
    ///
    /// Logged with status 0 and a [`RequestLog::detail`] of the form `reset after reading R of
    /// B body bytes (Scripted::Reset)`.
    Reset,
}

impl Scripted {
    /// Answer with `status` and a generic JSON error body, without accepting any row.
    pub fn status(status: u16) -> Scripted {
        Scripted::Status {
            status,
            retry_after: None,
            body: scripted_error_body(status),
        }
    }

    /// Like [`Scripted::status`], with a `Retry-After` header (seconds or an HTTP date).
    pub fn retry_after(status: u16, retry_after: impl Into<String>) -> Scripted {
        Scripted::Status {
            status,
            retry_after: Some(retry_after.into()),
            body: scripted_error_body(status),
        }
    }

    /// `n` answers drawn from a mix of transient faults and successes, the same for the same
    /// `seed` on every run and platform (SplitMix64). Every answer is one a correct client
    /// eventually gets past by retrying: nothing final (no 4xx but 429, no 413), no
    /// [`Scripted::Hang`], and delays short of any sane client timeout, so that "nothing lost"
    /// is checkable; only the client's retry budget decides whether a batch gets through.
    ///
    /// Weights, out of 100:
    ///
    /// | answer | weight |
    /// | --- | --- |
    /// | [`Scripted::Accept`] | 55 |
    /// | [`Scripted::Delay`] of 1 to 200 ms, then accept | 15 |
    /// | 429 with `Retry-After: 0` | 5 |
    /// | 429 with `Retry-After: 1` | 1 |
    /// | 500, 502, 503, 504 | 3 each |
    /// | [`Scripted::Reset`] | 12 |
    ///
    /// So 70 % of answers store the rows ([`Scripted::stores_rows`]) and 30 % make the client
    /// retry. A batch is lost (counted failed) only if as many answers in a row as the client's
    /// attempts refuse it: check the longest run of refusals in the mix used, e.g.
    /// `mix.split(Scripted::stores_rows).map(<[_]>::len).max()`.
    pub fn random_mix(seed: u64, n: usize) -> Vec<Scripted> {
        let mut rng = crate::rng::SplitMix64::new(seed);
        (0..n)
            .map(|_| match rng.below(100) {
                0..55 => Scripted::Accept,
                55..70 => Scripted::Delay(Duration::from_millis(1 + rng.below(200))),
                70..75 => Scripted::retry_after(429, "0"),
                75..76 => Scripted::retry_after(429, "1"),
                76..79 => Scripted::status(500),
                79..82 => Scripted::status(502),
                82..85 => Scripted::status(503),
                85..88 => Scripted::status(504),
                _ => Scripted::Reset,
            })
            .collect()
    }

    /// Whether a correct client's request answered this way has its rows stored (at once or,
    /// for a [`Scripted::Delay`], late): [`Scripted::Accept`], [`Scripted::Delay`] and a
    /// [`Scripted::Status`] of 2xx.
    pub fn stores_rows(&self) -> bool {
        match self {
            Scripted::Accept | Scripted::Delay(_) => true,
            Scripted::Status { status, .. } => (200..300).contains(status),
            Scripted::Hang | Scripted::Reset => false,
        }
    }
}

/// The body of the convenience constructors, shaped like Tinybird's `{"error": ...}` answers.
fn scripted_error_body(status: u16) -> String {
    serde_json::json!({ "error": format!("scripted {status} response") }).to_string()
}
