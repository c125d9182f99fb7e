#![deny(warnings)]
#![forbid(unsafe_code)]

//! `name = <expr>` computed from the arguments on entry: a bare argument, `format!`, a method
//! call, a constant and a field of `self`; the argument is still usable (moved) in the body.

use mcp_analytics::{mcp_prompt, mcp_resource, mcp_tool};

const PREFIX: &str = "tool";

#[mcp_resource(name = uri)]
fn read(uri: &str) -> Result<String, String> {
    Err(format!("no resource at {uri}"))
}

#[mcp_resource(name = format!("res:{}", id))]
fn by_id(id: u64) -> u64 {
    id * 2
}

#[mcp_resource(name = uri)]
fn read_owned(uri: String) -> String {
    // `uri` was only borrowed for the name: the body still owns it.
    uri
}

#[mcp_prompt(name = template.to_lowercase())]
async fn render(template: String, value: u32) -> String {
    tokio::task::yield_now().await;
    format!("{template}: {value}")
}

#[mcp_tool(name = PREFIX)]
fn constant() -> u8 {
    1
}

#[mcp_tool(name = format!("{PREFIX}-{n}"))]
async fn numbered(n: u32) -> u32 {
    n
}

struct Server {
    tool_name: String,
}

impl Server {
    #[mcp_tool(name = self.tool_name)]
    fn call(&self, input: u32) -> u32 {
        input + 1
    }

    #[mcp_tool(name = &self.tool_name)]
    async fn call_later(&mut self, input: u32) -> u32 {
        tokio::task::yield_now().await;
        self.tool_name.push('!');
        input + 2
    }
}

fn main() {
    let before = mcp_analytics::stats().enqueued;
    assert_eq!(
        read("file:///x"),
        Err("no resource at file:///x".to_owned())
    );
    assert_eq!(by_id(21), 42);
    assert_eq!(read_owned("file:///y".to_owned()), "file:///y");
    assert_eq!(constant(), 1);
    let mut server = Server {
        tool_name: "dynamic".to_owned(),
    };
    assert_eq!(server.call(1), 2);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        assert_eq!(render("Greeting".to_owned(), 3).await, "Greeting: 3");
        assert_eq!(numbered(5).await, 5);
        assert_eq!(server.call_later(1).await, 3);
    });
    assert_eq!(server.tool_name, "dynamic!");
    assert_eq!(mcp_analytics::stats().enqueued - before, 8);
}
