//! The `before_send` hook: a function of yours that sees each row as an [`Event`] on the worker
//! thread, after it is encoded and before it is batched, and keeps, amends or drops it.
//!
//! The handler thread never runs it. Rows reach it redacted (what is captured on request is
//! made safe before it is queued), so the hook sees exactly what would be sent.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Map, Value};

use crate::diag;
use crate::stats::COUNTERS;

/// One row as a [`before_send`](crate::Builder::before_send) hook sees it: the datasource's
/// columns, with `record` parsed into its keys (the README's table lists them).
///
/// ```
/// use mcp_analytics::Event;
///
/// // No pings; and the `fields` key of no row.
/// fn amend(mut event: Event) -> Option<Event> {
///     if event.record.get("method").and_then(|method| method.as_str()) == Some("ping") {
///         return None;
///     }
///     event.record.remove("fields");
///     Some(event)
/// }
/// let _analytics = mcp_analytics::builder().before_send(amend).init();
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Event {
    /// When the row was recorded, UTC: `YYYY-MM-DD HH:MM:SS.mmm`.
    pub timestamp: String,
    /// The session column: empty for a request that belongs to no session.
    pub session: String,
    /// `info`, `error` (a failed call; the template counts these), or a log line's level.
    pub level: String,
    /// The row's `record`: `kind`, `tool`, `outcome`, `duration_ms`, `user`, `fields`, ...
    pub record: Map<String, Value>,
}

impl Event {
    /// The record's `kind`: `tool`, `prompt`, `resource`, `request`, `notification`,
    /// `session`, `task`, `log`, ...; empty if the hook removed it.
    ///
    /// ```
    /// # fn keep_calls(event: mcp_analytics::Event) -> Option<mcp_analytics::Event> {
    /// (event.kind() != "log").then_some(event)
    /// # }
    /// ```
    pub fn kind(&self) -> &str {
        self.record
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// Reads an encoded line back.
    fn parse(line: &[u8]) -> Option<Self> {
        let Value::Object(mut columns) = serde_json::from_slice(line).ok()? else {
            return None;
        };
        let mut column = |name: &str| match columns.remove(name) {
            Some(Value::String(text)) => Some(text),
            _ => None,
        };
        let (timestamp, session, level) =
            (column("timestamp")?, column("session")?, column("level")?);
        let record = serde_json::from_str(&column("record")?).ok()?;
        Some(Self {
            timestamp,
            session,
            level,
            record,
        })
    }

    /// Writes the event as a line, in the columns' order, with its `\n`.
    fn write(&self, out: &mut Vec<u8>) {
        let record = Value::Object(self.record.clone()).to_string();
        let line = serde_json::json!({
            "timestamp": self.timestamp,
            "session": self.session,
            "level": self.level,
            "record": record,
        });
        // Serializing a `Value` into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &line);
        out.push(b'\n');
    }
}

/// The user's hook, shared by clones of the builder; only the worker calls it.
type Hook = dyn FnMut(Event) -> Option<Event> + Send;

#[derive(Clone)]
pub(crate) struct BeforeSend(Arc<Mutex<Box<Hook>>>);

static HOOK_PANICKED: diag::Once = diag::Once::new();

impl BeforeSend {
    pub(crate) fn new(hook: impl FnMut(Event) -> Option<Event> + Send + 'static) -> Self {
        Self(Arc::new(Mutex::new(Box::new(hook))))
    }

    /// Runs the hook on the line at `out[start..]`: keeps it, amends it in place, or removes
    /// it. Returns whether a row is left. A dropped row is counted as `filtered`; so is one
    /// whose hook panicked (said once on stderr): the panic does not reach the worker.
    pub(crate) fn apply(&self, out: &mut Vec<u8>, start: usize) -> bool {
        let Some(event) = Event::parse(&out[start..]) else {
            // Our own line always parses back; keep it as it is if it somehow did not.
            return true;
        };
        let mut hook = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = match catch_unwind(AssertUnwindSafe(|| hook(event))) {
            Ok(kept) => kept,
            Err(_) => {
                HOOK_PANICKED.report(format_args!(
                    "the before_send hook panicked: the event it was given is dropped"
                ));
                None
            }
        };
        out.truncate(start);
        match kept {
            Some(event) => {
                event.write(out);
                true
            }
            None => {
                COUNTERS.filtered.add(1);
                false
            }
        }
    }
}

impl fmt::Debug for BeforeSend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BeforeSend(..)")
    }
}
