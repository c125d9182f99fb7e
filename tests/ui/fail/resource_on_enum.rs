use mcp_analytics::mcp_resource;

#[mcp_resource]
enum Resource {
    File,
}

fn main() {
    let _ = Resource::File;
}
