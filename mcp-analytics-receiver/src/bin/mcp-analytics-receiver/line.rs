//! The readable form of a row: what a person watching a server wants to scan, one line per row,
//! the columns that differ from call to call first and aligned, the rest as `key=value` after.
//!
//! ```text
//! 09:00:00.123  tool      add              ok            1.234 ms  session=3f1c0a9e…  client=claude-ai/0.1  appName=my-server funcName=add version=1.2.0
//! 09:00:00.124  log       warn             slow station  target=my_server  session=3f1c0a9e…  appName=my-server funcName=weather version=1.2.0 fields={"city":"Oslo"}
//! ```

use std::fmt::Write as _;

use mcp_analytics_receiver::Row;
use serde_json::Value;

/// The kinds of row a handler call makes; their record names the handler under the kind's key.
const CALL_KINDS: [&str; 3] = ["tool", "prompt", "resource"];

/// Sessions longer than this are cut to [`SESSION_PREFIX`] characters and an ellipsis: a UUID's
/// first eight hex digits tell the sessions of one run apart, and the rest would push the
/// remaining keys off the screen.
const SESSION_MAX: usize = 12;
const SESSION_PREFIX: usize = 8;

/// `row` as one line, without newline.
pub(crate) fn readable(row: &Row) -> String {
    let kind = row.record_str("kind");
    let mut line = clock(&row.timestamp).to_owned();
    let mut shown = vec!["kind"];
    if CALL_KINDS.contains(&kind) {
        let name = row.record_str(kind);
        let outcome = row.record_str("outcome");
        let duration = row
            .duration_ms()
            .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.3}"));
        let _ = write!(
            line,
            "  {kind:<9} {name:<16} {outcome:<9} {duration:>9} ms  session={}",
            short_session(&row.session)
        );
        let client = [
            row.record_str("client_name"),
            row.record_str("client_version"),
        ];
        match client {
            ["", ""] => {}
            [name, ""] => {
                let _ = write!(line, "  client={name}");
            }
            [name, version] => {
                let _ = write!(line, "  client={name}/{version}");
            }
        }
        shown.extend([
            kind,
            "outcome",
            "duration_ms",
            "client_name",
            "client_version",
        ]);
        // The message repeats the columns (`tool add: error: <error>`): shown only if it does not.
        let mut expected = format!("{kind} {name}: {outcome}");
        let error = row.record_str("error");
        if !error.is_empty() {
            let _ = write!(expected, ": {error}");
            let _ = write!(line, "  error={}", value_text(&Value::from(error)));
        }
        shown.push("error");
        if row.record_str("message") == expected {
            shown.push("message");
        }
    } else if kind == "log" {
        let _ = write!(
            line,
            "  log       {:<16} {}  target={}",
            row.level,
            row.record_str("message"),
            row.record_str("target")
        );
        if !row.session.is_empty() {
            let _ = write!(line, "  session={}", short_session(&row.session));
        }
        shown.extend(["message", "target"]);
    } else {
        // Not something mcp-analytics sends: everything, nothing hidden.
        let kind = if kind.is_empty() { "?" } else { kind };
        let _ = write!(
            line,
            "  {kind:<9} {:<16} session={}",
            row.level,
            short_session(&row.session)
        );
    }

    let mut separator = "  ";
    for (key, value) in &row.record {
        if !shown.contains(&key.as_str()) {
            let _ = write!(line, "{separator}{key}={}", value_text(value));
            separator = " ";
        }
    }
    line
}

/// `HH:MM:SS.mmm` (UTC, as sent) of a `YYYY-MM-DD HH:MM:SS[.ffffff]` timestamp: a session rarely
/// spans days, milliseconds are what tells close calls apart. Anything else is shown whole.
fn clock(timestamp: &str) -> String {
    let Some((_date, time)) = timestamp.split_once(' ') else {
        return timestamp.to_owned();
    };
    let (seconds, fraction) = time.split_once('.').unwrap_or((time, ""));
    let is_clock = seconds.len() == 8
        && seconds.bytes().enumerate().all(|(i, byte)| match i {
            2 | 5 => byte == b':',
            _ => byte.is_ascii_digit(),
        });
    if !is_clock || !fraction.bytes().all(|byte| byte.is_ascii_digit()) {
        return timestamp.to_owned();
    }
    let millis: String = fraction.chars().chain("000".chars()).take(3).collect();
    format!("{seconds}.{millis}")
}

fn short_session(session: &str) -> String {
    if session.is_empty() {
        "-".to_owned()
    } else if session.chars().count() > SESSION_MAX {
        let prefix: String = session.chars().take(SESSION_PREFIX).collect();
        format!("{prefix}…")
    } else {
        session.to_owned()
    }
}

/// A string bare when that is unambiguous (no space, quote or `=`), JSON-quoted otherwise;
/// anything else as compact JSON.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(text)
            if !text.is_empty()
                && !text
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '=') =>
        {
            text.clone()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn row(session: &str, level: &str, record: Value) -> Row {
        let Value::Object(record) = record else {
            panic!("a record is an object");
        };
        Row {
            timestamp: "2025-01-02 09:00:00.123456".to_owned(),
            session: session.to_owned(),
            level: level.to_owned(),
            raw: String::new(),
            record,
            datasource: "mcp_logs".to_owned(),
        }
    }

    #[test]
    fn a_call_shows_its_columns_then_the_keys_the_columns_do_not() {
        let ok = row(
            "3f1c0a9e-1b2c-4d5e-8f90-123456789abc",
            "info",
            json!({
                "appName": "my-server", "funcName": "add", "tool": "add", "version": "1.2.0",
                "message": "tool add: ok", "kind": "tool", "outcome": "ok", "duration_ms": 1.234,
                "client_name": "claude-ai", "client_version": "0.1",
            }),
        );
        assert_eq!(
            readable(&ok),
            "09:00:00.123  tool      add              ok            1.234 ms  session=3f1c0a9e…  \
             client=claude-ai/0.1  appName=my-server funcName=add version=1.2.0"
        );

        let failed = row(
            "s1",
            "error",
            json!({
                "appName": "my-server", "funcName": "read", "resource": "disk://c",
                "version": "1.2.0", "message": "resource disk://c: error: unknown resource",
                "kind": "resource", "outcome": "error", "duration_ms": 0.01,
                "error": "unknown resource",
            }),
        );
        assert_eq!(
            readable(&failed),
            "09:00:00.123  resource  disk://c         error         0.010 ms  session=s1  \
             error=\"unknown resource\"  appName=my-server funcName=read version=1.2.0"
        );
    }

    #[test]
    fn a_message_that_says_more_than_the_columns_is_kept() {
        let call = row(
            "",
            "info",
            json!({ "kind": "prompt", "prompt": "greet", "outcome": "cancelled",
                    "message": "something else" }),
        );
        assert_eq!(
            readable(&call),
            "09:00:00.123  prompt    greet            cancelled         - ms  session=-  \
             message=\"something else\""
        );
    }

    #[test]
    fn a_log_line_shows_level_message_and_target_first() {
        let log = row(
            "client-session-1",
            "warn",
            json!({
                "appName": "quickstart", "funcName": "weather", "version": "0.1.0",
                "message": "slow station", "kind": "log", "target": "quickstart",
                "handler_kind": "tool", "handler": "fetch-weather",
                "fields": { "city": "Ulaanbaatar" },
            }),
        );
        assert_eq!(
            readable(&log),
            "09:00:00.123  log       warn             slow station  target=quickstart  \
             session=client-s…  appName=quickstart fields={\"city\":\"Ulaanbaatar\"} \
             funcName=weather handler=fetch-weather handler_kind=tool version=0.1.0"
        );
    }

    #[test]
    fn a_row_of_another_kind_shows_every_key() {
        let other = row("s", "debug", json!({ "event": "x=1", "n": 2 }));
        assert_eq!(
            readable(&other),
            "09:00:00.123  ?         debug            session=s  event=\"x=1\" n=2"
        );
    }

    #[test]
    fn clock_keeps_milliseconds_and_pads_short_fractions() {
        assert_eq!(clock("2025-01-02 09:00:00"), "09:00:00.000");
        assert_eq!(clock("2025-01-02 09:00:00.5"), "09:00:00.500");
        assert_eq!(clock("2025-01-02 09:00:00.123456"), "09:00:00.123");
        assert_eq!(clock("not a timestamp"), "not a timestamp");
        assert_eq!(clock("2025-01-02 9:00"), "2025-01-02 9:00");
    }
}
