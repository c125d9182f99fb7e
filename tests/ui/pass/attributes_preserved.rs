#![deny(warnings)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

//! Doc comments and other attributes (`#[inline]`, `#[must_use]`, `#[doc = "..."]`,
//! `#[allow]`, `#[cfg]`) stay on the instrumented function, before or after
//! ours. Under `#![deny(missing_docs)]` the public functions compile only if their docs were
//! kept; `#[must_use]` results are used, as the lint would otherwise demand.

use mcp_analytics::{mcp_prompt, mcp_tool};

/// Adds two numbers.
#[mcp_tool]
#[inline]
#[must_use]
pub fn add(a: u32, b: u32) -> u32 {
    a + b
}

#[doc = "Multiplies two numbers."]
#[must_use = "the product is the point"]
#[mcp_tool(name = "mul")]
#[inline(always)]
pub fn mul(a: u32, b: u32) -> u32 {
    a * b
}

/// A prompt whose argument is unused on purpose.
#[mcp_prompt]
#[allow(unused_variables)]
pub async fn prompt(ignored: u32) -> &'static str {
    "prompt"
}

/// Exists only when the `cfg` holds.
#[mcp_tool]
#[cfg(not(any()))]
pub fn present() -> bool {
    true
}

/// Never compiled: `cfg` removes it, attribute and all.
#[cfg(any())]
#[mcp_tool]
pub fn absent() -> bool {
    compile_error!("this function must not be compiled")
}

fn main() {
    let before = mcp_analytics::stats().enqueued;
    assert_eq!(add(1, 2), 3);
    assert_eq!(mul(2, 3), 6);
    assert!(present());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    assert_eq!(runtime.block_on(prompt(1)), "prompt");
    assert_eq!(mcp_analytics::stats().enqueued - before, 4);
}
