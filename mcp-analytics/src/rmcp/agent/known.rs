//! Which tools a server has, and which of the agent-facing arguments there was room for in each
//! (so, with the options on, which the agent was shown, and which a call's arguments hold for
//! the wrapper rather than for the tool): learnt from the server's listings, or from its
//! `get_tool`, and read by every call.
//!
//! Process-wide, per server (its callsites' address): rmcp makes a server per connection, and
//! per request on stateless HTTP, where the listing and the calls are served by different ones.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use super::arguments::Arguments;
use crate::rmcp::sites::ServerSites;

/// Most tools remembered per server: a server that makes up tools without end must not grow
/// the map without bound. A tool past it is looked up with `get_tool` on each call.
const MAX_TOOLS: usize = 4096;

/// Per server, per tool: its room for the arguments.
type Known = HashMap<usize, HashMap<Box<str>, Arguments>>;

static KNOWN: RwLock<Option<Known>> = RwLock::new(None);

fn server(sites: &'static ServerSites) -> usize {
    std::ptr::from_ref(sites) as usize
}

/// What the last listing (or `get_tool`) said of `tool`, if the server has it.
pub(super) fn room(sites: &'static ServerSites, tool: &str) -> Option<Arguments> {
    let known = KNOWN.read().unwrap_or_else(PoisonError::into_inner);
    known.as_ref()?.get(&server(sites))?.get(tool).copied()
}

/// Remembers `tools`, the server's, with their room for the arguments.
pub(super) fn remember<'a>(
    sites: &'static ServerSites,
    tools: impl IntoIterator<Item = (&'a str, Arguments)>,
) {
    let mut known = KNOWN.write().unwrap_or_else(PoisonError::into_inner);
    let server = known
        .get_or_insert_with(HashMap::new)
        .entry(server(sites))
        .or_default();
    for (name, room) in tools {
        if let Some(known) = server.get_mut(name) {
            *known = room;
        } else if server.len() < MAX_TOOLS {
            server.insert(name.into(), room);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static SITES: ServerSites = ServerSites::new("known-test", "0.0.0");
    static OTHER: ServerSites = ServerSites::new("known-other", "0.0.0");

    #[test]
    fn each_server_knows_its_own_tools_as_last_listed() {
        let both = Arguments {
            context: true,
            conversation_id: true,
        };
        remember(&SITES, [("search", both), ("own_context", Arguments::NONE)]);
        assert_eq!(room(&SITES, "search"), Some(both));
        assert_eq!(room(&SITES, "own_context"), Some(Arguments::NONE));
        assert_eq!(room(&SITES, "missing"), None);
        assert_eq!(room(&OTHER, "search"), None, "another server's tools");
        remember(&SITES, [("search", Arguments::NONE)]);
        assert_eq!(room(&SITES, "search"), Some(Arguments::NONE), "relisted");
    }
}
