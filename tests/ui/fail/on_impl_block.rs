use mcp_analytics::mcp_tool;

struct Server;

#[mcp_tool]
impl Server {
    fn add(&self, a: u8, b: u8) -> u8 {
        a + b
    }
}

fn main() {
    let _ = Server.add(1, 2);
}
