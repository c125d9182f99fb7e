#![deny(warnings)]
#![forbid(unsafe_code)]

//! Functions whose body (or returned `async` block) is written on one line.

use std::future::Future;
use std::pin::Pin;

use mcp_analytics::{mcp_prompt, mcp_tool};

#[rustfmt::skip]
#[mcp_tool]
fn one() -> u8 { 1 }

#[rustfmt::skip]
#[mcp_tool]
async fn two() -> u8 { 2 }

#[mcp_tool]
fn three() -> impl Future<Output = u8> {
    async { 3 }
}

#[rustfmt::skip]
#[mcp_tool]
fn five() -> impl Future<Output = u8> { async { 5 } }

struct Server;

impl Server {
    #[mcp_tool]
    fn four(&self) -> Pin<Box<dyn Future<Output = u8> + Send + '_>> {
        Box::pin(async move { 4 })
    }
}

#[async_trait::async_trait]
trait Prompts {
    async fn unit(&self);
}

#[async_trait::async_trait]
impl Prompts for Server {
    #[mcp_prompt]
    async fn unit(&self) {}
}

fn main() {
    let before = mcp_analytics::stats().enqueued;
    assert_eq!(one(), 1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        assert_eq!(two().await, 2);
        assert_eq!(three().await, 3);
        assert_eq!(Server.four().await, 4);
        Server.unit().await;
        assert_eq!(five().await, 5);
    });
    assert_eq!(mcp_analytics::stats().enqueued - before, 6);
}
