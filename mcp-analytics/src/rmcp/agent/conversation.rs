//! The conversation handle: a UUIDv7 the wrapper mints for a call that brings none, hands to the
//! agent in the call's result, and reads back from the `conversation_id` argument of the
//! agent's next calls. On stateless HTTP it is all that ties one agent's calls together.

use std::sync::Arc;

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::Value;
use uuid::{Uuid, Variant, Version};

use super::arguments::CONVERSATION_ID;

/// The handle a call brought back, if it is one the wrapper could have minted: a hyphenated
/// UUIDv7, in any case (written lower case). Agents make up ids (`conv-1`); taking them would
/// merge the calls of every agent that made up the same one.
pub(super) fn echoed(value: Option<&Value>) -> Option<Arc<str>> {
    let text = value?.as_str()?.trim();
    // 36 characters: the hyphenated form only, the one handed out.
    if text.len() != 36 {
        return None;
    }
    let id = Uuid::try_parse(text).ok()?;
    let minted_shape =
        id.get_version() == Some(Version::SortRand) && id.get_variant() == Variant::RFC4122;
    minted_shape.then(|| id.hyphenated().to_string().into())
}

/// A new handle: time-ordered, so that a conversation's id sorts by when it began.
pub(super) fn mint() -> Arc<str> {
    Uuid::now_v7().hyphenated().to_string().into()
}

/// Hands a minted `handle` to the agent: one more text block, `{"conversation_id":"…"}`, at the
/// end of a successful result's content, which is what models read. Not mirrored into
/// `structuredContent`: a tool's output schema would have to allow it, and clients validate
/// against that schema. A failed result keeps its text as the tool wrote it.
pub(super) fn hand_over(result: &mut CallToolResult, handle: &str) {
    if result.is_error == Some(true) {
        return;
    }
    let block = serde_json::json!({ CONVERSATION_ID: handle }).to_string();
    result.content.push(ContentBlock::text(block));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_handles_the_wrapper_could_have_minted_are_taken() {
        let minted = mint();
        assert_eq!(echoed(Some(&json!(&*minted))), Some(Arc::clone(&minted)));
        let upper = minted.to_uppercase();
        assert_eq!(
            echoed(Some(&json!(upper))),
            Some(minted.clone()),
            "read lower case"
        );
        let v4 = Uuid::new_v4().hyphenated().to_string();
        for made_up in [
            json!("conv-1"),
            json!(v4),
            json!(minted.replace('-', "")),
            json!(format!("{{{minted}}}")),
            json!(7),
            json!(""),
        ] {
            assert_eq!(echoed(Some(&made_up)), None, "{made_up}");
        }
        assert_eq!(echoed(None), None);
        assert_ne!(mint(), minted, "each minted handle is new");
    }

    #[test]
    fn a_handle_rides_a_successful_result_only() {
        let mut result = CallToolResult::success(vec![ContentBlock::text("ok")]);
        hand_over(&mut result, "0190b0a8-0000-7000-8000-000000000000");
        let last = result
            .content
            .last()
            .and_then(|block| block.as_text())
            .unwrap();
        assert_eq!(
            last.text,
            r#"{"conversation_id":"0190b0a8-0000-7000-8000-000000000000"}"#
        );
        let mut failed = CallToolResult::error(vec![ContentBlock::text("no")]);
        hand_over(&mut failed, "x");
        assert_eq!(failed.content.len(), 1);
    }
}
