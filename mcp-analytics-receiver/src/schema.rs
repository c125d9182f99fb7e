//! The body format and the `mcp_logs` datasource schema.
//!
//! Two levels of strictness, like Tinybird: a body that is not NDJSON of objects rejects the whole
//! request (nothing is accepted), while an object that does not fit the schema is quarantined on
//! its own and the rest of the batch is accepted.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::Row;

/// The outcome of a well-formed NDJSON body.
#[derive(Debug)]
pub(crate) struct Batch {
    /// How many lines fit the schema.
    pub(crate) accepted: usize,
    /// The lines that fit the schema, in body order; empty unless rows are kept.
    pub(crate) rows: Vec<Row>,
    /// How many lines were quarantined.
    pub(crate) quarantined: usize,
    /// Why each quarantined line was quarantined (`line N: reason`), joined by `; `.
    pub(crate) quarantine_detail: Option<String>,
}

/// Why a body is not NDJSON of objects; rejects the whole request.
#[derive(Debug)]
pub(crate) struct BadLine {
    /// 1-based line number.
    pub(crate) line: usize,
    pub(crate) reason: String,
}

/// Splits `ndjson` into lines and checks each against the `mcp_logs` schema; builds a [`Row`]
/// of each line that fits when `keep_rows`, and only counts them otherwise.
///
/// A single trailing newline is allowed (and expected); any other empty line is an error, and so
/// is an empty body, since a client has no reason to send one.
pub(crate) fn parse_batch(
    datasource: &str,
    ndjson: &[u8],
    keep_rows: bool,
) -> Result<Batch, BadLine> {
    let body = ndjson.strip_suffix(b"\n").unwrap_or(ndjson);
    if body.is_empty() {
        return Err(BadLine {
            line: 1,
            reason: "empty body".to_owned(),
        });
    }

    let mut accepted = 0;
    let mut rows = Vec::new();
    let mut quarantined = Vec::new();
    for (index, bytes) in body.split(|&byte| byte == b'\n').enumerate() {
        let line = index + 1;
        let bad_line = |reason: String| BadLine { line, reason };
        // serde_json checks UTF-8 itself (inside strings; anything else must be ASCII JSON).
        let columns = serde_json::from_slice::<Columns<'_>>(bytes).map_err(|error| {
            bad_line(if error.is_data() {
                "not a JSON object".to_owned()
            } else {
                format!("invalid JSON: {error}")
            })
        })?;
        match columns.check(keep_rows) {
            Ok(checked) => {
                accepted += 1;
                if let Some(row) = checked {
                    // Valid JSON text is valid UTF-8.
                    let raw = String::from_utf8_lossy(bytes);
                    rows.push(row.finish(&raw, datasource));
                }
            }
            Err(reason) => quarantined.push(format!("line {line}: {reason}")),
        }
    }

    Ok(Batch {
        accepted,
        rows,
        quarantined: quarantined.len(),
        quarantine_detail: (!quarantined.is_empty()).then(|| quarantined.join("; ")),
    })
}

/// Counts the lines of `ndjson` without parsing them: the light mode
/// ([`crate::ReceiverBuilder::count_only`]). Keeps the framing rules of [`parse_batch`] (one
/// trailing newline allowed, no empty line, no empty body), which cost one pass over the bytes,
/// and leaves out the JSON and the schema, which cost a parse of every line.
pub(crate) fn count_lines(ndjson: &[u8]) -> Result<Batch, BadLine> {
    let body = ndjson.strip_suffix(b"\n").unwrap_or(ndjson);
    let mut lines = 0;
    for (index, bytes) in body.split(|&byte| byte == b'\n').enumerate() {
        if bytes.is_empty() {
            return Err(BadLine {
                line: index + 1,
                reason: if body.is_empty() {
                    "empty body".to_owned()
                } else {
                    "empty line".to_owned()
                },
            });
        }
        lines += 1;
    }
    Ok(Batch {
        accepted: lines,
        rows: Vec::new(),
        quarantined: 0,
        quarantine_detail: None,
    })
}

/// The `mcp_logs` columns of one line, borrowed from it and not yet checked. Other keys are
/// skipped (their values still parsed, so the line must be valid JSON throughout), as
/// Tinybird's JSONPath-based ingestion ignores them. As with any JSON object, a repeated key's
/// last value wins.
#[derive(Default)]
struct Columns<'a> {
    timestamp: Option<&'a RawValue>,
    session: Option<&'a RawValue>,
    level: Option<&'a RawValue>,
    record: Option<&'a RawValue>,
}

/// A line's columns checked against the schema, for building its [`Row`].
struct Checked<'a> {
    timestamp: Cow<'a, str>,
    session: Cow<'a, str>,
    level: Cow<'a, str>,
    record: Map<String, Value>,
}

impl<'a> Columns<'a> {
    /// Checks the columns against the schema, or says why the line would be quarantined. Parses
    /// `record` into a map only when the row is kept: otherwise only checks that it holds a JSON
    /// object, which costs no allocation per key.
    fn check(&self, keep_rows: bool) -> Result<Option<Checked<'a>>, String> {
        let timestamp = string_column("timestamp", self.timestamp)?;
        check_timestamp(&timestamp)?;
        let record_text = string_column("record", self.record)?;
        let record_error =
            |error| format!("`record` is not a string holding a JSON object: {error}");
        let record = if keep_rows {
            Some(serde_json::from_str::<Map<String, Value>>(&record_text).map_err(record_error)?)
        } else {
            serde_json::from_str::<AnyObject>(&record_text).map_err(record_error)?;
            None
        };
        let session = string_column("session", self.session)?;
        let level = string_column("level", self.level)?;
        Ok(record.map(|record| Checked {
            timestamp,
            session,
            level,
            record,
        }))
    }
}

impl Checked<'_> {
    fn finish(self, raw: &str, datasource: &str) -> Row {
        Row {
            timestamp: self.timestamp.into_owned(),
            session: self.session.into_owned(),
            level: self.level.into_owned(),
            record: self.record,
            raw: raw.to_owned(),
            datasource: datasource.to_owned(),
        }
    }
}

fn string_column<'a>(key: &str, value: Option<&'a RawValue>) -> Result<Cow<'a, str>, String> {
    let value = value.ok_or_else(|| format!("missing `{key}`"))?;
    serde_json::from_str(value.get())
        .map_err(|_| format!("`{key}` is not a string: {}", value.get()))
}

impl<'de> Deserialize<'de> for Columns<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ColumnsVisitor;

        impl<'de> Visitor<'de> for ColumnsVisitor {
            type Value = Columns<'de>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Columns<'de>, A::Error> {
                let mut columns = Columns::default();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    let column = match &*key {
                        "timestamp" => &mut columns.timestamp,
                        "session" => &mut columns.session,
                        "level" => &mut columns.level,
                        "record" => &mut columns.record,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *column = Some(map.next_value()?);
                }
                Ok(columns)
            }
        }

        deserializer.deserialize_map(ColumnsVisitor)
    }
}

/// Any JSON object, checked and discarded.
struct AnyObject;

impl<'de> Deserialize<'de> for AnyObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AnyObjectVisitor;

        impl<'de> Visitor<'de> for AnyObjectVisitor {
            type Value = AnyObject;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyObject, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(AnyObject)
            }
        }

        deserializer.deserialize_map(AnyObjectVisitor)
    }
}

/// The years a ClickHouse `DateTime` column (the template's `timestamp` type) can hold; anything
/// else would be clamped or mangled on the real service, so it must surface here.
const YEARS: std::ops::RangeInclusive<u32> = 1970..=2105;

/// Checks `YYYY-MM-DD HH:MM:SS` optionally followed by `.` and 1 to 6 digits, with every field in
/// range (including the day against the month's length in that year).
pub(crate) fn check_timestamp(timestamp: &str) -> Result<(), String> {
    const LAYOUT: &str = "is not `YYYY-MM-DD HH:MM:SS[.ffffff]`";
    let invalid = |why: &str| Err(format!("`timestamp` {timestamp:?} {why}"));
    let Some((date_time, fraction)) = timestamp.as_bytes().split_at_checked(19) else {
        return invalid(LAYOUT);
    };
    let separators_ok = [(4, b'-'), (7, b'-'), (10, b' '), (13, b':'), (16, b':')]
        .iter()
        .all(|&(at, separator)| date_time[at] == separator);
    let field = |at: usize, len: usize| digits(&date_time[at..at + len]);
    let (true, Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        separators_ok,
        field(0, 4),
        field(5, 2),
        field(8, 2),
        field(11, 2),
        field(14, 2),
        field(17, 2),
    ) else {
        return invalid(LAYOUT);
    };
    let fraction_ok = match fraction {
        [] => true,
        [b'.', decimals @ ..] => (1..=6).contains(&decimals.len()) && digits(decimals).is_some(),
        _ => false,
    };
    if !fraction_ok {
        return invalid("has a fraction of seconds that is not `.` and 1 to 6 digits");
    }
    if !YEARS.contains(&year) {
        return invalid("has a year outside 1970..=2105 (ClickHouse DateTime)");
    }
    if !(1..=12).contains(&month) {
        return invalid("has a month out of range");
    }
    if !(1..=days_in_month(year, month)).contains(&day) {
        return invalid("has a day out of range for its month");
    }
    // ClickHouse has no leap seconds, so 60 is out of range too.
    if hour > 23 || minute > 59 || second > 59 {
        return invalid("has a time of day out of range");
    }
    Ok(())
}

/// The value of an all-ASCII-digits slice; `None` if empty or any byte is not a digit.
fn digits(bytes: &[u8]) -> Option<u32> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // At most 6 digits reach here, so this cannot overflow.
    Some(
        bytes
            .iter()
            .fold(0, |value, &digit| value * 10 + u32::from(digit - b'0')),
    )
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_well_formed_timestamps() {
        for timestamp in [
            "2025-01-31 23:59:59",
            "2025-06-15 12:00:00.1",
            "2025-06-15 12:00:00.123456",
            "2024-02-29 00:00:00",
            "2000-02-29 00:00:00",
            "1970-01-01 00:00:00",
        ] {
            assert_eq!(check_timestamp(timestamp), Ok(()), "{timestamp}");
        }
    }

    #[test]
    fn rejects_malformed_or_out_of_range_timestamps() {
        for timestamp in [
            "",
            "2025-01-31",
            "2025-01-31T23:59:59",
            "2025-01-31 23:59:59Z",
            "2025-01-31 23:59:59.",
            "2025-01-31 23:59:59.1234567",
            "2025-01-31 23:59:59,123",
            "2025-1-31 23:59:59",
            "2025-01-31 23:59:5x",
            "+025-01-31 23:59:59",
            "2025-13-01 00:00:00",
            "2025-00-01 00:00:00",
            "2025-04-31 00:00:00",
            "2025-02-29 00:00:00",
            "1900-02-29 00:00:00",
            "2025-01-00 00:00:00",
            "2025-01-01 24:00:00",
            "2025-01-01 00:60:00",
            "2025-01-01 00:00:60",
            "1969-12-31 23:59:59",
            "2106-01-01 00:00:00",
            "2025-01-01 00:00:00.12é",
        ] {
            assert!(
                check_timestamp(timestamp).is_err(),
                "{timestamp:?} accepted"
            );
        }
    }

    #[test]
    fn quarantines_schema_violations_but_keeps_the_rest() {
        let body = concat!(
            r#"{"timestamp":"2025-01-01 00:00:00","session":"s","level":"info","record":"{\"a\":1}"}"#,
            "\n",
            r#"{"timestamp":"2025-01-01 00:00:00","session":"s","level":"info","record":"[1]"}"#,
            "\n",
            r#"{"timestamp":"2025-01-01 00:00:00","session":7,"level":"info","record":"{}"}"#,
            "\n",
            r#"{"session":"s","level":"info","record":"{}"}"#,
            "\n",
        );
        let batch = parse_batch("mcp_logs", body.as_bytes(), true).expect("well-formed NDJSON");
        assert_eq!(batch.rows.len(), 1);
        assert_eq!(batch.quarantined, 3);
        let detail = batch.quarantine_detail.expect("quarantine reasons");
        assert!(detail.contains("line 2: `record`"), "{detail}");
        assert!(
            detail.contains("line 3: `session` is not a string"),
            "{detail}"
        );
        assert!(detail.contains("line 4: missing `timestamp`"), "{detail}");
    }

    #[test]
    fn rejects_bodies_that_are_not_ndjson_of_objects() {
        let valid =
            r#"{"timestamp":"2025-01-01 00:00:00","session":"s","level":"l","record":"{}"}"#;
        for (body, line) in [
            (String::new(), 1),
            ("\n".to_owned(), 1),
            (format!("{valid}\n\n{valid}\n"), 2),
            (format!("{valid}\n{valid}\n\n"), 3),
            (format!("{valid}\n[1, 2]\n"), 2),
            (format!("{valid}\n{valid}\n{{\"unterminated\": \n"), 3),
        ] {
            let error = parse_batch("mcp_logs", body.as_bytes(), true).expect_err(&body);
            assert_eq!(error.line, line, "{body:?}: {}", error.reason);
        }
        assert!(parse_batch("mcp_logs", b"{}\n\xff\n", true).is_err_and(|error| error.line == 2));
    }
}
