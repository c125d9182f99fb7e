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
    /// The status code answered; `0` for a request held by [`Scripted::Hang`], which is never
    /// answered (it is logged on arrival so a test can see it while it hangs).
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
    /// Wait this long, then process the request normally.
    Delay(Duration),
    /// Never answer: hold the request until the receiver shuts down.
    Hang,
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
}

/// The body of the convenience constructors, shaped like Tinybird's `{"error": ...}` answers.
fn scripted_error_body(status: u16) -> String {
    serde_json::json!({ "error": format!("scripted {status} response") }).to_string()
}
