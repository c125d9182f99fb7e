#![deny(warnings)]
#![forbid(unsafe_code)]

//! Patterns in argument position: tuple-struct destructuring, tuples, `mut` bindings, `_`,
//! struct patterns and references, sync and `async`.

use mcp_analytics::mcp_tool;

struct Wrapper<T>(T);

struct Point {
    x: i32,
    y: i32,
}

#[mcp_tool]
fn unwrap<T>(Wrapper(inner): Wrapper<T>) -> T {
    inner
}

#[mcp_tool]
fn swap((a, b): (u8, String)) -> (String, u8) {
    (b, a)
}

#[mcp_tool]
fn countdown(mut n: u32, mut log: Vec<u32>) -> Vec<u32> {
    while n > 0 {
        log.push(n);
        n -= 1;
    }
    log
}

#[mcp_tool]
fn ignored(_: u8, _unused: &str, Point { x, y: _ }: Point) -> i32 {
    x
}

#[mcp_tool]
fn deref(&value: &u64, [first, .., last]: [u8; 4]) -> u64 {
    value + u64::from(first) + u64::from(last)
}

#[mcp_tool]
async fn sum_pairs(mut total: i32, Wrapper((a, b)): Wrapper<(i32, i32)>) -> i32 {
    tokio::task::yield_now().await;
    total += a + b;
    total
}

fn main() {
    let before = mcp_analytics::stats().enqueued;
    assert_eq!(unwrap(Wrapper("inner")), "inner");
    assert_eq!(swap((1, "b".to_owned())), ("b".to_owned(), 1));
    assert_eq!(countdown(3, vec![9]), [9, 3, 2, 1]);
    assert_eq!(ignored(0, "", Point { x: 4, y: 5 }), 4);
    assert_eq!(deref(&10, [1, 2, 3, 4]), 15);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    assert_eq!(runtime.block_on(sum_pairs(1, Wrapper((2, 3)))), 6);
    assert_eq!(mcp_analytics::stats().enqueued - before, 6);
}
