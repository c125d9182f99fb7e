//! Rows into NDJSON, the wire format of every row kind: one JSON object per line, the columns of
//! the template's `mcp_logs` datasource:
//!
//! ```text
//! {"timestamp":"2026-11-24 07:02:36.123","session":"…","level":"info","record":"{…}"}
//! ```
//!
//! `record` is a JSON object serialized into a string. A call's holds the keys the template's
//! pipes read (`appName`, `funcName`, `tool`, `prompt`, `resource`, `version`, `message`) plus
//! ours (`kind`, `method`, `outcome`, `duration_ms`, `error`, `error_type`, the client, the
//! protocol, the transport, ...: the README's table); a log line's holds `kind = "log"`, its
//! message, target and fields, its `funcName` (inside an instrumented handler the handler's
//! function, as on the call's own row; elsewhere the enclosing span's name, else the target),
//! and the handler it was written in under keys the template does not count (`handler_kind`,
//! `handler`).

mod keys;
mod timestamp;

use std::time::Duration;

use serde::Serialize;

use crate::rows::call::{ErrorType, Kind, Outcome};
use crate::rows::fields::Fields;
use crate::rows::session::{SessionId, process_session_id};
use crate::rows::{CallRow, LogRow, Row};
use keys::{AsText, CallFields, LinkRecord, OriginRecord};
use timestamp::TimestampWriter;
pub(crate) use timestamp::WallClock;

/// Encodes rows, reusing what it can from one row to the next: a buffer, the last timestamp's
/// second, and the session of rows that have none of their own.
pub(crate) struct Encoder {
    message: String,
    timestamps: TimestampWriter,
    process_session: SessionId,
}

impl Default for Encoder {
    fn default() -> Self {
        Self {
            message: String::new(),
            timestamps: TimestampWriter::default(),
            process_session: process_session_id(),
        }
    }
}

/// The columns of a line besides `record`.
struct Columns<'a> {
    started: u64,
    session: Option<&'a SessionId>,
    level: &'a str,
}

impl Encoder {
    /// Appends `row` as an NDJSON line (with its `\n`) to `out`, its time read off `clock`.
    pub(crate) fn encode(&mut self, row: &Row, clock: &WallClock, out: &mut Vec<u8>) {
        match row {
            Row::Call(call) => self.call(call, clock, out),
            Row::Log(line) => self.log(line, clock, out),
        }
    }

    fn call(&mut self, call: &CallRow, clock: &WallClock, out: &mut Vec<u8>) {
        let site = call.callsite;
        let kind = site.kind;
        let name = call.name();
        let error = call.error();
        let of_kind = |of: Kind| if kind == of { name } else { "" };
        let details = call.details.as_deref();
        let origin = call.origin();
        // A session row has no outcome: its name says what happened ("start", "end").
        let outcome = if kind == Kind::Session {
            ""
        } else {
            call.outcome.as_str()
        };

        let mut message = std::mem::take(&mut self.message);
        message.clear();
        for part in [kind.as_str(), " ", name] {
            message.push_str(part);
        }
        for part in [outcome, error] {
            if !part.is_empty() {
                message.push_str(": ");
                message.push_str(part);
            }
        }
        let link = details.and_then(|details| details.link.as_deref());
        let captured = details.and_then(|details| details.captured.as_deref());
        let record = CallRecord {
            app_name: site.crate_name,
            func_name: site.fn_name,
            tool: of_kind(Kind::Tool),
            prompt: of_kind(Kind::Prompt),
            resource: of_kind(Kind::Resource),
            version: site.crate_version,
            message: &message,
            kind: kind.as_str(),
            method: match kind {
                Kind::Request | Kind::Notification => name,
                _ => kind.handler_method().unwrap_or(""),
            },
            // Not `tool`: the template counts every row naming a tool as a call of it.
            name: match kind {
                Kind::Task | Kind::MissingCapability => name,
                _ => "",
            },
            event: if kind == Kind::Session { name } else { "" },
            outcome,
            // A session's start has no duration; its end has the session's.
            duration_ms: (kind != Kind::Session || call.duration_ns > 0)
                .then(|| duration_ms(call.duration_ns)),
            handler_duration_ms: details
                .and_then(|details| details.handler_duration_ns)
                .map(duration_ms),
            error,
            error_type: details.and_then(|details| details.error_type).map(AsText),
            origin: origin.map(OriginRecord),
            link: link.map(LinkRecord),
            listed: details.and_then(|details| details.listed.as_deref()),
            user: call.user(),
            fields: CallFields(call.field_sources()),
            arguments: captured.and_then(|captured| captured.arguments.as_ref()),
            result: captured.and_then(|captured| captured.result.as_ref()),
        };
        let columns = Columns {
            started: call.started,
            session: call.session.as_ref(),
            level: level(call.outcome),
        };
        self.line(&columns, &record, clock, out);
        self.message = message;
    }

    fn log(&mut self, line: &LogRow, clock: &WallClock, out: &mut Vec<u8>) {
        let handler = line.handler.as_ref();
        // The handler's function, as its call's row names it: not the span around the line,
        // which inside a handler is often the SDK's (rmcp's `serve_inner`). Only a session's
        // callsite has no function, and no line is logged inside one.
        let handler_fn = handler
            .map(|handler| handler.callsite.fn_name)
            .filter(|name| !name.is_empty());
        let record = LogRecord {
            app_name: line.app_name,
            func_name: handler_fn.or(line.span).unwrap_or(&line.target),
            version: line.app_version,
            message: &line.message,
            kind: "log",
            target: &line.target,
            handler_kind: handler.map_or("", |handler| handler.callsite.kind.as_str()),
            handler: handler.map_or("", |handler| handler.name()),
            origin: line.origin.as_deref().map(OriginRecord),
            fields: &line.fields,
        };
        let columns = Columns {
            started: line.logged,
            session: line.session.as_ref(),
            level: line.level.as_str(),
        };
        self.line(&columns, &record, clock, out);
    }

    /// Writes the line's columns, in one pass: the `record` object is serialized straight into
    /// its string column, escaped on the way, rather than serialized and then escaped again as
    /// a string.
    fn line(
        &mut self,
        columns: &Columns<'_>,
        record: &impl Serialize,
        clock: &WallClock,
        out: &mut Vec<u8>,
    ) {
        let session = columns.session.unwrap_or(&self.process_session).as_str();
        // Serializing strings and numbers into a Vec cannot fail.
        out.extend_from_slice(br#"{"timestamp":""#);
        self.timestamps.write(clock.at(columns.started), out);
        out.extend_from_slice(br#"","session":"#);
        let _ = serde_json::to_writer(&mut *out, session);
        out.extend_from_slice(br#","level":""#);
        out.extend_from_slice(columns.level.as_bytes());
        out.extend_from_slice(br#"","record":""#);
        let _ = serde_json::to_writer(StringContents(out), record);
        out.extend_from_slice(b"\"}\n");
    }
}

/// A call's `record`. Keys without a value are left out rather than sent empty: the template's
/// pipes read them with `JSONExtractString`, which gives `''` for a missing key, and every byte
/// left out is a byte less to encode, send, ingest and store, on every call.
#[derive(Serialize)]
struct CallRecord<'a> {
    #[serde(rename = "appName")]
    app_name: &'a str,
    /// Empty only on a session's rows, which no function serves.
    #[serde(rename = "funcName", skip_serializing_if = "str::is_empty")]
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
    #[serde(skip_serializing_if = "str::is_empty")]
    method: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    event: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    handler_duration_ms: Option<f64>,
    #[serde(skip_serializing_if = "str::is_empty")]
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_type: Option<AsText<ErrorType>>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    origin: Option<OriginRecord<'a>>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    link: Option<LinkRecord<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    listed: Option<&'a [Box<str>]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "CallFields::is_empty")]
    fields: CallFields<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arguments: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a serde_json::Value>,
}

/// A log line's `record`. As for calls, keys without a value are left out.
#[derive(Serialize)]
struct LogRecord<'a> {
    #[serde(rename = "appName")]
    app_name: &'a str,
    /// Inside an instrumented handler, the handler's function (the `funcName` of the call's
    /// row); elsewhere the enclosing span's name, else the line's target.
    #[serde(rename = "funcName")]
    func_name: &'a str,
    version: &'a str,
    message: &'a str,
    kind: &'static str,
    target: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    handler_kind: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    handler: &'a str,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    origin: Option<OriginRecord<'a>>,
    #[serde(skip_serializing_if = "Fields::is_empty")]
    fields: &'a Fields,
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
/// one; a cancelled call (the client went away) is not the server's failure, nor is a call
/// waiting for input or running as a task.
fn level(outcome: Outcome) -> &'static str {
    if outcome.is_failure() {
        "error"
    } else {
        "info"
    }
}

/// Milliseconds with microsecond precision. Integer microseconds divided by a power of ten print
/// as the short decimal they are (`1.234`), not as a long binary expansion.
fn duration_ms(nanos: u64) -> f64 {
    let micros = Duration::from_nanos(nanos).as_micros();
    u64::try_from(micros).unwrap_or(u64::MAX) as f64 / 1000.0
}

#[cfg(test)]
pub(crate) mod tests;
