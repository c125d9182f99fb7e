//! The pipeline as a whole, against the corpus (`corpus.json`: secrets and personal data that
//! must not survive, innocent text that must survive unchanged) and against arbitrary values
//! (property tests: never a panic, never over the limit, never a corpus secret).

use std::sync::{Arc, LazyLock, Mutex};

use proptest::prelude::*;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::bound::{self, MAX_DEPTH, MORE_KEY, TOO_DEEP};
use super::patterns::scrub;
use super::*;

/// `corpus.json`, as its `format` field describes it.
#[derive(Deserialize)]
struct Corpus {
    secrets: Vec<Sample>,
    credential_keys: Vec<String>,
    innocent_keys: Vec<String>,
    innocent: Vec<String>,
}

#[derive(Deserialize)]
struct Sample {
    kind: String,
    text: String,
    secret: Option<String>,
}

impl Sample {
    /// What must not appear in any output.
    fn secret(&self) -> &str {
        self.secret.as_deref().unwrap_or(&self.text)
    }

    fn marker(&self) -> String {
        match self.kind.as_str() {
            "named" => named::REDACTED.to_owned(),
            kind => format!("[redacted:{kind}]"),
        }
    }
}

static CORPUS: LazyLock<Corpus> = LazyLock::new(|| {
    serde_json::from_str(include_str!("corpus.json")).expect("corpus.json parses")
});

fn default() -> Redaction {
    Redaction::new(None, Redaction::DEFAULT_MAX_BYTES)
}

/// Every corpus secret found in `output`.
fn survivors(output: &str) -> Vec<&'static str> {
    CORPUS
        .secrets
        .iter()
        .map(Sample::secret)
        .filter(|secret| output.contains(secret))
        .collect()
}

#[test]
fn the_corpus_covers_every_kind_with_realistic_samples() {
    assert!(CORPUS.secrets.len() >= 40, "{}", CORPUS.secrets.len());
    for sample in &CORPUS.secrets {
        assert!(sample.text.contains(sample.secret()), "{}", sample.text);
    }
    let mut kinds: Vec<&str> = CORPUS.secrets.iter().map(|s| s.kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let mut expected = vec![
        "anthropic_key",
        "aws_key",
        "bearer",
        "card",
        "email",
        "github_token",
        "google_key",
        "jwt",
        "named",
        "openai_key",
        "private_key",
        "slack_token",
        "stripe_key",
        "tinybird_token",
        "url_credentials",
    ];
    expected.sort_unstable();
    assert_eq!(kinds, expected);
}

#[test]
fn every_secret_is_replaced_by_the_marker_of_its_kind() {
    for sample in &CORPUS.secrets {
        let out = scrub(&sample.text);
        assert!(out.contains(&sample.marker()), "{} -> {out}", sample.text);
        assert!(!out.contains(sample.secret()), "{} -> {out}", sample.text);
    }
}

#[test]
fn no_secret_survives_in_a_sentence_an_object_an_array_or_as_a_key() {
    let redaction = default();
    for sample in &CORPUS.secrets {
        let text = sample.text.as_str();
        let mut as_key = Map::new();
        as_key.insert(text.to_owned(), json!(1));
        as_key.insert(format!("by {text}"), json!({ "deeper": text }));
        let value = json!({
            "sentence": format!("Please look at {text}, then reply."),
            "nested": { "a": { "b": [1, { "c": text }] } },
            "array": ["before", text, format!("({text})")],
            "note": text,
            "keys": as_key,
        });
        let out = redaction.value(value).to_string();
        assert_eq!(survivors(&out), Vec::<&str>::new(), "{out}");
    }
}

#[test]
fn credential_keys_lose_their_whole_value_whatever_its_type() {
    let redaction = default();
    for key in &CORPUS.credential_keys {
        for value in [
            json!("hunter2"),
            json!(12345),
            json!(true),
            json!(["a", "b"]),
            json!({ "user": "ada", "pin": 1 }),
        ] {
            let out = redaction.value(json!({ "keep": "me", key.as_str(): value }));
            assert_eq!(
                out,
                json!({ "keep": "me", key.as_str(): "[redacted]" }),
                "{key}"
            );
        }
    }
}

#[test]
fn innocent_keys_and_strings_survive_unchanged() {
    let redaction = default();
    for text in &CORPUS.innocent {
        assert_eq!(scrub(text), text.as_str());
        let value = json!({ "value": text, "list": [text], text.as_str(): 1 });
        assert_eq!(redaction.value(value.clone()), value, "{text}");
        assert_eq!(&*redaction.text(text, 1024), text.as_str());
    }
    for key in &CORPUS.innocent_keys {
        let value = json!({ key.as_str(): "kept", "n": { key.as_str(): 7 } });
        assert_eq!(redaction.value(value.clone()), value, "{key}");
    }
}

#[test]
fn text_redacts_every_secret_and_cuts_to_its_limit() {
    let redaction = default();
    for sample in &CORPUS.secrets {
        let text = format!("The agent wants to use {} for the deploy", sample.text);
        let out = redaction.text(&text, 1024);
        assert!(!out.contains(sample.secret()), "{out}");
        assert!(out.contains(&sample.marker()), "{out}");
    }
    let long = format!("mail alice@example.com {}", "word ".repeat(1000));
    let out = redaction.text(&long, 100);
    assert!(out.len() <= 100 && out.ends_with('…'), "{out}");
    assert!(out.starts_with("mail [redacted:email] word"), "{out}");
    assert_eq!(&*redaction.text("abcdef", 2), "", "no room for the `…`");
    assert_eq!(&*redaction.text("ab", 2), "ab");
}

#[test]
fn the_hook_runs_after_the_built_in_layers_and_before_the_bound() {
    let seen = Arc::new(Mutex::new(Value::Null));
    let hook: RedactHook = {
        let seen = Arc::clone(&seen);
        Arc::new(move |value: &mut Value| {
            *seen.lock().unwrap() = value.clone();
            if let Some(map) = value.as_object_mut() {
                map.remove("internal_id");
                map.insert("added".to_owned(), json!("x".repeat(10_000)));
            }
        })
    };
    let redaction = Redaction::new(Some(hook), 256);
    let out = redaction.value(json!({
        "password": "hunter2",
        "note": "from bob@example.com",
        "internal_id": 42,
    }));
    assert_eq!(
        *seen.lock().unwrap(),
        json!({ "password": "[redacted]", "note": "from [redacted:email]", "internal_id": 42 }),
        "the hook sees the built-in layers' work"
    );
    assert!(out.get("internal_id").is_none(), "the hook's work is kept");
    let added = out["added"].as_str().unwrap();
    assert!(added.ends_with('…'), "the bound cuts what the hook added");
    assert!(out.to_string().len() <= 256);
}

#[test]
fn a_panicking_hook_fails_closed() {
    let hook: RedactHook = Arc::new(|value: &mut Value| {
        value["half"] = json!("done");
        panic!("hook bug");
    });
    let redaction = Redaction::new(Some(hook), 4096);
    let out = redaction.value(json!({ "secret_sauce": "ketchup", "n": 1 }));
    assert_eq!(out, json!(HOOK_PANICKED));
    // And again: a hook that panicked once is still called, and still fails closed.
    assert_eq!(redaction.value(json!([1, 2])), json!(HOOK_PANICKED));
}

#[test]
fn every_cut_of_the_bound_is_visible() {
    let redaction = Redaction::new(None, 256);
    let long = redaction.value(json!({ "text": "lorem ipsum ".repeat(100), "n": 1 }));
    assert!(long["text"].as_str().unwrap().ends_with('…'));
    assert_eq!(long["n"], 1, "a long string is cut, its neighbours kept");

    let many = redaction.value(Value::Array((0..1000).map(Value::from).collect()));
    let items = many.as_array().unwrap();
    let marker = items.last().unwrap().as_str().unwrap();
    let shown = items.len() - 1;
    assert_eq!(marker, format!("[… {} more]", 1000 - shown));

    let members: Map<String, Value> = (0..500).map(|i| (format!("k{i:03}"), json!(i))).collect();
    let object = redaction.value(Value::Object(members));
    assert!(object[MORE_KEY].as_str().unwrap().starts_with("[… "));
    for out in [long, many, object] {
        assert!(out.to_string().len() <= 256, "{out}");
    }
}

#[test]
fn deep_nesting_is_cut_without_overflowing_the_stack() {
    let mut deep = json!("bottom");
    for _ in 0..100_000 {
        deep = Value::Array(vec![deep]);
    }
    let out = default().value(deep);
    let mut depth = 0;
    let mut at = &out;
    while let Some(items) = at.as_array() {
        depth += 1;
        at = &items[0];
    }
    assert_eq!(depth, MAX_DEPTH);
    assert_eq!(at, TOO_DEEP);

    // A hook that nests deeply is bounded too.
    let hook: RedactHook = Arc::new(|value: &mut Value| {
        for _ in 0..100_000 {
            // Not `json!`, which would serialize the value (recursively) to embed it.
            let mut map = Map::new();
            map.insert("in".to_owned(), value.take());
            *value = Value::Object(map);
        }
    });
    let out = Redaction::new(Some(hook), 4096).value(json!(1));
    assert!(out.to_string().contains(TOO_DEEP));
}

#[test]
fn a_value_of_many_long_strings_is_scanned_within_its_budget_and_leaks_nothing() {
    // Past the scan budget each string is kept only to its first bytes: what the margin
    // dropped never shows, however far in the secret sits.
    let strings: Vec<Value> = (0..64)
        .map(|i| json!(format!("{} bob{i}@example.com", "x".repeat(i * 100))))
        .collect();
    let out = Redaction::new(None, 65_536)
        .value(Value::Array(strings))
        .to_string();
    assert!(!out.contains("@example.com"), "{out}");
}

#[test]
fn keys_redacted_alike_stay_apart() {
    let out = default().value(json!({
        "alice@example.com": { "plan": "pro" },
        "bob@example.com": { "plan": "free" },
    }));
    let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["[redacted:email]", "[redacted:email] #2"]);
}

#[test]
fn debug_shows_the_hook_as_present_or_absent_and_new_raises_tiny_limits() {
    assert_eq!(
        format!("{:?}", Redaction::new(None, 1)),
        "Redaction { hook: absent, max_bytes: 64 }"
    );
    let hook: RedactHook = Arc::new(|_: &mut Value| {});
    assert_eq!(
        format!("{:?}", Redaction::new(Some(hook), 4096)),
        "Redaction { hook: present, max_bytes: 4096 }"
    );
}

/// A string of arbitrary text, sometimes with a corpus secret spliced in between spaces.
fn text_with_secrets() -> impl Strategy<Value = String> {
    let count = CORPUS.secrets.len();
    (
        prop_oneof![any::<String>(), "[ -~]{0,24}"],
        proptest::option::of(0..count),
        "[ -~]{0,24}",
    )
        .prop_map(|(before, secret, after)| match secret {
            Some(at) => format!("{before} {} {after}", CORPUS.secrets[at].text),
            None => before,
        })
}

/// Arbitrary JSON: scalars, strings with secrets spliced in, and arrays and objects of them
/// (keys with secrets too), nested a few levels.
fn json_with_secrets() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text_with_secrets().prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 96, 12, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..12).prop_map(Value::Array),
            proptest::collection::vec((text_with_secrets(), inner), 0..12)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

proptest! {
// The default case count; no regression files written into the crate's sources.
#![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn value_never_panics_never_exceeds_the_limit_and_hides_every_secret(
        value in json_with_secrets(),
        max_bytes in prop::sample::select(vec![64, 100, 256, 1024, 4096]),
    ) {
        let out = Redaction::new(None, max_bytes).value(value);
        let json = serde_json::to_string(&out).unwrap();
        prop_assert!(json.len() <= max_bytes, "{} > {max_bytes}: {json}", json.len());
        prop_assert_eq!(survivors(&json), Vec::<&str>::new());
    }

    #[test]
    fn text_never_panics_never_exceeds_the_limit_and_hides_every_secret(
        text in text_with_secrets(),
        max_len in 0..600usize,
    ) {
        let out = default().text(&text, max_len);
        prop_assert!(out.len() <= max_len, "{} > {max_len}: {out}", out.len());
        prop_assert_eq!(survivors(&out), Vec::<&str>::new());
    }

    #[test]
    fn a_value_that_fits_is_kept_as_it_is(value in json_with_secrets()) {
        let whole = bound::size(&value, usize::MAX, usize::MAX);
        prop_assert_eq!(whole, serde_json::to_string(&value).unwrap().len());
        prop_assert_eq!(bound::fit(value.clone(), whole.max(64)), value);
    }
}
