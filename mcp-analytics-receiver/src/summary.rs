//! One line per handler of what a receiver accepted: the table `examples/quickstart.rs` and
//! `mcp-analytics-receiver --table` print, kept here so that both print the same thing.

use std::collections::BTreeMap;
use std::fmt;

use crate::{Row, percentile};

/// The kinds of row a handler call makes; log lines (`kind` `log`) and anything else are left
/// out of a [`Table`], as they have no outcome or latency to summarize.
const CALL_KINDS: [&str; 3] = ["tool", "prompt", "resource"];

/// Calls, errors, panics and latency percentiles per handler, sorted by kind then name.
///
/// Its [`Display`](fmt::Display) is a fixed-width text table, a header line then one line per
/// handler, without a trailing newline:
///
/// ```text
/// kind      name              calls  errors  panics    p50 ms    p95 ms
/// tool      add                  20       0       0     0.000     0.000
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    handlers: Vec<HandlerSummary>,
}

/// One line of a [`Table`].
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerSummary {
    /// `tool`, `prompt` or `resource`.
    pub kind: String,
    /// The handler's name: the record's value under the key named after its kind.
    pub name: String,
    /// How many calls arrived.
    pub calls: usize,
    /// How many of them have outcome `error`.
    pub errors: usize,
    /// How many of them have outcome `panic`.
    pub panics: usize,
    /// The median `duration_ms` (nearest rank, see [`percentile`]); NaN when no call has one.
    pub p50_ms: f64,
    /// The 95th percentile of `duration_ms`, likewise.
    pub p95_ms: f64,
}

impl Table {
    /// Summarizes the calls among `rows`, whatever their order; other rows are ignored.
    pub fn from_rows(rows: &[Row]) -> Table {
        let mut by_handler: BTreeMap<(&str, &str), Vec<&Row>> = BTreeMap::new();
        for row in rows {
            let kind = row.record_str("kind");
            if CALL_KINDS.contains(&kind) {
                let name = row.record_str(kind);
                by_handler.entry((kind, name)).or_default().push(row);
            }
        }
        let handlers = by_handler
            .into_iter()
            .map(|((kind, name), calls)| {
                let count = |outcome: &str| {
                    calls
                        .iter()
                        .filter(|row| row.record_str("outcome") == outcome)
                        .count()
                };
                let mut durations: Vec<f64> =
                    calls.iter().filter_map(|row| row.duration_ms()).collect();
                durations.sort_by(f64::total_cmp);
                HandlerSummary {
                    kind: kind.to_owned(),
                    name: name.to_owned(),
                    calls: calls.len(),
                    errors: count("error"),
                    panics: count("panic"),
                    p50_ms: percentile(&durations, 50.0),
                    p95_ms: percentile(&durations, 95.0),
                }
            })
            .collect();
        Table { handlers }
    }

    /// The table's lines, in display order.
    pub fn handlers(&self) -> &[HandlerSummary] {
        &self.handlers
    }

    /// Whether no call was among the rows.
    pub fn is_empty(&self) -> bool {
        self.handlers.is_empty()
    }
}

impl fmt::Display for Table {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{:<9} {:<16} {:>6} {:>7} {:>7} {:>9} {:>9}",
            "kind", "name", "calls", "errors", "panics", "p50 ms", "p95 ms"
        )?;
        for handler in &self.handlers {
            write!(
                formatter,
                "\n{:<9} {:<16} {:>6} {:>7} {:>7} {:>9.3} {:>9.3}",
                handler.kind,
                handler.name,
                handler.calls,
                handler.errors,
                handler.panics,
                handler.p50_ms,
                handler.p95_ms,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn row(record: Value) -> Row {
        let Value::Object(record) = record else {
            panic!("a record is an object");
        };
        Row {
            timestamp: "2025-01-02 03:04:05.678".to_owned(),
            session: "s1".to_owned(),
            level: "info".to_owned(),
            raw: String::new(),
            record,
            datasource: "mcp_logs".to_owned(),
        }
    }

    fn call(kind: &str, name: &str, outcome: &str, duration_ms: f64) -> Row {
        row(json!({ "kind": kind, kind: name, "outcome": outcome, "duration_ms": duration_ms }))
    }

    #[test]
    fn one_line_per_handler_sorted_by_kind_then_name() {
        let mut rows = vec![
            call("tool", "divide", "error", 3.0),
            call("resource", "mem://a", "ok", 0.5),
            row(json!({ "kind": "log", "message": "slow station", "target": "quickstart" })),
            row(json!({ "kind": "something-else", "outcome": "ok" })),
        ];
        // Twenty calls of 1 to 20 ms: nearest rank puts p50 at the 10th, p95 at the 19th.
        for (i, outcome) in (1..=20).zip(["ok", "ok", "ok", "panic"].into_iter().cycle()) {
            rows.push(call("tool", "add", outcome, f64::from(i)));
        }
        rows.push(call("tool", "divide", "ok", 1.0));

        let table = Table::from_rows(&rows);

        assert_eq!(
            table.to_string(),
            "kind      name              calls  errors  panics    p50 ms    p95 ms\n\
             resource  mem://a               1       0       0     0.500     0.500\n\
             tool      add                  20       0       5    10.000    19.000\n\
             tool      divide                2       1       0     1.000     3.000"
        );
    }

    #[test]
    fn a_call_without_duration_counts_but_has_no_percentile() {
        let table = Table::from_rows(&[row(json!({ "kind": "prompt", "prompt": "greeting" }))]);

        let [handler] = table.handlers() else {
            panic!("one handler expected: {table:?}");
        };
        assert_eq!((handler.calls, handler.errors, handler.panics), (1, 0, 0));
        assert!(handler.p50_ms.is_nan() && handler.p95_ms.is_nan());
    }

    #[test]
    fn no_calls_is_an_empty_table_with_its_header() {
        let table = Table::from_rows(&[row(json!({ "kind": "log", "message": "hi" }))]);

        assert!(table.is_empty());
        assert_eq!(
            table.to_string(),
            "kind      name              calls  errors  panics    p50 ms    p95 ms"
        );
    }
}
