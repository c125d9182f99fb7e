//! The HTTP side: the server loop and the one handler that enforces the Events API contract.
//!
//! Every request goes through [`handle`] (a router fallback rather than a route) so that wrong
//! paths and methods are answered, and logged, by the same code as everything else. The listening
//! socket and the connections belong to [`Endpoint`], which can take the endpoint down and up
//! again and break a connection from outside hyper.

use std::future::IntoFuture;
use std::io::Read;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flate2::read::MultiGzDecoder;
use tokio::runtime::Runtime;

use crate::RequestLog;
use crate::endpoint::{Break, ConnHandle, Endpoint};
use crate::schema::{self, Batch};
use crate::state::{Config, Planned, Shared};

/// The only endpoint the receiver serves.
const EVENTS_PATH: &str = "/v0/events";

/// Rejected bodies are read and dropped up to this size before answering. Closing a connection
/// with the body unread makes the client's write fail (broken pipe) before it can read the
/// answer, which would turn e.g. a clean 413 into a transport error.
const DISCARD_LIMIT: usize = 64 * 1024 * 1024;

/// How long in-flight requests get to finish once shutdown is requested, before the runtime is
/// dropped (which cancels them). Keeps [`crate::Receiver`]'s drop bounded.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Serves until shutdown is requested, then gives in-flight requests [`SHUTDOWN_GRACE`] to finish.
/// Runs on the receiver's own thread; returns when the server is down.
pub(crate) fn run(runtime: Runtime, endpoint: Endpoint, shared: Arc<Shared>) {
    let app = Router::new()
        .fallback(handle)
        .with_state(Arc::clone(&shared))
        .into_make_service_with_connect_info::<ConnHandle>();
    runtime.block_on(async move {
        let graceful_signal = {
            let shared = Arc::clone(&shared);
            async move { shared.shutdown_requested().await }
        };
        let server = axum::serve(endpoint, app).with_graceful_shutdown(graceful_signal);
        // Graceful shutdown waits for every open connection, and a client may keep one open
        // mid-request forever; the deadline bounds that wait.
        let deadline = async {
            shared.shutdown_requested().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            served = server.into_future() => {
                if let Err(error) = served {
                    eprintln!("mcp-analytics-receiver: server failed: {error}");
                }
            }
            () = deadline => {}
        }
    });
    // Dropped here, on this thread, so that it cancels whatever the deadline cut short before the
    // thread's exit is reported.
    drop(runtime);
}

/// An error answer: `{"error": message}` with `status`.
#[derive(Debug)]
struct Rejection {
    status: StatusCode,
    message: String,
}

impl Rejection {
    fn new(status: StatusCode, message: impl Into<String>) -> Rejection {
        Rejection {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Rejection {
        Rejection::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let mut response = json_response(
            self.status,
            serde_json::json!({ "error": self.message }).to_string(),
        );
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            // RFC 9110 requires a 405 to say which methods are allowed.
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        response
    }
}

fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// Breaks the request's connection and returns an answer that can never be written: hyper fails
/// writing its head, drops the connection, and the client gets an RST instead of an answer.
fn abort(connection: Option<&ConnHandle>, how: Break) -> Response {
    match connection {
        Some(connection) => {
            connection.break_off(how);
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
        // Every connection comes from `Endpoint`, which provides the handle; should that change,
        // an answer is the next best thing.
        None => {
            Rejection::new(StatusCode::SERVICE_UNAVAILABLE, "connection broken off").into_response()
        }
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let received_at = Instant::now();
    // Taken before anything can wait: a request notices the endpoint going down (and up again)
    // by comparing with this.
    let downs = shared.availability().downs;
    let connection = request
        .extensions()
        .get::<ConnectInfo<ConnHandle>>()
        .map(|ConnectInfo(connection)| connection.clone());
    let (parts, mut body) = request.into_parts();
    let query = parse_query(parts.uri.query());
    let mut entry = log_entry(&parts.headers, query.as_deref().ok(), received_at);

    match shared.next_planned() {
        Some(Planned::Answer {
            status,
            retry_after,
            body: answer,
        }) => {
            let mut response = json_response(status, answer);
            if let Some(retry_after) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, retry_after);
            }
            entry.status = status.as_u16();
            entry.detail = Some("scripted answer".to_owned());
            shared.record(entry, Vec::new());
            discard_body(&mut body).await;
            response
        }
        Some(Planned::Hang) => {
            // Logged now, with status 0, so a test can observe the request while it hangs.
            entry.detail = Some("held unanswered (Scripted::Hang)".to_owned());
            shared.record(entry, Vec::new());
            tokio::select! {
                () = shared.shutdown_requested() => {
                    Rejection::new(StatusCode::SERVICE_UNAVAILABLE, "receiver shut down")
                        .into_response()
                }
                () = shared.went_down_since(downs) => abort(connection.as_ref(), Break::Down),
            }
        }
        Some(Planned::Reset) => {
            // The head is read; take the first chunk of the body that arrives, no more, and
            // reset without answering. Nothing is stored.
            let read = match next_chunk(&mut body).await {
                Some(Ok(chunk)) => chunk.len(),
                Some(Err(_)) | None => 0,
            };
            entry.detail = Some(format!(
                "reset after reading {read} of {} body bytes (Scripted::Reset)",
                entry.body_bytes
            ));
            shared.record(entry, Vec::new());
            abort(connection.as_ref(), Break::Reset)
        }
        Some(Planned::Delay(delay)) => {
            // A slow service still processes a request whose client stopped waiting: a task of
            // its own receives the request whole, waits and ingests it, so that the client going
            // away (which makes hyper drop this handler) does not cancel it. Rows of a request
            // whose client timed out are stored all the same: that is how a retry makes a
            // duplicate. Only the endpoint going down cancels it.
            let task = tokio::spawn({
                let shared = Arc::clone(&shared);
                let mut lost = entry.clone();
                async move {
                    tokio::select! {
                        // First: a body cut off by going down is the receiver's doing.
                        biased;
                        () = shared.went_down_since(downs) => {
                            lost.detail = Some(
                                "dropped unanswered: the receiver went down (Scripted::Delay)"
                                    .to_owned(),
                            );
                            shared.record(lost, Vec::new());
                            None
                        }
                        response = delayed(&shared, parts, query, body, entry, delay) => {
                            Some(response)
                        }
                    }
                }
            });
            match task.await {
                Ok(Some(response)) => response,
                Ok(None) | Err(_) => abort(connection.as_ref(), Break::Down),
            }
        }
        Some(Planned::Accept) | None => process(&shared, &parts, query, body, entry).await,
    }
}

/// [`Planned::Delay`]: receives the whole body (unless the headers already reject it), waits,
/// then processes the request.
async fn delayed(
    shared: &Shared,
    parts: Parts,
    query: Result<Vec<(String, String)>, String>,
    mut body: Body,
    mut entry: RequestLog,
    delay: Duration,
) -> Response {
    let max = shared.config.max_body_bytes;
    if declared_length(&parts.headers).is_some_and(|length| length <= max) {
        match read_body(&mut body, max).await {
            Ok(wire) => body = Body::from(wire),
            Err(rejection) => {
                entry.status = rejection.status.as_u16();
                entry.detail = Some(rejection.message.clone());
                shared.record(entry, Vec::new());
                return rejection.into_response();
            }
        }
    }
    tokio::time::sleep(delay).await;
    process(shared, &parts, query, body, entry).await
}

/// What the receiver does with a request nothing is scripted for: validate, ingest, log, answer.
async fn process(
    shared: &Shared,
    parts: &Parts,
    query: Result<Vec<(String, String)>, String>,
    mut body: Body,
    mut entry: RequestLog,
) -> Response {
    let (response, rows) = match ingest(&shared.config, parts, query, &mut body).await {
        Ok(Ingested { wait, batch }) => {
            let status = if wait {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            };
            let counts = serde_json::json!({
                "successful_rows": batch.accepted,
                "quarantined_rows": batch.quarantined,
            });
            entry.rows = batch.accepted;
            entry.quarantined = batch.quarantined;
            entry.detail = batch.quarantine_detail;
            (json_response(status, counts.to_string()), batch.rows)
        }
        Err(rejection) => {
            entry.detail = Some(rejection.message.clone());
            (rejection.into_response(), Vec::new())
        }
    };
    entry.status = response.status().as_u16();
    shared.record(entry, rows);
    // A no-op when `ingest` read the body; otherwise the request was rejected before that.
    discard_body(&mut body).await;
    response
}

/// The log entry as known from the headers and query alone; the outcome is filled in later.
fn log_entry(
    headers: &HeaderMap,
    query: Option<&[(String, String)]>,
    received_at: Instant,
) -> RequestLog {
    let param = |key| query.and_then(|pairs| query_param(pairs, key));
    RequestLog {
        status: 0,
        datasource: param("name").map(str::to_owned),
        wait: param("wait") == Some("true"),
        gzip: matches!(content_encoding(headers), Encoding::Gzip),
        content_type: headers
            .get(header::CONTENT_TYPE)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned()),
        body_bytes: declared_length(headers).unwrap_or(0),
        rows: 0,
        quarantined: 0,
        detail: None,
        received_at,
    }
}

struct Ingested {
    wait: bool,
    batch: Batch,
}

/// Validates the request in the order a client bug is most usefully reported, reads the body and
/// parses it. Cheap header checks come before reading the body.
async fn ingest(
    config: &Config,
    parts: &Parts,
    query: Result<Vec<(String, String)>, String>,
    body: &mut Body,
) -> Result<Ingested, Rejection> {
    if parts.uri.path() != EVENTS_PATH {
        return Err(Rejection::new(
            StatusCode::NOT_FOUND,
            format!(
                "no such endpoint {:?}; only POST {EVENTS_PATH}",
                parts.uri.path()
            ),
        ));
    }
    if parts.method != Method::POST {
        return Err(Rejection::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {} not allowed; only POST", parts.method),
        ));
    }
    check_token(config, &parts.headers)?;
    let query = query.map_err(Rejection::bad_request)?;
    let (datasource, wait) = events_params(config, &query)?;

    let Some(wire_bytes) = declared_length(&parts.headers) else {
        return Err(Rejection::new(
            StatusCode::LENGTH_REQUIRED,
            "Content-Length is required",
        ));
    };
    if wire_bytes > config.max_body_bytes {
        return Err(Rejection::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "body of {wire_bytes} bytes exceeds the limit of {} bytes",
                config.max_body_bytes
            ),
        ));
    }
    let gzip = match content_encoding(&parts.headers) {
        Encoding::Identity => false,
        Encoding::Gzip => true,
        Encoding::Other(encoding) => {
            return Err(Rejection::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported Content-Encoding {encoding:?}; only gzip"),
            ));
        }
    };

    let wire = read_body(body, config.max_body_bytes).await?;
    let ndjson = if gzip {
        gunzip(&wire)
            .map_err(|error| Rejection::bad_request(format!("invalid gzip body: {error}")))?
    } else {
        wire
    };
    let batch = if config.count_only {
        schema::count_lines(&ndjson)
    } else {
        schema::parse_batch(datasource, &ndjson, config.keep_rows)
    }
    .map_err(|bad| Rejection::bad_request(format!("line {}: {}", bad.line, bad.reason)))?;
    Ok(Ingested { wait, batch })
}

/// Reads the whole body. Hyper enforces that it matches `Content-Length`, which was checked
/// against `limit` already, so the limit here is only a backstop.
async fn read_body(body: &mut Body, limit: usize) -> Result<Vec<u8>, Rejection> {
    let mut wire = Vec::new();
    while let Some(chunk) = next_chunk(body).await {
        let chunk = chunk
            .map_err(|error| Rejection::bad_request(format!("could not read the body: {error}")))?;
        if wire.len() + chunk.len() > limit {
            return Err(Rejection::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body exceeds the limit of {limit} bytes"),
            ));
        }
        wire.extend_from_slice(&chunk);
    }
    Ok(wire)
}

/// Reads and drops what is left of the body, up to [`DISCARD_LIMIT`]; errors just end it, since
/// the answer is already decided.
async fn discard_body(body: &mut Body) {
    let mut discarded = 0;
    while discarded <= DISCARD_LIMIT {
        match next_chunk(body).await {
            Some(Ok(chunk)) => discarded += chunk.len(),
            Some(Err(_)) | None => break,
        }
    }
}

/// The next data chunk of the body, skipping trailers; `None` at the end.
async fn next_chunk(body: &mut Body) -> Option<Result<Bytes, axum::Error>> {
    loop {
        match std::future::poll_fn(|context| Pin::new(&mut *body).poll_frame(context)).await? {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    return Some(Ok(data));
                }
            }
            Err(error) => return Some(Err(error)),
        }
    }
}

fn check_token(config: &Config, headers: &HeaderMap) -> Result<(), Rejection> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if presented == Some(config.token.as_str()) {
        Ok(())
    } else {
        // Deliberately generic, and never echoing what was sent: it may be a real token.
        Err(Rejection::new(
            StatusCode::FORBIDDEN,
            "invalid authentication token",
        ))
    }
}

/// Checks the query: only `name` (a configured datasource) and an optional `wait`, each once.
/// Returns the datasource and whether `wait=true` was asked for.
fn events_params<'q>(
    config: &Config,
    query: &'q [(String, String)],
) -> Result<(&'q str, bool), Rejection> {
    for (index, (key, _)) in query.iter().enumerate() {
        if !matches!(key.as_str(), "name" | "wait") {
            return Err(Rejection::bad_request(format!(
                "unknown query parameter {key:?}"
            )));
        }
        if query[..index].iter().any(|(earlier, _)| earlier == key) {
            return Err(Rejection::bad_request(format!(
                "duplicate query parameter {key:?}"
            )));
        }
    }
    let wait = match query_param(query, "wait") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(Rejection::bad_request(format!(
                "`wait` must be true or false, not {other:?}"
            )));
        }
    };
    match query_param(query, "name") {
        Some(name) if config.datasources.iter().any(|known| known == name) => Ok((name, wait)),
        Some(name) => Err(Rejection::new(
            StatusCode::NOT_FOUND,
            format!("datasource {name:?} not found"),
        )),
        None => Err(Rejection::new(
            StatusCode::NOT_FOUND,
            "missing `name` query parameter (the datasource)",
        )),
    }
}

fn query_param<'q>(query: &'q [(String, String)], key: &str) -> Option<&'q str> {
    query
        .iter()
        .find(|(candidate, _)| candidate == key)
        .map(|(_, value)| value.as_str())
}

/// Splits and percent-decodes a query string; empty segments (`a=1&&b=2`) are skipped.
fn parse_query(query: Option<&str>) -> Result<Vec<(String, String)>, String> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let (key, value) = segment.split_once('=').unwrap_or((segment, ""));
            match (percent_decode(key), percent_decode(value)) {
                (Some(key), Some(value)) => Ok((key, value)),
                _ => Err(format!("malformed query parameter {segment:?}")),
            }
        })
        .collect()
}

/// Form-style decoding (`+` is a space); `None` on a bad escape or non-UTF-8 result.
fn percent_decode(text: &str) -> Option<String> {
    let mut decoded = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(byte) = bytes.next() {
        decoded.push(match byte {
            b'+' => b' ',
            b'%' => {
                let high = char::from(bytes.next()?).to_digit(16)?;
                let low = char::from(bytes.next()?).to_digit(16)?;
                u8::try_from(high * 16 + low).ok()?
            }
            other => other,
        });
    }
    String::from_utf8(decoded).ok()
}

/// The `Content-Length` header; hyper has already rejected a malformed one.
fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

enum Encoding {
    Identity,
    Gzip,
    Other(String),
}

fn content_encoding(headers: &HeaderMap) -> Encoding {
    match headers.get(header::CONTENT_ENCODING) {
        None => Encoding::Identity,
        // Content codings are case-insensitive (RFC 9110 section 8.4.1).
        Some(value) if value.as_bytes().eq_ignore_ascii_case(b"gzip") => Encoding::Gzip,
        Some(value) => Encoding::Other(String::from_utf8_lossy(value.as_bytes()).into_owned()),
    }
}

/// Decodes a gzip body; concatenated members are valid gzip, trailing garbage is not.
fn gunzip(compressed: &[u8]) -> std::io::Result<Vec<u8>> {
    // A gzip member ends with its uncompressed size (mod 2^32): a hint, capped in case it lies.
    let size_hint = compressed
        .last_chunk::<4>()
        .map_or(0, |&size| u32::from_le_bytes(size) as usize);
    let mut decoded = Vec::with_capacity(size_hint.min(64 << 20));
    MultiGzDecoder::new(compressed).read_to_end(&mut decoded)?;
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_query_strings() {
        assert_eq!(
            parse_query(Some("name=mcp%5Flogs&&wait=true&flag")),
            Ok(vec![
                ("name".to_owned(), "mcp_logs".to_owned()),
                ("wait".to_owned(), "true".to_owned()),
                ("flag".to_owned(), String::new()),
            ])
        );
        assert_eq!(parse_query(None), Ok(Vec::new()));
        assert_eq!(percent_decode("a+b%20c"), Some("a b c".to_owned()));
        for bad in ["%", "%4", "%zz", "%+1", "%ff"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn gunzip_rejects_garbage_and_accepts_concatenated_members() {
        use crate::test_client::gzip;

        let mut two_members = gzip(b"a\n");
        two_members.extend(gzip(b"b\n"));
        assert_eq!(gunzip(&two_members).expect("valid gzip"), b"a\nb\n");
        assert!(gunzip(b"not gzip").is_err());
        let mut trailing_garbage = gzip(b"a\n");
        trailing_garbage.extend_from_slice(b"junk");
        assert!(gunzip(&trailing_garbage).is_err());
    }
}
