#![deny(warnings)]
#![forbid(unsafe_code)]

//! A non-`async` function returning `impl Future` whose body ends in `async move { .. }` (or
//! `async { .. }`): the call is recorded when the future completes, not when it is built.

use std::future::Future;

use mcp_analytics::mcp_tool;

#[mcp_tool]
fn double(n: u32) -> impl Future<Output = u32> {
    async move {
        tokio::task::yield_now().await;
        n * 2
    }
}

#[mcp_tool]
fn parse(text: String) -> impl Future<Output = Result<u32, String>> + Send + 'static {
    let trimmed = text.trim().to_owned();
    async move {
        if trimmed.is_empty() {
            return Err("empty".to_owned());
        }
        let n = trimmed.parse::<u32>().map_err(|e| e.to_string())?;
        Ok(n)
    }
}

#[mcp_tool]
fn constant() -> impl Future<Output = &'static str> {
    async {
        tokio::task::yield_now().await;
        "constant"
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let before = mcp_analytics::stats().enqueued;
    let future = double(21);
    // Building the future records nothing: the call happens when it runs.
    assert_eq!(mcp_analytics::stats().enqueued - before, 0);
    assert_eq!(runtime.block_on(future), 42);
    assert_eq!(mcp_analytics::stats().enqueued - before, 1);
    runtime.block_on(async {
        assert_eq!(parse(" 7 ".to_owned()).await, Ok(7));
        assert_eq!(parse(" ".to_owned()).await, Err("empty".to_owned()));
        assert!(parse("x".to_owned()).await.is_err());
        assert_eq!(constant().await, "constant");
    });
    assert_eq!(mcp_analytics::stats().enqueued - before, 5);
}
