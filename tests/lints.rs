//! Generated code is clean in the strictest crates: this file denies warnings, forbids unsafe
//! code and warns on clippy's pedantic lints, and `.ci/run` runs clippy with `-D warnings` over
//! it. Any lint our expansion triggers (and not the user's own code) fails CI.

#![deny(warnings)]
#![forbid(unsafe_code)]
#![warn(clippy::pedantic)]

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use mcp_analytics::{mcp_prompt, mcp_resource, mcp_tool};

/// A tool.
#[mcp_tool]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

/// A tool with a computed name.
#[mcp_tool(name = format!("op-{op}"))]
fn apply(op: &str, value: i64) -> Result<i64, String> {
    if op == "neg" {
        return Ok(-value);
    }
    Err(format!("unknown op {op}"))
}

/// An async tool with a session from an argument.
#[mcp_tool(session = session)]
async fn echo(session: &str, text: String) -> String {
    let _ = session;
    text
}

/// A resource named by its URI.
#[mcp_resource(name = uri)]
fn read(uri: &str) -> Option<String> {
    uri.strip_prefix("mem://").map(str::to_owned)
}

/// A prompt returning `impl Display`.
#[mcp_prompt]
fn greet(name: &str) -> impl Display + '_ {
    name
}

struct Server {
    prefix: String,
}

impl Server {
    /// The boxed-future shape rmcp's `#[tool]` generates.
    #[mcp_tool]
    fn boxed(
        &self,
        text: String,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>> {
        Box::pin(async move { Ok(format!("{}{text}", self.prefix)) })
    }

    /// An `async fn` method on `Arc<Self>`.
    #[mcp_tool]
    async fn shared(self: Arc<Self>) -> usize {
        self.prefix.len()
    }

    /// A generic method.
    #[mcp_tool]
    fn describe<T: Display>(&self, value: &T) -> String {
        format!("{}{value}", self.prefix)
    }
}

#[test]
fn instrumented_functions_still_work() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(add(1, 2), 3);
    assert_eq!(apply("neg", 2), Ok(-2));
    assert!(apply("sqrt", 2).is_err());
    assert_eq!(runtime.block_on(echo("s", "hi".to_owned())), "hi");
    assert_eq!(read("mem://x").as_deref(), Some("x"));
    assert_eq!(greet("ada").to_string(), "ada");
    let server = Arc::new(Server {
        prefix: "> ".to_owned(),
    });
    assert_eq!(
        runtime.block_on(server.boxed("a".to_owned())).unwrap(),
        "> a"
    );
    assert_eq!(server.describe(&1), "> 1");
    assert_eq!(runtime.block_on(server.shared()), 2);
}
