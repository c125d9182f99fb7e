use mcp_analytics::mcp_tool;

// Every mistake is reported in one compilation, each at its own token.
#[mcp_tool(nmae = "x", name = "", name = "b", session = 1)]
const fn add(a: u8, b: u8) -> u8 {
    a + b
}

fn main() {
    let _ = add(1, 2);
}
