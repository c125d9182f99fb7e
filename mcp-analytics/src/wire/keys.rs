//! The parts of a `record` that several row kinds share, or that take more than a field:
//! who sent the request, the links of a call spanning requests, fields.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use super::duration_ms;
use crate::rows::call::Link;
use crate::rows::fields::{FIELDS_CUT_KEY, FieldValue, Fields, MAX_FIELDS};
use crate::rows::request::Origin;

/// The keys that tie the rows of one call together, when it spans requests.
pub(super) struct LinkRecord<'a>(pub(super) &'a Link);

impl Serialize for LinkRecord<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let link = self.0;
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in [
            ("continuation", &link.continuation),
            ("resumes", &link.resumes),
            ("task_id", &link.task_id),
        ] {
            if let Some(value) = value {
                map.serialize_entry(key, value)?;
            }
        }
        if let Some(total) = link.total_duration_ns {
            map.serialize_entry("total_duration_ms", &duration_ms(total))?;
        }
        map.end()
    }
}

/// Serializes a value as the string its `Display` writes.
pub(super) struct AsText<T>(pub(super) T);

impl<T: std::fmt::Display> Serialize for AsText<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// Who sent a request: `client_name`, `client_version`, `protocol_version`, `transport`,
/// `request_id`, `model`, `trace_id` and `span_id`, and what the agent said of it, `intent` and
/// `conversation`, each when known. The request's user and fields are the call's to write,
/// merged with its own.
pub(super) struct OriginRecord<'a>(pub(super) &'a Origin);

impl Serialize for OriginRecord<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let origin = self.0;
        let mut map = serializer.serialize_map(None)?;
        if let Some(client) = &origin.client {
            map.serialize_entry("client_name", client.name())?;
            map.serialize_entry("client_version", client.version())?;
        }
        if let Some(protocol) = &origin.protocol_version {
            map.serialize_entry("protocol_version", protocol)?;
        }
        if let Some(transport) = origin.transport {
            map.serialize_entry("transport", transport.as_str())?;
        }
        if let Some(id) = &origin.request_id {
            map.serialize_entry("request_id", &AsText(id))?;
        }
        if let Some(model) = &origin.model {
            map.serialize_entry("model", model)?;
        }
        if let Some(trace) = &origin.trace {
            // As OpenTelemetry writes them: lower-case hex, 32 and 16 digits.
            map.serialize_entry("trace_id", &AsText(format_args!("{:032x}", trace.trace_id)))?;
            map.serialize_entry("span_id", &AsText(format_args!("{:016x}", trace.span_id)))?;
        }
        if let Some(intent) = &origin.intent {
            map.serialize_entry("intent", intent)?;
        }
        if let Some(conversation) = &origin.conversation {
            map.serialize_entry("conversation", &**conversation)?;
        }
        map.end()
    }
}

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl Serialize for FieldValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            FieldValue::Text(text) => serializer.serialize_str(text),
            FieldValue::Signed(n) => serializer.serialize_i64(*n),
            FieldValue::Unsigned(n) => serializer.serialize_u64(*n),
            // JSON has no NaN or infinity: serde_json writes `null` for them.
            FieldValue::Float(x) => serializer.serialize_f64(*x),
            FieldValue::Bool(b) => serializer.serialize_bool(*b),
        }
    }
}

/// A call's `fields`: its sources merged, least specific first, a later field replacing an
/// earlier one of the same name. At most [`MAX_FIELDS`] are written; how many more there were
/// is written under [`FIELDS_CUT_KEY`].
pub(super) struct CallFields<'a>(pub(super) [Option<&'a Fields>; 3]);

impl CallFields<'_> {
    /// Each distinct field, with the value of its most specific source, in the order first
    /// seen.
    fn merged(&self) -> Vec<(&'static str, &FieldValue)> {
        let mut merged: Vec<(&'static str, &FieldValue)> = Vec::new();
        for (name, value) in self.0.iter().flatten().flat_map(|fields| &fields.0) {
            match merged.iter_mut().find(|(known, _)| known == name) {
                Some(slot) => slot.1 = value,
                None => merged.push((name, value)),
            }
        }
        merged
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.iter().flatten().all(|fields| fields.is_empty())
    }
}

impl Serialize for CallFields<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        let mut left_out = 0_usize;
        for (at, (name, value)) in self.merged().into_iter().enumerate() {
            if at < MAX_FIELDS {
                map.serialize_entry(name, value)?;
            } else {
                left_out += 1;
            }
        }
        if left_out > 0 {
            map.serialize_entry(FIELDS_CUT_KEY, &left_out)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::clock;
    use crate::rows::Row;
    use crate::rows::call::{CallRow, Callsite, Details, Kind, Outcome};
    use crate::rows::request::Origin;
    use crate::rows::session::SessionId;
    use crate::wire::tests::{call, encode_line};

    /// The line's columns, and its `record` parsed.
    fn encode(row: &Row) -> (serde_json::Value, serde_json::Value) {
        let line: serde_json::Value = serde_json::from_slice(&encode_line(row)).unwrap();
        let record = serde_json::from_str(line["record"].as_str().unwrap()).unwrap();
        (line, record)
    }

    #[test]
    fn a_missing_capability_report_names_no_tool_and_carries_what_the_agent_said() {
        static REPORT: Callsite = Callsite::new(
            Kind::MissingCapability,
            "",
            "call_tool",
            "my-server",
            "1.2.3",
        );
        let origin = Origin {
            intent: Some("a tool to convert currencies".into()),
            conversation: Some("0190b0a8-0000-7000-8000-000000000000".into()),
            ..Origin::default()
        };
        let row = Row::Call(CallRow {
            callsite: &REPORT,
            session: Some(SessionId::from("0190b0a8-0000-7000-8000-000000000000")),
            details: Some(Box::new(Details {
                name: Some("get_more_tools".into()),
                origin: Some(Arc::new(origin)),
                ..Details::default()
            })),
            started: clock::ticks(),
            duration_ns: 1_000,
            outcome: Outcome::Ok,
        });
        let (line, record) = encode(&row);
        assert_eq!(record["kind"], "missing_capability");
        assert_eq!(record["method"], "tools/call");
        assert_eq!(record["name"], "get_more_tools");
        assert_eq!(record.get("tool"), None, "not a call of a tool");
        assert_eq!(record["intent"], "a tool to convert currencies");
        assert_eq!(
            record["conversation"],
            "0190b0a8-0000-7000-8000-000000000000"
        );
        assert_eq!(record["message"], "missing_capability get_more_tools: ok");
        assert_eq!(line["level"], "info");
        let (_, plain) = encode(&call(Outcome::Ok, None));
        for key in ["intent", "conversation"] {
            assert_eq!(plain.get(key), None, "left out when not said");
        }
    }
}
