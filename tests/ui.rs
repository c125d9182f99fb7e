//! Compile-time tests of the attribute macros `#[mcp_tool]`, `#[mcp_resource]` and
//! `#[mcp_prompt]`, run with [trybuild](https://docs.rs/trybuild).
//!
//! - `tests/ui/pass/*.rs`: one file per supported signature shape (sync and `async`, methods,
//!   generics, lifetimes, `impl Trait`, returned futures, async-trait, the `name`, `session` and
//!   `crate` arguments, ...). Each must compile under `#![deny(warnings)]`, so the generated
//!   code may not warn either, and each `main` calls the instrumented functions and checks their
//!   results and that one event per call was recorded. A pass case whose first line is a
//!   `// KNOWN BUG:` comment reproduces a bug of the macros and fails until it is fixed.
//! - `tests/ui/fail/*.rs`: one file per misuse, each with the exact compiler output checked in
//!   beside it (`.stderr`): the message must say what to write instead and point at the token to
//!   change.
//!
//! Run with `cargo test --test ui`. After changing a message on purpose, regenerate the
//! expected output with `TRYBUILD=overwrite cargo test --test ui` and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
