#![deny(warnings)]
#![forbid(unsafe_code)]

//! `Result<T, E>` where `E` does not implement `Display` (the error's type name stands for the
//! text), sync and `async`, including a unit error and a generic one.

use mcp_analytics::mcp_tool;

#[derive(Debug, PartialEq)]
struct Opaque {
    code: u8,
}

#[mcp_tool]
fn check(code: u8) -> Result<u8, Opaque> {
    if code == 0 {
        Ok(code)
    } else {
        Err(Opaque { code })
    }
}

#[mcp_tool]
fn unit_error(ok: bool) -> Result<(), ()> {
    if ok { Ok(()) } else { Err(()) }
}

#[mcp_tool]
fn generic<E>(error: Option<E>) -> Result<&'static str, E> {
    match error {
        Some(error) => Err(error),
        None => Ok("fine"),
    }
}

#[mcp_tool]
async fn check_later(code: u8) -> Result<u8, Vec<Opaque>> {
    tokio::task::yield_now().await;
    if code == 0 {
        return Ok(0);
    }
    Err(vec![Opaque { code }])
}

fn main() {
    let before = mcp_analytics::stats().enqueued;
    assert_eq!(check(0), Ok(0));
    assert_eq!(check(3), Err(Opaque { code: 3 }));
    assert_eq!(unit_error(false), Err(()));
    assert_eq!(generic::<Opaque>(None), Ok("fine"));
    assert_eq!(generic(Some(Opaque { code: 1 })), Err(Opaque { code: 1 }));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    assert_eq!(
        runtime.block_on(check_later(2)),
        Err(vec![Opaque { code: 2 }])
    );
    assert_eq!(mcp_analytics::stats().enqueued - before, 6);
}
