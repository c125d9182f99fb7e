//! `#[track_caller]` on a sync handler: the body would run in a closure, which cannot carry the
//! caller's location, so the combination is refused rather than silently broken.

use mcp_analytics::mcp_tool;

#[mcp_tool]
#[track_caller]
fn caller_line() -> u32 {
    std::panic::Location::caller().line()
}

fn main() {}
