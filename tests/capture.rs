//! What is captured on request, end to end through the loopback Events API (the strict
//! receiver): arguments and results with `capture(..)`, each redaction layer on a corpus of
//! secrets and personal data (`mcp-analytics/src/redact/corpus.json`), none of which may reach
//! the wire (every delivered line is scanned), the user's hook, the size bound, and panic
//! messages, which are redacted too.

mod common;

use std::sync::LazyLock;

use mcp_analytics::mcp_tool;
use mcp_analytics_receiver::{Receiver, Row};
use serde_json::{Value, json};

use common::Scenario;

/// The corpus the redaction pipeline's own tests use.
static CORPUS: LazyLock<Value> = LazyLock::new(|| {
    serde_json::from_str(include_str!("../mcp-analytics/src/redact/corpus.json"))
        .expect("the corpus is JSON")
});

/// Each secret sample: the text as it appears, and the part that must never be sent.
fn secrets() -> Vec<(String, String, String)> {
    CORPUS["secrets"]
        .as_array()
        .expect("secrets")
        .iter()
        .map(|sample| {
            let text = sample["text"].as_str().expect("text").to_owned();
            let secret = sample["secret"]
                .as_str()
                .map_or_else(|| text.clone(), str::to_owned);
            let kind = sample["kind"].as_str().expect("kind").to_owned();
            (kind, text, secret)
        })
        .collect()
}

fn strings(key: &str) -> Vec<String> {
    CORPUS[key]
        .as_array()
        .expect("a list")
        .iter()
        .map(|value| value.as_str().expect("text").to_owned())
        .collect()
}

#[mcp_tool(capture(arguments, result))]
fn echo(request: Value, note: String) -> Result<Value, String> {
    let _ = note;
    Ok(request)
}

/// The rows of `tool` the receiver accepted, after checking that every request was accepted
/// whole (nothing quarantined: a quarantined line would escape the scan).
fn delivered(scenario: &Scenario, tool: &str) -> Vec<Row> {
    scenario.flush();
    for request in scenario.receiver.requests() {
        assert!(
            request.status == 202 && request.quarantined == 0,
            "accepted whole: {request:?}"
        );
    }
    scenario
        .receiver
        .rows()
        .into_iter()
        .filter(|row| row.record_str("tool") == tool)
        .collect()
}

#[test]
fn no_corpus_secret_reaches_the_wire_in_arguments_or_results() {
    let scenario = Scenario::start(Receiver::start(), |builder| builder);
    let samples = secrets();
    for (kind, text, _) in &samples {
        // The text alone, in a sentence, nested, in an array, as a key, and under a key.
        let request = json!({
            "plain": text,
            "sentence": format!("please use {text} for this"),
            "nested": {"deeper": [{"value": text}]},
            "list": [1, text, true],
            "as_key": {text.clone(): 1},
            "kind": kind,
        });
        echo(request, format!("note: {text}")).expect("echoes");
    }
    for key in strings("credential_keys") {
        echo(
            json!({ key.clone(): "opaque-value-1234", "nested": { key: {"a": 1} } }),
            String::new(),
        )
        .expect("echoes");
    }
    let rows = delivered(&scenario, "echo");
    assert_eq!(rows.len(), samples.len() + strings("credential_keys").len());
    for row in &rows {
        for (kind, _, secret) in &samples {
            assert!(
                !row.raw.contains(secret.as_str()),
                "a {kind} sample reached the wire: {}",
                row.raw
            );
        }
        assert!(!row.raw.contains("opaque-value-1234"), "{}", row.raw);
        let arguments = &row.record["arguments"];
        assert!(arguments.is_object(), "arguments captured: {}", row.raw);
        assert_eq!(
            &row.record["result"], &arguments["request"],
            "the result is the same value, redacted the same way"
        );
    }
    assert!(
        rows.iter().any(|row| row.raw.contains("[redacted")),
        "the cuts are marked"
    );
}

#[mcp_tool(capture(arguments))]
fn innocent(value: String) -> usize {
    value.len()
}

#[test]
fn innocent_values_are_kept_whole() {
    let scenario = Scenario::start(Receiver::start(), |builder| builder);
    let innocent_values = strings("innocent");
    for value in &innocent_values {
        innocent(value.clone());
    }
    let rows = delivered(&scenario, "innocent");
    let mut kept: Vec<String> = rows
        .iter()
        .map(|row| {
            row.record["arguments"]["value"]
                .as_str()
                .expect("kept as text")
                .to_owned()
        })
        .collect();
    kept.sort();
    let mut expected = innocent_values;
    expected.sort();
    assert_eq!(kept, expected);
}

#[test]
fn the_users_hook_runs_after_the_built_in_layers_and_the_bound_is_visible() {
    let scenario = Scenario::start(Receiver::start(), |builder| {
        builder
            .redact_with(|value| {
                if let Some(request) = value.get_mut("request").and_then(Value::as_object_mut) {
                    request.remove("internal_id");
                    // The built-in layers ran first: the email is already a marker.
                    let email = request["email"].as_str().unwrap_or_default().to_owned();
                    request.insert("email_seen_by_hook".into(), json!(email));
                }
            })
            .capture_limit(256)
    });
    echo(
        json!({"internal_id": "tenant-7", "email": "ada@example.com", "big": "x".repeat(2_000)}),
        String::new(),
    )
    .expect("echoes");
    let rows = delivered(&scenario, "echo");
    let arguments = &rows[0].record["arguments"];
    assert_eq!(arguments["request"].get("internal_id"), None, "{arguments}");
    assert_eq!(
        arguments["request"]["email_seen_by_hook"], "[redacted:email]",
        "{arguments}"
    );
    assert!(
        arguments.to_string().len() <= 256,
        "bounded: {}",
        arguments.to_string().len()
    );
    assert!(
        arguments.to_string().contains('…') || arguments.to_string().contains("_truncated"),
        "the cut is visible: {arguments}"
    );
}

#[mcp_tool]
fn panics_with_a_secret() {
    panic!("cannot reach https://admin:hunter2@db.internal/ as ada@example.com");
}

#[test]
fn panic_messages_are_redacted_like_captured_text() {
    let scenario = Scenario::start(Receiver::start(), |builder| builder);
    let panicked = std::panic::catch_unwind(panics_with_a_secret);
    assert!(panicked.is_err());
    let rows = delivered(&scenario, "panics_with_a_secret");
    assert_eq!(rows.len(), 1);
    let error = rows[0].record_str("error");
    assert!(error.starts_with("cannot reach"), "{error}");
    assert!(!rows[0].raw.contains("hunter2"), "{}", rows[0].raw);
    assert!(!rows[0].raw.contains("ada@example.com"), "{}", rows[0].raw);
}
