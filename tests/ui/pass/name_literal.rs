#![deny(warnings)]
#![forbid(unsafe_code)]

//! `name = "literal"` on each of the three attributes, sync and `async`, including a raw
//! identifier as the function's name and a name that is not an identifier.

use mcp_analytics::{mcp_prompt, mcp_resource, mcp_tool};

#[mcp_tool(name = "run-select-query")]
fn query(sql: &str) -> String {
    format!("ran {sql}")
}

#[mcp_resource(name = "file://config.toml")]
fn config() -> &'static str {
    "[server]"
}

// A trailing comma is accepted (kept from rustfmt, which would remove it).
#[rustfmt::skip]
#[mcp_prompt(name = "code review",)]
async fn review(language: &str) -> String {
    format!("Review this {language} code.")
}

#[mcp_tool(name = r"raw\name")]
fn r#match(a: u8) -> u8 {
    a
}

#[mcp_tool]
fn r#type() -> &'static str {
    "raw identifier, default name"
}

fn main() {
    let before = mcp_analytics::stats().enqueued;
    assert_eq!(query("select 1"), "ran select 1");
    assert_eq!(config(), "[server]");
    assert_eq!(r#match(3), 3);
    assert_eq!(r#type(), "raw identifier, default name");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    assert_eq!(runtime.block_on(review("Rust")), "Review this Rust code.");
    assert_eq!(mcp_analytics::stats().enqueued - before, 5);
}
