use mcp_analytics::mcp_tool;

trait Tools {
    #[mcp_tool]
    fn add(&self, a: u8, b: u8) -> u8;
}

struct Server;

impl Tools for Server {
    fn add(&self, a: u8, b: u8) -> u8 {
        a + b
    }
}

fn main() {
    let _ = Server.add(1, 2);
}
