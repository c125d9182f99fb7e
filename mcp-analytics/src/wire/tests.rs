//! The wire format, line by line: what each row kind writes.

use std::borrow::Cow;

use super::*;
use crate::clock;
use crate::rows::call::{Callsite, Details};
use crate::rows::fields::{FieldValue, Resolved};
use crate::rows::log::{Handler, Level};
use crate::rows::request::{Client, Origin, RequestId, TraceParent, Transport};
use std::sync::Arc;

static SITE: Callsite = Callsite::new(Kind::Tool, "add", "add_numbers", "my-server", "1.2.3");

/// A call row of a tool `add`, failed with `error` when there is one.
pub(crate) fn call(outcome: Outcome, error: Option<&str>) -> Row {
    Row::Call(CallRow {
        callsite: &SITE,
        session: None,
        details: error.map(|error| {
            Box::new(Details {
                error: Some(error.into()),
                ..Details::default()
            })
        }),
        started: clock::ticks(),
        duration_ns: 1_234_000,
        outcome,
    })
}

pub(crate) fn encode_line(row: &Row) -> Vec<u8> {
    let mut out = Vec::new();
    Encoder::default().encode(row, &WallClock::now(), &mut out);
    out
}

/// The line's columns, and its `record` parsed.
fn encode(row: &Row) -> (serde_json::Value, serde_json::Value) {
    let out = encode_line(row);
    assert_eq!(out.last(), Some(&b'\n'));
    let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let record = serde_json::from_str(line["record"].as_str().unwrap()).unwrap();
    (line, record)
}

#[test]
fn a_line_has_the_template_columns_and_record_keys() {
    let (line, record) = encode(&call(Outcome::Error, Some("bad \"input\"\n")));
    assert_eq!(line["level"], "error");
    assert_eq!(line["session"], process_session_id().as_str());
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
    let (_, record) = encode(&call(Outcome::Ok, None));
    assert_eq!(
        record.get("error"),
        None,
        "no error text when the call succeeded"
    );
    assert_eq!(record["message"], "tool add: ok");
}

#[test]
fn the_record_column_holds_the_record_escaped_once() {
    let tricky = "quote \" backslash \\ newline \n tab \t nul \u{0} é ✓ \u{2028}";
    let (_, record) = encode(&call(Outcome::Error, Some(tricky)));
    assert_eq!(record["error"], tricky);
}

#[test]
fn a_log_line_names_its_handler_without_counting_as_one() {
    let line = Row::Log(Box::new(LogRow {
        level: Level::Warn,
        message: "slow \"upstream\"".into(),
        target: Cow::Borrowed("my_server::weather"),
        span: None,
        fields: Fields(vec![
            ("attempt", FieldValue::Unsigned(2)),
            ("ratio", FieldValue::Float(f64::NAN)),
            ("city", FieldValue::Text("Zürich".into())),
        ]),
        app_name: "my-server",
        app_version: "1.2.3",
        handler: Some(Handler {
            callsite: &SITE,
            name: Some("add-renamed".into()),
        }),
        session: Some(SessionId::from("s-1")),
        origin: Some(Arc::new(Origin {
            client: Some(Arc::new(Client {
                name: "claude-code".into(),
                version: "2.1.0".into(),
            })),
            transport: Some(Transport::Tcp),
            request_id: Some(RequestId::Number(7)),
            ..Origin::default()
        })),
        logged: clock::ticks(),
    }));
    let (line, record) = encode(&line);
    assert_eq!(line["level"], "warn");
    assert_eq!(line["session"], "s-1");
    assert_eq!(record["kind"], "log");
    assert_eq!(
        record["funcName"], "add_numbers",
        "the handler's function, as on its call's row"
    );
    assert_eq!(record["handler_kind"], "tool");
    assert_eq!(record["handler"], "add-renamed");
    assert_eq!(record.get("tool"), None, "a log line is no tool call");
    assert_eq!(record["client_name"], "claude-code", "the request's client");
    assert_eq!(record["transport"], "tcp");
    assert_eq!(record["request_id"], "7");
    assert_eq!(record.get("protocol_version"), None, "unknown: left out");
    assert_eq!(record["message"], "slow \"upstream\"");
    assert_eq!(
        record["fields"],
        serde_json::json!({"attempt": 2, "ratio": null, "city": "Zürich"})
    );
}

#[test]
fn a_call_carries_its_user_fields_model_and_trace() {
    let text = |text: &str| FieldValue::Text(text.into());
    let origin = Origin {
        model: Some("claude-opus-4-8".into()),
        trace: Some(TraceParent {
            trace_id: 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
            span_id: 0xf0_67aa_0ba9_02b7,
        }),
        user: Some("request-user".into()),
        fields: Fields(vec![("tenant", text("request")), ("region", text("us"))]),
        ..Origin::default()
    };
    let scoped = Resolved {
        user: Some("scope-user".into()),
        fields: Fields(vec![
            ("tenant", text("scope")),
            ("depth", FieldValue::Signed(2)),
        ]),
    };
    let mut details = Details {
        origin: Some(Arc::new(origin)),
        dimensions: Some(Arc::new(scoped)),
        fields: Fields(vec![("depth", FieldValue::Bool(true))]),
        ..Details::default()
    };
    let row = |details: &Details| {
        Row::Call(CallRow {
            callsite: &SITE,
            session: None,
            details: Some(Box::new(Details {
                origin: details.origin.clone(),
                dimensions: details.dimensions.clone(),
                user: details.user.clone(),
                fields: details.fields.clone(),
                ..Details::default()
            })),
            started: clock::ticks(),
            duration_ns: 1,
            outcome: Outcome::Ok,
        })
    };
    let (_, record) = encode(&row(&details));
    assert_eq!(record["model"], "claude-opus-4-8");
    assert_eq!(record["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(
        record["span_id"], "00f067aa0ba902b7",
        "16 digits, zeros kept"
    );
    assert_eq!(
        record["user"], "scope-user",
        "the scope's user before the request's"
    );
    assert_eq!(
        record["fields"],
        serde_json::json!({"tenant": "scope", "region": "us", "depth": true}),
        "request, then scope, then the call's own"
    );
    details.user = Some("call-user".into());
    let (_, record) = encode(&row(&details));
    assert_eq!(record["user"], "call-user", "the call's own user first");
}

#[test]
fn a_log_line_outside_handlers_is_named_after_its_span_else_its_target() {
    let line = |span| {
        Row::Log(Box::new(LogRow {
            level: Level::Info,
            message: "refreshed".into(),
            target: Cow::Borrowed("my_server::cache"),
            span,
            fields: Fields::default(),
            app_name: "my-server",
            app_version: "1.2.3",
            handler: None,
            session: None,
            origin: None,
            logged: clock::ticks(),
        }))
    };
    let (_, record) = encode(&line(Some("refresh")));
    assert_eq!(record["funcName"], "refresh");
    let (_, record) = encode(&line(None));
    assert_eq!(record["funcName"], "my_server::cache");
}
