//! Events into request bodies: the wire format, the rules that close a batch, and gzip.
//!
//! Wire format: one JSON object per line, the columns of the template's `mcp_logs` datasource:
//!
//! ```text
//! {"timestamp":"2026-11-24 07:02:36.123","session":"…","level":"info","record":"{…}"}
//! ```
//!
//! `record` is a JSON object serialized into a string: the keys the template's pipes read
//! (`appName`, `funcName`, `tool`, `prompt`, `resource`, `version`, `message`) plus ours (`kind`,
//! `outcome`, `duration_ms`, `error`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde::Serialize;

use crate::event::{Event, Kind, Outcome, clock};
use crate::request::ClientInfo;
use crate::session::SessionId;

/// When a batch closes: whichever limit is reached first.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_events: usize,
    /// Uncompressed NDJSON bytes.
    pub(crate) max_bytes: usize,
    /// Time since the batch's first event was added to it.
    pub(crate) max_age: Duration,
}

/// A closed batch: an NDJSON body and how many events it holds.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) body: Vec<u8>,
    pub(crate) events: usize,
    /// The body gzip-compressed, once [`Batch::compress`] ran.
    gzipped: Option<Bytes>,
}

impl Batch {
    pub(crate) fn new(body: Vec<u8>, events: usize) -> Self {
        Self {
            body,
            events,
            gzipped: None,
        }
    }

    /// Compresses the body now, so that sending does not wait for it: the worker compresses a
    /// batch as it closes, while the previous one is in flight.
    pub(crate) fn compress(&mut self) {
        if self.gzipped.is_none() {
            // Compressing into memory only fails if allocation does, which aborts anyway; the
            // body then goes uncompressed.
            self.gzipped = self.gzip().ok().map(Bytes::from);
        }
    }

    /// What goes on the wire, shared by every attempt without a copy: the compressed body
    /// (compressed now if not yet) with its `Content-Encoding`, or the body as is.
    pub(crate) fn payload(&mut self, gzip: bool) -> (Bytes, Option<&'static str>) {
        if gzip {
            self.compress();
        }
        match (&self.gzipped, gzip) {
            (Some(gzipped), true) => (gzipped.clone(), Some("gzip")),
            _ => (Bytes::copy_from_slice(&self.body), None),
        }
    }

    /// Splits the body at the line boundary nearest its middle, for a `413 Payload Too Large`.
    /// A single event cannot be split and comes back as the error.
    pub(crate) fn split(self) -> Result<(Batch, Batch), Batch> {
        if self.events < 2 {
            return Err(self);
        }
        let middle = self.body.len() / 2;
        // Lines end in '\n', so a boundary is just past one. Prefer the first after the middle;
        // the last line's '\n' is the body's end and splits nothing, so fall back to before it.
        let cut = self.body[middle..self.body.len() - 1]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| middle + i + 1)
            .or_else(|| {
                self.body[..middle]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map(|i| i + 1)
            });
        let Some(cut) = cut else {
            return Err(self);
        };
        let mut head = self.body;
        let tail = head.split_off(cut);
        let head_events = head.iter().filter(|&&b| b == b'\n').count();
        Ok((
            Batch::new(head, head_events),
            Batch::new(tail, self.events - head_events),
        ))
    }

    /// The body gzip-compressed. Level 1: JSON compresses well at any level and the worker must
    /// keep up with a busy server on one core.
    fn gzip(&self) -> std::io::Result<Vec<u8>> {
        let mut encoder =
            GzEncoder::new(Vec::with_capacity(self.body.len() / 6), Compression::fast());
        encoder.write_all(&self.body)?;
        encoder.finish()
    }
}

/// Accumulates encoded events until a limit closes the batch.
pub(crate) struct Builder {
    limits: Limits,
    body: Vec<u8>,
    events: usize,
    /// When the open batch got its first event; `None` while empty.
    opened: Option<Instant>,
    clock: WallClock,
    scratch: Scratch,
}

impl Builder {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            body: Vec::new(),
            events: 0,
            opened: None,
            clock: WallClock::now(),
            scratch: Scratch::default(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// When the open batch must close by age; `None` while it is empty.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.opened.map(|opened| opened + self.limits.max_age)
    }

    /// Adds one event; returns the batch it closed, if adding it reached a limit.
    pub(crate) fn push(&mut self, event: &Event) -> Option<Batch> {
        if self.events == 0 {
            // Re-anchor wall time once per batch: a stepped system clock skews one batch at most.
            self.clock = WallClock::now();
        }
        let start = self.body.len();
        encode_line(event, &self.clock, &mut self.scratch, &mut self.body);
        let mut closed = None;
        if self.events > 0 && self.body.len() > self.limits.max_bytes {
            // The line would overflow the batch: close the batch without it, start the next one
            // with it. (At most one batch closes per push: a batch that just closed on count
            // cannot overflow on the next line, as it holds only that line.)
            let line = self.body.split_off(start);
            closed = Some(self.take());
            self.body = line;
        }
        self.events += 1;
        if self.opened.is_none() {
            self.opened = Some(Instant::now());
        }
        if closed.is_none() && self.events >= self.limits.max_events {
            closed = Some(self.take());
        }
        closed
    }

    /// Closes the open batch if its age limit has passed.
    pub(crate) fn close_if_due(&mut self, now: Instant) -> Option<Batch> {
        match self.deadline() {
            Some(deadline) if deadline <= now => Some(self.take()),
            _ => None,
        }
    }

    /// Closes the open batch now, whatever its size; `None` when empty.
    pub(crate) fn close(&mut self) -> Option<Batch> {
        (!self.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> Batch {
        let capacity = self.body.len();
        self.opened = None;
        Batch::new(
            std::mem::replace(&mut self.body, Vec::with_capacity(capacity)),
            std::mem::take(&mut self.events),
        )
    }
}

/// What encoding reuses from one event to the next: a buffer, the last timestamp's second, and
/// the session of events that have none of their own.
struct Scratch {
    message: String,
    timestamps: TimestampWriter,
    process_session: SessionId,
}

impl Default for Scratch {
    fn default() -> Self {
        Self {
            message: String::new(),
            timestamps: TimestampWriter::default(),
            process_session: crate::session::process_session_id(),
        }
    }
}

/// Maps the hot path's clock ticks to wall-clock time through one simultaneous reading of both
/// clocks, so the hot path reads only the monotonic clock.
#[derive(Clone, Copy)]
struct WallClock {
    ticks: u64,
    system: SystemTime,
}

impl WallClock {
    fn now() -> Self {
        Self {
            ticks: clock().raw(),
            system: SystemTime::now(),
        }
    }

    /// Checked arithmetic: a system clock set absurdly far off clamps rather than panics.
    fn at(&self, ticks: u64) -> SystemTime {
        let shifted = if ticks >= self.ticks {
            self.system.checked_add(clock().delta(self.ticks, ticks))
        } else {
            self.system.checked_sub(clock().delta(ticks, self.ticks))
        };
        shifted.unwrap_or(self.system)
    }
}

/// The `record` object. Keys without a value are left out rather than sent empty: the
/// template's pipes read them with `JSONExtractString`, which gives `''` for a missing key, and
/// every byte left out is a byte less to encode, send, ingest and store, on every call.
#[derive(Serialize)]
struct Record<'a> {
    #[serde(rename = "appName")]
    app_name: &'a str,
    #[serde(rename = "funcName")]
    func_name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    tool: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    prompt: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    resource: &'a str,
    version: &'a str,
    message: &'a str,
    kind: &'static str,
    outcome: &'static str,
    duration_ms: f64,
    #[serde(skip_serializing_if = "str::is_empty")]
    error: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    client_name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    client_version: &'a str,
}

/// Appends one event as an NDJSON line (with its `\n`) to `out`: a call's, or a log line's.
fn encode_line(event: &Event, clock: &WallClock, scratch: &mut Scratch, out: &mut Vec<u8>) {
    #[cfg(feature = "tracing")]
    if let Some(log) = event.log() {
        write_line(event, log.level(), &log.record(event), clock, scratch, out);
        return;
    }
    let site = event.callsite;
    let name = event.name();
    let error = event.error();
    let of_kind = |kind: Kind| if site.kind == kind { name } else { "" };

    let mut message = std::mem::take(&mut scratch.message);
    message.clear();
    for part in [site.kind.as_str(), " ", name, ": ", event.outcome.as_str()] {
        message.push_str(part);
    }
    if !error.is_empty() {
        message.push_str(": ");
        message.push_str(error);
    }
    let record = Record {
        app_name: site.crate_name,
        func_name: site.fn_name,
        tool: of_kind(Kind::Tool),
        prompt: of_kind(Kind::Prompt),
        resource: of_kind(Kind::Resource),
        version: site.crate_version,
        message: &message,
        kind: site.kind.as_str(),
        outcome: event.outcome.as_str(),
        duration_ms: duration_ms(event.duration()),
        error,
        client_name: event.client().map_or("", ClientInfo::name),
        client_version: event.client().map_or("", ClientInfo::version),
    };
    write_line(event, level(event.outcome), &record, clock, scratch, out);
    scratch.message = message;
}

/// Writes the line's columns, in one pass: the `record` object is serialized straight into its
/// string column, escaped on the way, rather than serialized and then escaped again as a string.
fn write_line(
    event: &Event,
    level: &str,
    record: &impl Serialize,
    clock: &WallClock,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
) {
    let session = event
        .session
        .as_ref()
        .unwrap_or(&scratch.process_session)
        .as_str();
    // Serializing strings and numbers into a Vec cannot fail.
    out.extend_from_slice(br#"{"timestamp":""#);
    scratch.timestamps.write(clock.at(event.started), out);
    out.extend_from_slice(br#"","session":"#);
    let _ = serde_json::to_writer(&mut *out, session);
    out.extend_from_slice(br#","level":""#);
    out.extend_from_slice(level.as_bytes());
    out.extend_from_slice(br#"","record":""#);
    let _ = serde_json::to_writer(StringContents(out), record);
    out.extend_from_slice(b"\"}\n");
}

/// Writes JSON text as the contents of a JSON string. serde_json's compact output has every
/// control character inside its strings escaped already and none outside them, so `"` and `\`
/// are the only bytes left to escape.
struct StringContents<'a>(&'a mut Vec<u8>);

impl std::io::Write for StringContents<'_> {
    fn write(&mut self, json: &[u8]) -> std::io::Result<usize> {
        let mut rest = json;
        while let Some(at) = rest.iter().position(|&b| b == b'"' || b == b'\\') {
            self.0.extend_from_slice(&rest[..at]);
            self.0.extend_from_slice(&[b'\\', rest[at]]);
            rest = &rest[at + 1..];
        }
        self.0.extend_from_slice(rest);
        Ok(json.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The template counts a row as an error when its level is `error`: a failed or panicked call is
/// one; a cancelled call (the client went away) is not the server's failure.
fn level(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Ok | Outcome::Cancelled => "info",
        Outcome::Error | Outcome::Panic => "error",
    }
}

/// Milliseconds with microsecond precision. Integer microseconds divided by a power of ten print
/// as the short decimal they are (`1.234`), not as a long binary expansion.
fn duration_ms(duration: Duration) -> f64 {
    let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
    micros as f64 / 1000.0
}

/// Writes `timestamp` columns, `YYYY-MM-DD HH:MM:SS.mmm` in UTC: what ClickHouse's
/// `DateTime`/`DateTime64` columns parse. The calendar part costs more than the rest of a line,
/// and events in a batch mostly share their second, so the last second's text is kept.
#[derive(Default)]
struct TimestampWriter {
    second: Option<u64>,
    /// `YYYY-MM-DD HH:MM:SS` of `second`.
    text: String,
}

impl TimestampWriter {
    fn write(&mut self, time: SystemTime, out: &mut Vec<u8>) {
        // Times before 1970 only come from a badly wrong clock; clamp rather than fail.
        let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since_epoch.as_secs();
        if self.second != Some(secs) {
            self.second = Some(secs);
            self.text.clear();
            let (year, month, day) = civil_from_days(secs / 86_400);
            let second_of_day = secs % 86_400;
            let _ = write!(
                self.text,
                "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
                second_of_day / 3600,
                second_of_day / 60 % 60,
                second_of_day % 60,
            );
        }
        out.extend_from_slice(self.text.as_bytes());
        let millis = since_epoch.subsec_millis();
        let digit = |value: u32| b'0' + (value % 10) as u8;
        out.extend_from_slice(&[b'.', digit(millis / 100), digit(millis / 10), digit(millis)]);
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Callsite, Details};

    static SITE: Callsite = Callsite::new(Kind::Tool, "add", "add_numbers", "my-server", "1.2.3");

    fn event(outcome: Outcome, error: Option<&str>) -> Event {
        Event {
            callsite: &SITE,
            session: None,
            details: error.map(|error| {
                Box::new(Details {
                    error: Some(error.into()),
                    ..Details::default()
                })
            }),
            started: clock().raw(),
            duration_ns: 1_234_000,
            outcome,
        }
    }

    fn encode(event: &Event) -> serde_json::Value {
        let mut out = Vec::new();
        encode_line(event, &WallClock::now(), &mut Scratch::default(), &mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn a_line_has_the_template_columns_and_record_keys() {
        let line = encode(&event(Outcome::Error, Some("bad \"input\"\n")));
        assert_eq!(line["level"], "error");
        assert_eq!(
            line["session"],
            crate::session::process_session_id().as_str()
        );
        let record: serde_json::Value =
            serde_json::from_str(line["record"].as_str().unwrap()).unwrap();
        assert_eq!(record["appName"], "my-server");
        assert_eq!(record["funcName"], "add_numbers");
        assert_eq!(record["tool"], "add");
        assert_eq!(
            record.get("prompt"),
            None,
            "keys without a value are left out"
        );
        assert_eq!(record.get("resource"), None);
        assert_eq!(record["version"], "1.2.3");
        assert_eq!(record["kind"], "tool");
        assert_eq!(record["outcome"], "error");
        assert_eq!(record["duration_ms"], 1.234);
        assert_eq!(record["error"], "bad \"input\"\n");
        assert_eq!(record["message"], "tool add: error: bad \"input\"\n");
        assert_eq!(
            record.get("client_name"),
            None,
            "unknown without a request context"
        );
        assert_eq!(record.get("client_version"), None);
        let ok = encode(&event(Outcome::Ok, None));
        let record: serde_json::Value =
            serde_json::from_str(ok["record"].as_str().unwrap()).unwrap();
        assert_eq!(
            record.get("error"),
            None,
            "no error text when the call succeeded"
        );
        assert_eq!(record["message"], "tool add: ok");
    }

    #[test]
    fn timestamps_match_httpdate_to_the_second() {
        // Cross-checks the civil-date arithmetic against an independent implementation over
        // 400 years of instants, leap days and century rules included.
        let mut secs: u64 = 0;
        while secs < 400 * 365 * 86_400 {
            let time = UNIX_EPOCH + Duration::from_secs(secs);
            let ours = timestamp(time);
            let theirs = httpdate::HttpDate::from(time).to_string(); // "Sun, 06 Nov 1994 08:49:37 GMT"
            let reparsed = httpdate::parse_http_date(&theirs).unwrap();
            assert_eq!(reparsed, time);
            let (date, clock) = ours.split_once(' ').unwrap();
            let mut parts = date.split('-');
            let (year, month, day) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            let months = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ];
            let expected = format!(
                "{day} {} {year} {}",
                months[month.parse::<usize>().unwrap() - 1],
                &clock[..8]
            );
            assert!(theirs.contains(&expected), "{ours} vs {theirs}");
            secs += 86_400 * 7 + 3_607; // walks every weekday and time of day
        }
    }

    #[test]
    fn timestamps_keep_milliseconds() {
        let time = UNIX_EPOCH + Duration::from_millis(1_764_000_000_123);
        assert_eq!(timestamp(time), "2025-11-24 16:00:00.123");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01 00:00:00.000");
    }

    #[test]
    fn the_kept_second_follows_the_clock_both_ways() {
        let mut writer = TimestampWriter::default();
        let at = |millis: u64| UNIX_EPOCH + Duration::from_millis(1_764_000_000_000 + millis);
        let mut out = Vec::new();
        for millis in [5, 999, 1_000, 61_042, 7, 86_400_000] {
            writer.write(at(millis), &mut out);
            out.push(b' ');
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2025-11-24 16:00:00.005 2025-11-24 16:00:00.999 2025-11-24 16:00:01.000 \
             2025-11-24 16:01:01.042 2025-11-24 16:00:00.007 2025-11-25 16:00:00.000 "
        );
    }

    #[test]
    fn the_record_column_holds_the_record_escaped_once() {
        let tricky = "quote \" backslash \\ newline \n tab \t nul \u{0} é ✓ \u{2028}";
        let line = encode(&event(Outcome::Error, Some(tricky)));
        let record: serde_json::Value =
            serde_json::from_str(line["record"].as_str().unwrap()).unwrap();
        assert_eq!(record["error"], tricky);
    }

    fn timestamp(time: SystemTime) -> String {
        let mut out = Vec::new();
        TimestampWriter::default().write(time, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn batches_close_on_count() {
        let mut builder = Builder::new(Limits {
            max_events: 3,
            max_bytes: 1 << 20,
            max_age: Duration::from_secs(60),
        });
        let e = event(Outcome::Ok, None);
        assert!(builder.push(&e).is_none());
        assert!(builder.push(&e).is_none());
        let batch = builder.push(&e).expect("third event closes the batch");
        assert_eq!(batch.events, 3);
        assert_eq!(batch.body.iter().filter(|&&b| b == b'\n').count(), 3);
        assert!(builder.is_empty());
    }

    #[test]
    fn batches_close_before_overflowing_bytes() {
        let e = event(Outcome::Ok, None);
        let mut probe = Vec::new();
        encode_line(&e, &WallClock::now(), &mut Scratch::default(), &mut probe);
        let mut builder = Builder::new(Limits {
            max_events: 1000,
            max_bytes: probe.len() * 2 + probe.len() / 2,
            max_age: Duration::from_secs(60),
        });
        assert!(builder.push(&e).is_none());
        assert!(builder.push(&e).is_none());
        let batch = builder.push(&e).expect("the third line would overflow");
        assert_eq!(batch.events, 2);
        assert!(batch.body.len() <= probe.len() * 2 + probe.len() / 2);
        assert_eq!(builder.close().unwrap().events, 1);
    }

    #[test]
    fn batches_close_on_age_from_their_first_event() {
        let mut builder = Builder::new(Limits {
            max_events: 1000,
            max_bytes: 1 << 20,
            max_age: Duration::from_millis(500),
        });
        let e = event(Outcome::Ok, None);
        assert!(builder.deadline().is_none());
        let before = Instant::now();
        builder.push(&e);
        let deadline = builder.deadline().unwrap();
        assert!(deadline >= before + Duration::from_millis(500));
        assert!(deadline <= Instant::now() + Duration::from_millis(500));
        builder.push(&e);
        assert_eq!(
            builder.deadline(),
            Some(deadline),
            "a later event does not extend it"
        );
        assert!(
            builder
                .close_if_due(deadline - Duration::from_millis(1))
                .is_none()
        );
        assert_eq!(builder.close_if_due(deadline).unwrap().events, 2);
    }

    #[test]
    fn split_keeps_every_line_whole() {
        let mut builder = Builder::new(Limits {
            max_events: 1000,
            max_bytes: 1 << 20,
            max_age: Duration::from_secs(60),
        });
        for _ in 0..5 {
            builder.push(&event(Outcome::Ok, None));
        }
        let batch = builder.close().unwrap();
        let whole = batch.body.clone();
        let (head, tail) = batch.split().unwrap();
        assert_eq!(head.events + tail.events, 5);
        assert!(head.events >= 2 && tail.events >= 2);
        assert_eq!([head.body, tail.body].concat(), whole);
        let single = Batch::new(b"{}\n".to_vec(), 1);
        assert!(single.split().is_err());
    }
}
