#![deny(warnings)]
#![forbid(unsafe_code)]

//! Methods of an `#[async_trait::async_trait]` trait impl, with our attribute on the impl's
//! methods: `async-trait` turns each into a function returning
//! `Pin<Box<dyn Future + Send + '_>>` whose body ends in `Box::pin(async move { .. })`, which is
//! what our attribute then instruments. Also a `?Send` trait and a default method left alone.

use std::sync::Arc;

use async_trait::async_trait;
use mcp_analytics::{mcp_resource, mcp_tool};

#[async_trait]
trait Tools {
    async fn greet(&self, name: String) -> String;
    async fn parse(&self, text: &str) -> Result<u32, String>;
    async fn bump(&mut self) -> u32;
    async fn read(self: Arc<Self>, uri: String) -> Option<String>;
    async fn default_method(&self) -> u8 {
        0
    }
}

#[async_trait(?Send)]
trait LocalTools {
    async fn local(&self, n: u32) -> u32;
}

#[derive(Default)]
struct Server {
    count: u32,
}

#[async_trait]
impl Tools for Server {
    #[mcp_tool]
    async fn greet(&self, name: String) -> String {
        tokio::task::yield_now().await;
        format!("hello {name}")
    }

    #[mcp_tool(name = "parse-number")]
    async fn parse(&self, text: &str) -> Result<u32, String> {
        tokio::task::yield_now().await;
        if text.is_empty() {
            return Err("empty".to_owned());
        }
        let n = text.parse::<u32>().map_err(|e| e.to_string())?;
        Ok(n + self.count)
    }

    #[mcp_tool]
    async fn bump(&mut self) -> u32 {
        self.count += 1;
        self.count
    }

    #[mcp_resource(name = uri)]
    async fn read(self: Arc<Self>, uri: String) -> Option<String> {
        uri.strip_prefix("file://").map(str::to_owned)
    }
}

#[async_trait(?Send)]
impl LocalTools for Server {
    #[mcp_tool]
    async fn local(&self, n: u32) -> u32 {
        n + self.count
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let before = mcp_analytics::stats().enqueued;
    let mut server = Server::default();
    runtime.block_on(async {
        assert_eq!(server.greet("Ann".to_owned()).await, "hello Ann");
        assert_eq!(server.parse("4").await, Ok(4));
        assert_eq!(server.parse("").await, Err("empty".to_owned()));
        assert!(server.parse("x").await.is_err());
        assert_eq!(server.bump().await, 1);
        assert_eq!(server.default_method().await, 0);
        assert_eq!(server.local(1).await, 2);
    });
    let shared = Arc::new(server);
    let read = runtime.block_on(Arc::clone(&shared).read("file://a".to_owned()));
    assert_eq!(read.as_deref(), Some("a"));
    // 7 instrumented calls; `default_method` is not instrumented.
    assert_eq!(mcp_analytics::stats().enqueued - before, 7);
}
