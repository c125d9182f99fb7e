#![deny(warnings)]
#![forbid(unsafe_code)]

//! A free, non-`async` function, with and without a return value.

use mcp_analytics::{mcp_prompt, mcp_resource, mcp_tool};

#[mcp_tool]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[mcp_resource]
fn read(uri: &str) -> String {
    format!("contents of {uri}")
}

#[mcp_prompt]
fn greeting(name: String) -> String {
    format!("Say hello to {name}.")
}

#[mcp_tool]
fn log(line: &str) {
    assert!(!line.is_empty());
}

#[mcp_analytics::mcp_tool()]
fn no_arguments() -> u8 {
    7
}

fn main() {
    let before = mcp_analytics::stats().enqueued;
    assert_eq!(add(1, 2), 3);
    assert_eq!(read("file:///a"), "contents of file:///a");
    assert_eq!(greeting("Ann".to_owned()), "Say hello to Ann.");
    log("hello");
    assert_eq!(no_arguments(), 7);
    assert_eq!(mcp_analytics::stats().enqueued - before, 5);
}
