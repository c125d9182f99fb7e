#![deny(warnings)]
#![forbid(unsafe_code)]

//! `&self` methods, sync and `async`, including one returning a borrow of `self`.

use mcp_analytics::{mcp_resource, mcp_tool};

struct Server {
    greeting: String,
}

impl Server {
    #[mcp_tool]
    fn greet(&self, name: &str) -> String {
        format!("{}, {name}!", self.greeting)
    }

    #[mcp_resource]
    fn greeting(&self) -> &str {
        &self.greeting
    }

    #[mcp_tool]
    async fn greet_later(&self, name: String) -> String {
        tokio::task::yield_now().await;
        format!("{}, {name}!", self.greeting)
    }
}

fn main() {
    let server = Server {
        greeting: "Hello".to_owned(),
    };
    let before = mcp_analytics::stats().enqueued;
    assert_eq!(server.greet("Ann"), "Hello, Ann!");
    assert_eq!(server.greeting(), "Hello");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let later = runtime.block_on(server.greet_later("Bob".to_owned()));
    assert_eq!(later, "Hello, Bob!");
    assert_eq!(mcp_analytics::stats().enqueued - before, 3);
}
