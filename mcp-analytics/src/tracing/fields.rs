//! An event's fields as a log row keeps them: the message apart, the others typed as JSON will
//! hold them, each text bounded; and, read on its own before them, a bridged `log` record's
//! target.

use std::fmt;

use tracing_core::Event;
use tracing_core::field::{Field, Visit};

use crate::rows::fields::{FieldValue, Fields, MAX_FIELD_LEN};
use crate::rows::log::MAX_MESSAGE_LEN;
use crate::rows::text::bounded;

/// The field where `tracing-log` puts a bridged `log` record's own target (the event's is `log`).
pub(super) const LOG_TARGET: &str = "log.target";

/// Fields `tracing-log` adds to a bridged `log` record: its target is the line's (read by
/// [`log_target`]), the others (where in the source it was logged) are left out, as `tracing`'s
/// own events have none.
const LOG_FIELDS: [&str; 4] = [LOG_TARGET, "log.module_path", "log.file", "log.line"];

/// What `keep` makes of the target of a `log` record that `tracing-log` bridged, or `None` if
/// `event` has no such field. Nothing else is read: the message is not formatted, so a line that
/// the filter drops costs no more than this visit.
pub(super) fn log_target<T>(event: &Event<'_>, keep: impl FnOnce(&str) -> T) -> Option<T> {
    struct Target<K, T> {
        keep: Option<K>,
        kept: Option<T>,
    }
    impl<K: FnOnce(&str) -> T, T> Visit for Target<K, T> {
        // `tracing-log` records the target as a `&str`.
        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == LOG_TARGET
                && let Some(keep) = self.keep.take()
            {
                self.kept = Some(keep(value));
            }
        }

        fn record_debug(&mut self, _: &Field, _: &dyn fmt::Debug) {}
    }
    let mut target = Target {
        keep: Some(keep),
        kept: None,
    };
    event.record(&mut target);
    target.kept
}

/// Visits an event's fields.
#[derive(Default)]
pub(super) struct Recorder {
    pub(super) message: Option<Box<str>>,
    pub(super) fields: Fields,
}

impl Recorder {
    fn text(&mut self, field: &Field, value: &dyn fmt::Display) {
        match field.name() {
            "message" => self.message = Some(bounded(value, MAX_MESSAGE_LEN)),
            _ => self.value(field, || FieldValue::Text(bounded(value, MAX_FIELD_LEN))),
        }
    }

    fn value(&mut self, field: &Field, value: impl FnOnce() -> FieldValue) {
        if !LOG_FIELDS.contains(&field.name()) {
            self.fields.0.push((field.name(), value()));
        }
    }
}

/// Shows a `Debug` value through `Display`, for [`bounded`].
struct DebugText<'a>(&'a dyn fmt::Debug);

impl fmt::Display for DebugText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

impl Visit for Recorder {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.text(field, &DebugText(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, &value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.text(field, &value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.value(field, || FieldValue::Signed(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.value(field, || FieldValue::Unsigned(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.value(field, || FieldValue::Float(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.value(field, || FieldValue::Bool(value));
    }
}
