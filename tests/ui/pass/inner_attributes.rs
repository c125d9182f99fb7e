#![deny(warnings)]
#![forbid(unsafe_code)]

//! Inner attributes at the top of an instrumented body, sync and `async`.

use mcp_analytics::mcp_tool;

#[mcp_tool]
fn add(a: u8, b: u8) -> u8 {
    #![allow(unused_variables)]
    let unused = 1;
    a + b
}

#[mcp_tool]
async fn add_later(a: u8, b: u8) -> u8 {
    #![allow(unused_variables)]
    let unused = 1;
    a + b
}

fn main() {
    let before = mcp_analytics::stats().enqueued;
    assert_eq!(add(1, 2), 3);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    assert_eq!(runtime.block_on(add_later(2, 3)), 5);
    assert_eq!(mcp_analytics::stats().enqueued - before, 2);
}
