#![deny(warnings)]

//! `unsafe fn`, sync and as a method, whose body does its unsafe operation in an `unsafe {}`
//! block (as edition 2024's `unsafe_op_in_unsafe_fn` asks).

use mcp_analytics::mcp_tool;

/// # Safety
///
/// `index` must be in bounds.
#[mcp_tool]
unsafe fn at(items: &[u32], index: usize) -> u32 {
    // SAFETY: the caller keeps `index` in bounds.
    unsafe { *items.get_unchecked(index) }
}

/// # Safety
///
/// `bytes` must be UTF-8.
#[mcp_tool]
async unsafe fn decode(bytes: Vec<u8>) -> String {
    tokio::task::yield_now().await;
    // SAFETY: the caller promises UTF-8.
    unsafe { String::from_utf8_unchecked(bytes) }
}

struct Raw(*const u8);

impl Raw {
    /// # Safety
    ///
    /// The pointer must be valid for reads.
    #[mcp_tool]
    unsafe fn read(&self) -> u8 {
        // SAFETY: the caller keeps the pointer valid.
        unsafe { self.0.read() }
    }
}

fn main() {
    let before = mcp_analytics::stats().enqueued;
    let items = [10, 20, 30];
    // SAFETY: 1 < 3.
    assert_eq!(unsafe { at(&items, 1) }, 20);
    let byte = 7_u8;
    let raw = Raw(&byte);
    // SAFETY: `byte` outlives the call.
    assert_eq!(unsafe { raw.read() }, 7);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    // SAFETY: ASCII is UTF-8.
    let decoded = runtime.block_on(unsafe { decode(b"ok".to_vec()) });
    assert_eq!(decoded, "ok");
    assert_eq!(mcp_analytics::stats().enqueued - before, 3);
}
