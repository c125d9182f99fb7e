//! The body format and the `mcp_logs` datasource schema.
//!
//! Two levels of strictness, like Tinybird: a body that is not NDJSON of objects rejects the whole
//! request (nothing is accepted), while an object that does not fit the schema is quarantined on
//! its own and the rest of the batch is accepted.

use serde_json::{Map, Value};

use crate::Row;

/// The outcome of a well-formed NDJSON body.
#[derive(Debug)]
pub(crate) struct Batch {
    /// The lines that fit the schema, in body order.
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

/// Splits `ndjson` into lines and checks each against the `mcp_logs` schema.
///
/// A single trailing newline is allowed (and expected); any other empty line is an error, and so
/// is an empty body, since a client has no reason to send one.
pub(crate) fn parse_batch(datasource: &str, ndjson: &[u8]) -> Result<Batch, BadLine> {
    let body = ndjson.strip_suffix(b"\n").unwrap_or(ndjson);
    if body.is_empty() {
        return Err(BadLine {
            line: 1,
            reason: "empty body".to_owned(),
        });
    }

    let mut rows = Vec::new();
    let mut quarantined = Vec::new();
    for (index, bytes) in body.split(|&byte| byte == b'\n').enumerate() {
        let line = index + 1;
        let bad_line = |reason: String| BadLine { line, reason };
        let raw =
            std::str::from_utf8(bytes).map_err(|error| bad_line(format!("not UTF-8: {error}")))?;
        let object = match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(object)) => object,
            Ok(_) => return Err(bad_line("not a JSON object".to_owned())),
            Err(error) => return Err(bad_line(format!("invalid JSON: {error}"))),
        };
        match row_from_object(&object, raw, datasource) {
            Ok(row) => rows.push(row),
            Err(reason) => quarantined.push(format!("line {line}: {reason}")),
        }
    }

    Ok(Batch {
        rows,
        quarantined: quarantined.len(),
        quarantine_detail: (!quarantined.is_empty()).then(|| quarantined.join("; ")),
    })
}

/// Maps one object onto the `mcp_logs` columns, or says why it would be quarantined.
///
/// Unknown keys are ignored, as Tinybird's JSONPath-based ingestion does.
fn row_from_object(
    object: &Map<String, Value>,
    raw: &str,
    datasource: &str,
) -> Result<Row, String> {
    let timestamp = string_field(object, "timestamp")?;
    check_timestamp(timestamp)?;
    let record_text = string_field(object, "record")?;
    let record = serde_json::from_str::<Map<String, Value>>(record_text)
        .map_err(|error| format!("`record` is not a string holding a JSON object: {error}"))?;
    Ok(Row {
        timestamp: timestamp.to_owned(),
        session: string_field(object, "session")?.to_owned(),
        level: string_field(object, "level")?.to_owned(),
        record,
        raw: raw.to_owned(),
        datasource: datasource.to_owned(),
    })
}

fn string_field<'a>(object: &'a Map<String, Value>, key: &str) -> Result<&'a str, String> {
    match object.get(key) {
        Some(Value::String(value)) => Ok(value),
        Some(other) => Err(format!("`{key}` is not a string: {other}")),
        None => Err(format!("missing `{key}`")),
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
        let batch = parse_batch("mcp_logs", body.as_bytes()).expect("well-formed NDJSON");
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
            let error = parse_batch("mcp_logs", body.as_bytes()).expect_err(&body);
            assert_eq!(error.line, line, "{body:?}: {}", error.reason);
        }
        assert!(parse_batch("mcp_logs", b"{}\n\xff\n").is_err_and(|error| error.line == 2));
    }
}
