#![deny(warnings)]
#![forbid(unsafe_code)]

//! `session = <expr>`: an argument, a field, an `Option` mapped to text, a `SessionId`, a
//! string literal, and together with `name`, sync and `async`.

use mcp_analytics::{mcp_prompt, mcp_resource, mcp_tool};
use mcp_analytics::session::SessionId;

#[mcp_tool(session = session_id)]
fn echo(session_id: &str, text: String) -> String {
    text
}

#[mcp_resource(name = uri, session = id)]
async fn read(id: SessionId, uri: String) -> String {
    tokio::task::yield_now().await;
    format!("{uri} for {id}")
}

#[mcp_prompt(session = session.as_deref().unwrap_or_default())]
fn prompt(session: Option<String>) -> usize {
    session.map_or(0, |s| s.len())
}

#[mcp_tool(session = "fixed-session", name = "fixed")]
fn fixed() -> bool {
    true
}

struct Connection {
    id: String,
}

impl Connection {
    #[mcp_tool(session = self.id)]
    fn ping(&self) -> &'static str {
        "pong"
    }

    #[mcp_tool(session = format!("conn-{}", self.id))]
    async fn ping_later(&self) -> &'static str {
        tokio::task::yield_now().await;
        "pong"
    }
}

fn main() {
    let before = mcp_analytics::stats().enqueued;
    assert_eq!(echo("s-1", "hi".to_owned()), "hi");
    assert_eq!(prompt(Some("abc".to_owned())), 3);
    assert_eq!(prompt(None), 0);
    assert!(fixed());
    let connection = Connection {
        id: "c-1".to_owned(),
    };
    assert_eq!(connection.ping(), "pong");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let read = read(SessionId::from("s-2"), "file:///a".to_owned()).await;
        assert_eq!(read, "file:///a for s-2");
        assert_eq!(connection.ping_later().await, "pong");
    });
    assert_eq!(mcp_analytics::stats().enqueued - before, 7);
}
