#![deny(warnings)]
#![forbid(unsafe_code)]

//! A free `async fn`, driven by a current-thread tokio runtime; the body suspends.

use mcp_analytics::{mcp_prompt, mcp_resource, mcp_tool};

#[mcp_tool]
async fn add(a: i64, b: i64) -> Result<i64, String> {
    tokio::task::yield_now().await;
    a.checked_add(b).ok_or_else(|| "overflow".to_owned())
}

#[mcp_resource]
async fn read(uri: &str) -> String {
    tokio::task::yield_now().await;
    format!("contents of {uri}")
}

#[mcp_prompt]
async fn review(language: String) -> String {
    format!("Review this {language} code.")
}

#[mcp_tool]
async fn notify(counter: &mut u32) {
    tokio::task::yield_now().await;
    *counter += 1;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let before = mcp_analytics::stats().enqueued;
    runtime.block_on(async {
        assert_eq!(add(1, 2).await, Ok(3));
        assert_eq!(add(i64::MAX, 1).await, Err("overflow".to_owned()));
        assert_eq!(read("file:///a").await, "contents of file:///a");
        assert_eq!(review("Rust".to_owned()).await, "Review this Rust code.");
        let mut counter = 0;
        notify(&mut counter).await;
        assert_eq!(counter, 1);
    });
    assert_eq!(mcp_analytics::stats().enqueued - before, 5);
}
