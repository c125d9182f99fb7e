//! What a small MCP server's handlers record, through the real attributes: four tools, prompts
//! and resources, one call in 16 failing with an error text, sessions rotating among 16
//! UUID-shaped ids. The pipeline and the sustained-rate benchmarks emit it.

use mcp_analytics::session::{SessionId, in_session};
use mcp_analytics::{mcp_prompt, mcp_resource, mcp_tool};

/// Distinct sessions the calls rotate among.
pub const SESSIONS: usize = 16;
/// Calls per session in a row: a session is entered once per this many calls.
pub const CALLS_PER_SESSION: u64 = 64;

#[mcp_tool]
pub fn get_weather(city: u64) -> u64 {
    city.wrapping_mul(7) % 40
}

#[mcp_tool]
pub fn search_documents(query: u64) -> Result<u64, String> {
    if query % 16 == 5 {
        Err(format!("index shard {} is unavailable", query % 4))
    } else {
        Ok(query / 3)
    }
}

#[mcp_prompt]
fn summarize(length: u64) -> u64 {
    length / 2
}

#[mcp_resource(name = "mem://readme")]
fn readme(offset: u64) -> u64 {
    offset
}

/// The `i`th call of the mix: one event.
pub fn call(i: u64) {
    match i % 8 {
        0..=3 => drop(get_weather(i)),
        4 | 5 => drop(search_documents(i)),
        6 => drop(summarize(i)),
        _ => drop(readme(i)),
    }
}

/// The sessions the calls rotate among.
pub fn sessions() -> Vec<SessionId> {
    (0..SESSIONS).map(session_id).collect()
}

/// Calls `range` of the mix, each in the session its index falls in (a new session every
/// [`CALLS_PER_SESSION`] calls).
pub fn calls(range: std::ops::Range<u64>, sessions: &[SessionId]) {
    let mut i = range.start;
    while i < range.end {
        let session = sessions[(i / CALLS_PER_SESSION) as usize % sessions.len()].clone();
        let end = (i / CALLS_PER_SESSION + 1) * CALLS_PER_SESSION;
        let end = end.min(range.end);
        in_session(session, || (i..end).for_each(call));
        i = end;
    }
}

/// The `k`th session id, shaped like the ones MCP clients send (a UUID's 36 characters).
fn session_id(k: usize) -> SessionId {
    SessionId::from(format!("{k:08x}-7c1d-4e5f-8a9b-{:012x}", k * 7919))
}
