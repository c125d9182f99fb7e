#![deny(warnings)]
#![forbid(unsafe_code)]

//! A tool returning a custom type that implements `mcp_analytics::CallOutcome`, sync and
//! `async`, directly and boxed; and a type implementing both `CallOutcome` and `Display`.

use std::fmt;

use mcp_analytics::{CallOutcome, mcp_tool};

#[derive(Debug, PartialEq)]
struct Reply {
    status: u16,
    body: String,
}

impl CallOutcome for Reply {
    fn is_error(&self) -> bool {
        self.status >= 400
    }

    fn fmt_error(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.body)
    }
}

/// Uses the default `fmt_error`.
#[derive(Debug, PartialEq)]
struct Flag(bool);

impl CallOutcome for Flag {
    fn is_error(&self) -> bool {
        !self.0
    }
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "flag {}", self.0)
    }
}

#[mcp_tool]
fn fetch(path: &str) -> Reply {
    if path == "/" {
        Reply {
            status: 200,
            body: "home".to_owned(),
        }
    } else {
        Reply {
            status: 404,
            body: "no such page".to_owned(),
        }
    }
}

#[mcp_tool]
async fn fetch_later(status: u16) -> Reply {
    tokio::task::yield_now().await;
    Reply {
        status,
        body: String::new(),
    }
}

#[mcp_tool]
fn boxed(ok: bool) -> Box<Flag> {
    Box::new(Flag(ok))
}

#[mcp_tool]
fn flag(ok: bool) -> Flag {
    Flag(ok)
}

fn main() {
    let before = mcp_analytics::stats().enqueued;
    assert_eq!(fetch("/").status, 200);
    let missing = fetch("/missing");
    assert!(missing.is_error());
    assert_eq!(missing.body, "no such page");
    assert_eq!(*boxed(false), Flag(false));
    assert_eq!(flag(true).to_string(), "flag true");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    assert!(runtime.block_on(fetch_later(500)).is_error());
    assert_eq!(mcp_analytics::stats().enqueued - before, 5);
}
