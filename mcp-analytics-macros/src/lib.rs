//! The attribute macros of [mcp-analytics](https://docs.rs/mcp-analytics): `#[mcp_tool]`,
//! `#[mcp_resource]` and `#[mcp_prompt]`.
//!
//! Use them through the `mcp_analytics` crate, which documents them and provides what the
//! generated code calls. Each macro goes through three stages: `parse` reads the arguments and
//! the item, `valid` turns them into a checked plan (collecting every error, each spanned on
//! the offending token), and `expand` writes the instrumented function.

mod expand;
mod parse;
mod valid;

use proc_macro::TokenStream;

use crate::valid::Kind;

/// Records each call of a tool handler. See `mcp_analytics::mcp_tool`.
#[proc_macro_attribute]
pub fn mcp_tool(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::instrument(Kind::Tool, args.into(), item.into()).into()
}

/// Records each call of a resource handler. See `mcp_analytics::mcp_resource`.
#[proc_macro_attribute]
pub fn mcp_resource(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::instrument(Kind::Resource, args.into(), item.into()).into()
}

/// Records each call of a prompt handler. See `mcp_analytics::mcp_prompt`.
#[proc_macro_attribute]
pub fn mcp_prompt(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::instrument(Kind::Prompt, args.into(), item.into()).into()
}
