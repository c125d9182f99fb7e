//! The arguments the agent-facing options add to a tool's input schema, and take back out of the
//! calls: `context` (required: models fill in required arguments, and leave optional ones out)
//! and `conversation_id` (optional: the agent has no handle before its first call).
//!
//! An argument is added only where there is room for it: not to a tool that declares it itself
//! (there it is the tool's own data, and stays the tool's), nor to a schema composed at its top
//! (`oneOf`, `anyOf`, `allOf`, `$ref`), where a property added beside the composition may not
//! mean what it says.

use rmcp::model::{JsonObject, Tool};
use serde_json::{Map, Value};

/// The argument in which the agent says why it calls a tool.
pub(super) const CONTEXT: &str = "context";
/// The argument in which the agent passes its conversation handle back.
pub(super) const CONVERSATION_ID: &str = "conversation_id";

const CONTEXT_DESCRIPTION: &str = "Why you are calling this tool, in 15 to 25 words: the \
purpose of the call and how it serves the user's goal. For analytics only. Never include \
personal or identifying details (names, emails, phone numbers, addresses, account numbers, \
credentials): say \"a user\", \"a customer\", \"an account\" instead.";

const CONVERSATION_ID_DESCRIPTION: &str = "The conversation_id this server gave you in an \
earlier result, passed back exactly as given. Leave it out until you have one (the server \
hands you one in the result of your first call); never make one up. Keep passing the same one \
for the rest of the conversation.";

/// The keywords that compose a schema: a property added next to them may not apply.
const COMPOSITION: [&str; 4] = ["oneOf", "anyOf", "allOf", "$ref"];

/// Which of the two arguments a tool has (or gets, or gives back): one flag each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Arguments {
    pub(super) context: bool,
    pub(super) conversation_id: bool,
}

impl Arguments {
    pub(super) const NONE: Arguments = Arguments {
        context: false,
        conversation_id: false,
    };

    /// Those in both.
    pub(super) fn and(self, other: Arguments) -> Arguments {
        Arguments {
            context: self.context && other.context,
            conversation_id: self.conversation_id && other.conversation_id,
        }
    }

    /// Which arguments there is room for in a tool with this input schema.
    pub(super) fn room_in(schema: &JsonObject) -> Arguments {
        let composed = COMPOSITION
            .iter()
            .any(|keyword| schema.get(*keyword).is_some_and(|value| !is_falsy(value)));
        let properties = match schema.get("properties") {
            None => Some(None),
            Some(Value::Object(properties)) => Some(Some(properties)),
            Some(_) => None,
        };
        let Some(properties) = properties.filter(|_| !composed) else {
            return Arguments::NONE;
        };
        let free = |name: &str| properties.is_none_or(|properties| !properties.contains_key(name));
        // `context` is made required, which a malformed `required` cannot say.
        let can_require = matches!(schema.get("required"), None | Some(Value::Array(_)));
        Arguments {
            context: free(CONTEXT) && can_require,
            conversation_id: free(CONVERSATION_ID),
        }
    }
}

/// `null`, `false`, `""`: present, but saying nothing.
fn is_falsy(value: &Value) -> bool {
    matches!(value, Value::Null | Value::Bool(false)) || value.as_str() == Some("")
}

/// Adds `arguments` to `tool`'s input schema; the caller checked there is room for them.
pub(super) fn add(tool: &mut Tool, arguments: Arguments) {
    if arguments == Arguments::NONE {
        return;
    }
    // The tool is the answer's copy; the server's own, which may share the schema, is not
    // touched: the schema is copied here.
    let schema = std::sync::Arc::make_mut(&mut tool.input_schema);
    let described = |description: &str| {
        Value::Object(Map::from_iter([
            ("type".to_owned(), Value::from("string")),
            ("description".to_owned(), Value::from(description)),
        ]))
    };
    let properties = schema
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(properties) = properties {
        if arguments.context {
            properties.insert(CONTEXT.to_owned(), described(CONTEXT_DESCRIPTION));
        }
        if arguments.conversation_id {
            let description = described(CONVERSATION_ID_DESCRIPTION);
            properties.insert(CONVERSATION_ID.to_owned(), description);
        }
    }
    if arguments.context {
        let required = schema
            .entry("required")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(required) = required {
            required.push(Value::from(CONTEXT));
        }
    }
}

/// What a call's arguments held of the arguments taken out.
#[derive(Debug, Default)]
pub(super) struct Taken {
    pub(super) context: Option<Value>,
    pub(super) conversation_id: Option<Value>,
}

/// Takes `owned` (the arguments the wrapper added to the tool called) out of a call's
/// `arguments`, before the server sees them.
pub(super) fn take(arguments: Option<&mut JsonObject>, owned: Arguments) -> Taken {
    let Some(arguments) = arguments else {
        return Taken::default();
    };
    Taken {
        context: owned.context.then(|| arguments.remove(CONTEXT)).flatten(),
        conversation_id: owned
            .conversation_id
            .then(|| arguments.remove(CONVERSATION_ID))
            .flatten(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> JsonObject {
        match value {
            Value::Object(map) => map,
            _ => panic!("an object"),
        }
    }

    const BOTH: Arguments = Arguments {
        context: true,
        conversation_id: true,
    };

    #[test]
    fn arguments_are_added_where_there_is_room() {
        let schema = json!({"type": "object", "properties": {"city": {"type": "string"}},
            "required": ["city"]});
        let mut tool = Tool::new("weather", "Weather", object(schema.clone()));
        let room = Arguments::room_in(&tool.input_schema);
        assert_eq!(room, BOTH);
        add(&mut tool, room);
        let added = Value::Object(JsonObject::clone(&tool.input_schema));
        assert_eq!(added["required"], json!(["city", "context"]));
        assert_eq!(added["properties"]["context"]["type"], "string");
        assert!(
            added["properties"]["context"]["description"]
                .as_str()
                .unwrap()
                .contains("15 to 25 words")
        );
        assert_eq!(added["properties"]["conversation_id"]["type"], "string");
        let empty = object(json!({"type": "object"}));
        assert_eq!(Arguments::room_in(&empty), BOTH, "no properties yet");
    }

    #[test]
    fn a_tool_keeps_what_it_declares_and_composed_schemas_are_left_alone() {
        let own = object(json!({"type": "object", "properties": {"context": {}}}));
        assert_eq!(
            Arguments::room_in(&own),
            Arguments {
                context: false,
                conversation_id: true
            }
        );
        for keyword in COMPOSITION {
            let composed = object(json!({"type": "object", keyword: [{"type": "object"}]}));
            assert_eq!(Arguments::room_in(&composed), Arguments::NONE, "{keyword}");
        }
        let said_nothing = object(json!({"type": "object", "oneOf": null}));
        assert_eq!(Arguments::room_in(&said_nothing), BOTH);
        let malformed = object(json!({"type": "object", "required": "context"}));
        assert!(!Arguments::room_in(&malformed).context);
    }

    #[test]
    fn only_owned_arguments_are_taken_out() {
        let mut arguments = object(json!({"a": 1, "context": "why", "conversation_id": "c"}));
        let owned = Arguments {
            context: true,
            conversation_id: false,
        };
        let taken = take(Some(&mut arguments), owned);
        assert_eq!(taken.context, Some(json!("why")));
        assert_eq!(taken.conversation_id, None);
        assert_eq!(
            Value::Object(arguments),
            json!({"a": 1, "conversation_id": "c"})
        );
    }
}
