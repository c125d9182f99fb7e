#![deny(unused_must_use)]

// `#[must_use]` stays on the instrumented function: ignoring its result is still reported.

use mcp_analytics::mcp_tool;

#[mcp_tool]
#[must_use = "the sum is the point"]
fn add(a: u8, b: u8) -> u8 {
    a + b
}

fn main() {
    add(1, 2);
}
