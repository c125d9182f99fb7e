//! The missing-capability tool: one more tool in the listing, which an agent calls when none of
//! the server's tools does what its user asked, saying what it looked for. The wrapper answers
//! it, and the server never sees it: the report becomes a row of its own kind, never a call of
//! a tool.

use std::sync::Arc;

use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool, ToolAnnotations};
use serde_json::json;

use super::arguments::{self, Arguments, CONTEXT};

/// The tool's name when the one given is blank.
pub(super) const DEFAULT_NAME: &str = "get_more_tools";

const DESCRIPTION: &str = "Call this when none of the other tools can do what the user asked: \
say what you looked for. It reports the missing capability to the server's maintainers; it \
does nothing else and returns no data.";

const NEED_DESCRIPTION: &str = "What you were trying to do and what kind of tool would have \
done it, in one or two sentences. Describe people and things by their role (\"a customer\"), \
never by name, email, phone number or id.";

const REPLY: &str = "Thank you: this server has no other tools than those listed. Your report \
was recorded for its maintainers.";

/// The tool as listed; `conversations`: it takes a `conversation_id` too, like every tool.
pub(super) fn tool(name: &str, conversations: bool) -> Tool {
    let schema = JsonObject::from_iter([
        ("type".to_owned(), json!("object")),
        (
            "properties".to_owned(),
            json!({ CONTEXT: { "type": "string", "description": NEED_DESCRIPTION } }),
        ),
        ("required".to_owned(), json!([CONTEXT])),
    ]);
    let mut tool = Tool::new(name.to_owned(), DESCRIPTION, Arc::new(schema))
        .with_title("Report a missing capability")
        .with_annotations(
            ToolAnnotations::new()
                .read_only(true)
                .destructive(false)
                .idempotent(true)
                .open_world(false),
        );
    let also = Arguments {
        context: false,
        conversation_id: conversations,
    };
    arguments::add(&mut tool, also);
    tool
}

/// What the agent is told when it calls the tool.
pub(super) fn reply() -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(REPLY)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn the_tool_asks_what_was_looked_for() {
        let tool = tool("get_more_tools", true);
        let schema = Value::Object(JsonObject::clone(&tool.input_schema));
        assert_eq!(schema["required"], json!(["context"]));
        assert_eq!(schema["properties"]["conversation_id"]["type"], "string");
        assert_eq!(tool.annotations.and_then(|a| a.read_only_hint), Some(true));
        let without = super::tool("get_more_tools", false);
        assert!(
            !without.input_schema["properties"]
                .as_object()
                .unwrap()
                .contains_key("conversation_id")
        );
        assert!(!reply().content.is_empty());
    }
}
