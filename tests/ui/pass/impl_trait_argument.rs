#![deny(warnings)]
#![forbid(unsafe_code)]

//! `impl Trait` in argument position, sync and `async`, on free functions and methods.

use std::fmt::Display;

use mcp_analytics::mcp_tool;

#[mcp_tool]
fn describe(value: impl Display, unit: impl AsRef<str>) -> String {
    format!("{value} {}", unit.as_ref())
}

#[mcp_tool]
fn total(values: impl IntoIterator<Item = u32>) -> u32 {
    values.into_iter().sum()
}

#[mcp_tool]
async fn shout(text: impl Into<String> + Send) -> String {
    tokio::task::yield_now().await;
    text.into().to_uppercase()
}

struct Formatter;

impl Formatter {
    #[mcp_tool]
    fn apply(&self, value: u32, f: impl Fn(u32) -> u32) -> u32 {
        f(value)
    }
}

fn main() {
    let before = mcp_analytics::stats().enqueued;
    assert_eq!(describe(3, "m"), "3 m");
    assert_eq!(describe("x", String::from("y")), "x y");
    assert_eq!(total(vec![1, 2, 3]), 6);
    assert_eq!(Formatter.apply(2, |v| v * 10), 20);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    assert_eq!(runtime.block_on(shout("hi")), "HI");
    assert_eq!(mcp_analytics::stats().enqueued - before, 5);
}
