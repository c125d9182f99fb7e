//! An event's fields as a log row keeps them: the message apart, the others typed as JSON will
//! hold them, each text bounded.

use std::fmt;

use tracing_core::field::{Field, Visit};

use crate::rows::fields::{FieldValue, Fields, MAX_FIELD_LEN};
use crate::rows::log::MAX_MESSAGE_LEN;
use crate::rows::text::bounded;

/// Fields `tracing-log` adds to a bridged `log` record: its target is kept as the line's, the
/// others (where in the source it was logged) are left out, as `tracing`'s own events have none.
const LOG_FIELDS: [&str; 4] = ["log.target", "log.module_path", "log.file", "log.line"];

/// Visits an event's fields.
#[derive(Default)]
pub(super) struct Recorder {
    pub(super) message: Option<Box<str>>,
    /// The target of a bridged `log` record.
    pub(super) log_target: Option<String>,
    pub(super) fields: Fields,
}

impl Recorder {
    fn text(&mut self, field: &Field, value: &dyn fmt::Display) {
        match field.name() {
            "message" => self.message = Some(bounded(value, MAX_MESSAGE_LEN)),
            "log.target" => self.log_target = Some(value.to_string()),
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
