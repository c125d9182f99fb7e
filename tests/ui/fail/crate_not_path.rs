use mcp_analytics::mcp_tool;

#[mcp_tool(crate = 5)]
fn add(a: u8, b: u8) -> u8 {
    a + b
}

fn main() {
    let _ = add(1, 2);
}
