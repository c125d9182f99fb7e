use mcp_analytics::mcp_tool;

struct Region;

// Neither a number, a bool nor text: needs `%` or `?`.
#[mcp_tool(fields(region = region))]
fn typed(region: Region) {}

// `%` needs `Display`.
#[mcp_tool(fields(region = %region))]
fn display(region: Region) {}

fn main() {}
