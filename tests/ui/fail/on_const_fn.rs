use mcp_analytics::mcp_tool;

#[mcp_tool]
const fn answer() -> u8 {
    42
}

fn main() {
    let _ = answer();
}
