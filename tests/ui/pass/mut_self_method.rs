#![deny(warnings)]
#![forbid(unsafe_code)]

//! `&mut self` methods, sync and `async`.

use mcp_analytics::mcp_tool;

#[derive(Default)]
struct Counter {
    count: u64,
}

impl Counter {
    #[mcp_tool]
    fn increment(&mut self, by: u64) -> u64 {
        self.count += by;
        self.count
    }

    #[mcp_tool]
    fn reset(&mut self) {
        self.count = 0;
    }

    #[mcp_tool]
    async fn increment_later(&mut self) -> u64 {
        tokio::task::yield_now().await;
        self.count += 1;
        self.count
    }
}

fn main() {
    let mut counter = Counter::default();
    let before = mcp_analytics::stats().enqueued;
    assert_eq!(counter.increment(2), 2);
    assert_eq!(counter.increment(3), 5);
    counter.reset();
    assert_eq!(counter.count, 0);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    assert_eq!(runtime.block_on(counter.increment_later()), 1);
    assert_eq!(mcp_analytics::stats().enqueued - before, 4);
}
