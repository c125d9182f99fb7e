#![deny(warnings)]
#![forbid(unsafe_code)]

//! `self: Arc<Self>` receivers, sync and `async`.

use std::sync::Arc;

use mcp_analytics::mcp_tool;

struct Server {
    name: String,
}

impl Server {
    #[mcp_tool]
    fn name(self: Arc<Self>) -> String {
        self.name.clone()
    }

    #[mcp_tool]
    async fn name_later(self: Arc<Self>) -> usize {
        tokio::task::yield_now().await;
        self.name.len()
    }
}

fn main() {
    let server = Arc::new(Server {
        name: "demo".to_owned(),
    });
    let before = mcp_analytics::stats().enqueued;
    assert_eq!(Arc::clone(&server).name(), "demo");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    assert_eq!(runtime.block_on(Arc::clone(&server).name_later()), 4);
    // The method consumed its `Arc`, and the future dropped it.
    assert_eq!(Arc::strong_count(&server), 1);
    assert_eq!(mcp_analytics::stats().enqueued - before, 2);
}
