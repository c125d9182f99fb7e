use mcp_analytics::mcp_resource;

#[mcp_resource("file://config")]
fn config() -> &'static str {
    "[server]"
}

fn main() {
    let _ = config();
}
