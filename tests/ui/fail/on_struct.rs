use mcp_analytics::mcp_tool;

#[mcp_tool]
struct Server;

fn main() {
    let _ = Server;
}
