//! The wrapper's agent-facing options: what it may add to what the server says to the agent,
//! beyond recording. Each is off by default, since each changes what the server advertises or
//! answers:
//!
//! - `intent`: every listed tool asks for a required `context` argument, the agent's reason for
//!   the call, recorded as the row's `intent` (the client's own `_meta` `userIntent`, SEP-2817,
//!   comes first);
//! - `conversations`: every listed tool takes an optional `conversation_id`; a call without a
//!   valid one is given a new handle with its result, which the agent passes back, so that its
//!   calls share the row's `conversation` (and, where the request has no session of its own,
//!   the `session`);
//! - `missing_capability_tool`: one more tool, which the agent calls when no tool does what its
//!   user asked; the wrapper answers it, and records the report as a row of its own kind.
//!
//! The server sees none of it: the arguments are taken out of every call before it is
//! forwarded, and the extra tool is never forwarded. Only what the wrapper added is taken out: a
//! tool that declares `context` or `conversation_id` itself keeps them, as its own data.
//!
//! One job per file: `arguments` (the schemas, and taking the arguments back out), `known`
//! (which tools had room for them), `intent`, `conversation`, `missing` (the extra tool).

mod arguments;
mod conversation;
mod intent;
mod known;
mod missing;

use std::future::Future;
use std::sync::Arc;

use rmcp::ErrorData;
use rmcp::model::{CallToolRequestParams, CallToolResponse, ListToolsResult, MetaObject, Tool};

use super::sites::{Method, ServerSites};
use arguments::Arguments;

/// Which agent-facing options a wrapped server has on: none, by default.
#[derive(Debug, Clone, Default)]
pub(super) struct Options {
    pub(super) intent: bool,
    pub(super) conversations: bool,
    /// The name of the missing-capability tool, when it is on.
    pub(super) missing_capability_tool: Option<Arc<str>>,
}

impl Options {
    /// The missing-capability tool's name: `name`, or the usual one when it is blank.
    pub(super) fn tool_name(name: String) -> Arc<str> {
        match name.trim() {
            "" => missing::DEFAULT_NAME.into(),
            trimmed => trimmed.into(),
        }
    }

    fn any(&self) -> bool {
        self.intent || self.conversations || self.missing_capability_tool.is_some()
    }

    /// The arguments the options add to every tool with room for them.
    fn arguments(&self) -> Arguments {
        Arguments {
            context: self.intent,
            conversation_id: self.conversations,
        }
    }

    fn is_missing_capability_tool(&self, name: &str) -> bool {
        self.missing_capability_tool.as_deref() == Some(name)
    }
}

/// What the agent said of one call, for the request's rows.
#[derive(Debug, Default)]
pub(super) struct Said {
    /// Its intent (or its report of a missing capability), made safe to queue.
    pub(super) intent: Option<Box<str>>,
    /// The conversation it brought back, or was given with this call's result.
    pub(super) conversation: Option<Arc<str>>,
}

/// What the options make of one `tools/call`: decided before the server sees it, carried out
/// once it answered.
#[derive(Debug, Default)]
pub(super) struct Call {
    /// A handle minted for this call, to hand to the agent with the result.
    minted: Option<Arc<str>>,
    /// A call of the missing-capability tool: the wrapper answers it.
    answered_here: bool,
}

impl Call {
    /// Takes what the options added out of `request`'s arguments, and reads what the agent
    /// said: in them, or in the request's `_meta`. `registered` is the server's `get_tool`,
    /// asked about a tool no listing named.
    pub(super) fn take(
        options: &Options,
        sites: &'static ServerSites,
        request: &mut CallToolRequestParams,
        meta: &MetaObject,
        registered: impl FnOnce(&str) -> Option<Tool>,
    ) -> (Call, Said) {
        if !options.any() {
            return (Call::default(), Said::default());
        }
        let name = &*request.name;
        let room = known::room(sites, name).or_else(|| {
            let room = Arguments::room_in(&registered(name)?.input_schema);
            known::remember(sites, [(name, room)]);
            Some(room)
        });
        // The server's own tool of that name, if it has one, wins.
        let answered_here = room.is_none() && options.is_missing_capability_tool(name);
        let owned = if answered_here {
            Arguments {
                context: true,
                conversation_id: options.conversations,
            }
        } else {
            // A tool no listing named and the server does not know: nothing was added to it.
            room.map_or(Arguments::NONE, |room| room.and(options.arguments()))
        };
        let taken = arguments::take(request.arguments.as_mut(), owned);
        let stated = || taken.context.as_ref().and_then(intent::stated);
        // A report is the missing-capability tool's whole point; an intent, the option's.
        let intent = if answered_here {
            stated()
        } else if options.intent {
            intent::from_meta(meta).or_else(stated)
        } else {
            None
        };
        let echoed = conversation::echoed(taken.conversation_id.as_ref());
        let minted = (owned.conversation_id && echoed.is_none()).then(conversation::mint);
        let call = Call {
            minted: minted.clone(),
            answered_here,
        };
        let conversation = echoed.or(minted);
        (
            call,
            Said {
                intent,
                conversation,
            },
        )
    }

    /// What the request's row records it as.
    pub(super) fn method(&self) -> Method {
        if self.answered_here {
            Method::MissingCapability
        } else {
            Method::CallTool
        }
    }

    /// The call's answer: the server's, from `forward` (made only when the server answers, so
    /// that nothing of the server's runs for a call it does not serve), or the wrapper's own;
    /// with a minted handle for the agent.
    pub(super) async fn answer<F>(
        self,
        forward: impl FnOnce() -> F,
    ) -> Result<CallToolResponse, ErrorData>
    where
        F: Future<Output = Result<CallToolResponse, ErrorData>>,
    {
        let mut answer = if self.answered_here {
            Ok(missing::reply().into())
        } else {
            forward().await
        };
        if let (Some(handle), Ok(CallToolResponse::Complete(result))) = (&self.minted, &mut answer)
        {
            conversation::hand_over(result, handle);
        }
        answer
    }
}

/// A `tools/list` answer as the agent sees it: the arguments the options add, on each tool
/// with room for them, and, on the first page (`first_page`), the missing-capability tool,
/// unless the server has a tool of that name (`registered` is its `get_tool`). Every tool
/// listed is remembered, so that its calls know what was added to it.
pub(super) async fn advertise(
    options: &Options,
    sites: &'static ServerSites,
    first_page: bool,
    listing: impl Future<Output = Result<ListToolsResult, ErrorData>>,
    registered: impl FnOnce(&str) -> Option<Tool>,
) -> Result<ListToolsResult, ErrorData> {
    let mut page = listing.await?;
    if !options.any() {
        return Ok(page);
    }
    let rooms: Vec<Arguments> = page
        .tools
        .iter()
        .map(|tool| Arguments::room_in(&tool.input_schema))
        .collect();
    known::remember(
        sites,
        page.tools
            .iter()
            .map(|tool| &*tool.name)
            .zip(rooms.iter().copied()),
    );
    for (tool, room) in page.tools.iter_mut().zip(rooms) {
        arguments::add(tool, room.and(options.arguments()));
    }
    if let Some(name) = options.missing_capability_tool.as_deref()
        && first_page
        && known::room(sites, name).is_none()
        && registered(name).is_none()
    {
        page.tools.push(missing::tool(name, options.conversations));
    }
    Ok(page)
}
