#![deny(warnings)]
#![forbid(unsafe_code)]

//! `crate = path` and `crate = "path"` when the runtime is reached through a re-export, from the
//! crate root and from a nested module.

mod reexport {
    pub use mcp_analytics as analytics;
}

use reexport::analytics::{mcp_prompt, mcp_resource, mcp_tool};

#[mcp_tool(crate = reexport::analytics)]
fn add(a: u32, b: u32) -> u32 {
    a + b
}

#[mcp_resource(crate = "reexport::analytics", name = uri)]
async fn read(uri: &str) -> String {
    tokio::task::yield_now().await;
    uri.to_uppercase()
}

#[mcp_prompt(name = "p", crate = crate::reexport::analytics)]
fn prompt() -> Result<&'static str, String> {
    Ok("prompt")
}

mod nested {
    pub struct Server;

    impl Server {
        #[crate::reexport::analytics::mcp_tool(crate = crate::reexport::analytics)]
        pub fn call(&self) -> u8 {
            1
        }

        #[crate::reexport::analytics::mcp_tool(crate = "super::reexport::analytics")]
        pub async fn call_later(&self) -> u8 {
            2
        }
    }
}

fn main() {
    let before = mcp_analytics::stats().enqueued;
    assert_eq!(add(1, 2), 3);
    assert_eq!(prompt(), Ok("prompt"));
    assert_eq!(nested::Server.call(), 1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        assert_eq!(read("file:///a").await, "FILE:///A");
        assert_eq!(nested::Server.call_later().await, 2);
    });
    assert_eq!(mcp_analytics::stats().enqueued - before, 5);
}
