//! Why the agent made a call, as it said: the client's own `_meta` first (SEP-2817's
//! `io.modelcontextprotocol/aiInvocation` `userIntent`, what the user asked, as the client knows
//! it), else the `context` argument the option asked for. Free text, possibly personal, so it
//! is made safe to queue (`capture::free_text`: redacted, cut) before it is kept.

use rmcp::model::MetaObject;
use serde_json::Value;

use crate::capture;
use crate::rows::text::MAX_INTENT_LEN;

/// Where SEP-2817 clients describe the invocation: its `userIntent` member is the intent.
const META_AI_INVOCATION: &str = "io.modelcontextprotocol/aiInvocation";
const USER_INTENT: &str = "userIntent";

/// The intent a request's `_meta` states, if it states one.
pub(super) fn from_meta(meta: &MetaObject) -> Option<Box<str>> {
    stated(meta.0.get(META_AI_INVOCATION)?.get(USER_INTENT)?)
}

/// `value` as an intent: text that says something, made safe to queue. Anything but a string
/// is no intent, nor is `{}`, which some clients send for an empty one.
pub(super) fn stated(value: &Value) -> Option<Box<str>> {
    let text = value.as_str()?.trim();
    if text.is_empty() || text == "{}" {
        return None;
    }
    let safe = capture::free_text(text, MAX_INTENT_LEN);
    (!safe.trim().is_empty()).then_some(safe)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_intent_is_text_that_says_something_and_is_bounded() {
        assert_eq!(stated(&json!("  ")), None);
        assert_eq!(stated(&json!("{}")), None);
        assert_eq!(stated(&json!({"why": "x"})), None);
        assert_eq!(
            stated(&json!(" Finding a city's forecast ")).as_deref(),
            Some("Finding a city's forecast")
        );
        let long = stated(&json!("why ".repeat(1000))).unwrap();
        assert!(long.len() <= MAX_INTENT_LEN && long.ends_with('…'));
    }

    #[test]
    fn the_clients_own_user_intent_comes_from_meta() {
        let mut meta = MetaObject::default();
        assert_eq!(from_meta(&meta), None);
        meta.0.insert(
            META_AI_INVOCATION.into(),
            json!({"model": "m", "userIntent": "Plan a trip"}),
        );
        assert_eq!(from_meta(&meta).as_deref(), Some("Plan a trip"));
    }
}
