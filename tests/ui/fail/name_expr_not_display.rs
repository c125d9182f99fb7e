use mcp_analytics::mcp_resource;

struct Uri {
    path: String,
}

#[mcp_resource(name = uri)]
fn read(uri: &Uri) -> String {
    uri.path.clone()
}

fn main() {
    let _ = read(&Uri {
        path: "file:///a".to_owned(),
    });
}
