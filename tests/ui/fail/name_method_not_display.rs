use std::path::{Path, PathBuf};

use mcp_analytics::mcp_resource;

struct Request {
    path: PathBuf,
}

impl Request {
    fn path(&self) -> &Path {
        &self.path
    }
}

// The error should cover the whole expression `request.path()`.
#[mcp_resource(name = request.path())]
fn read(request: Request) -> usize {
    request.path.as_os_str().len()
}

fn main() {
    let _ = read(Request {
        path: PathBuf::from("/a"),
    });
}
