use mcp_analytics::mcp_tool;

// Something that cannot be captured.
#[mcp_tool(capture(arguments, everything))]
fn unknown_part() {}

// Twice the same.
#[mcp_tool(capture(result, result))]
fn twice() {}

// A value where a list goes.
#[mcp_tool(capture = true)]
fn as_value() {}

fn main() {}
