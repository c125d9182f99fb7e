#![deny(warnings)]
#![forbid(unsafe_code)]

//! A trait method with a default body (the attribute has a body to instrument), sync and
//! `async`, called through an implementor that keeps the default.

use mcp_analytics::mcp_tool;

trait Tool {
    fn base(&self) -> u32;

    #[mcp_tool]
    fn doubled(&self) -> u32 {
        self.base() * 2
    }

    #[mcp_tool]
    async fn tripled(&self) -> u32 {
        self.base() * 3
    }
}

struct Three;

impl Tool for Three {
    fn base(&self) -> u32 {
        3
    }
}

fn main() {
    let before = mcp_analytics::stats().enqueued;
    assert_eq!(Three.doubled(), 6);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    assert_eq!(runtime.block_on(Three.tripled()), 9);
    assert_eq!(mcp_analytics::stats().enqueued - before, 2);
}
