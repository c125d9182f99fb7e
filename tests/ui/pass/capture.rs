#![deny(warnings)]
#![forbid(unsafe_code)]

//! `capture(arguments, result)`: arguments of types that are `Serialize` and of types that are
//! not, a wrapper pattern (`Parameters(args)`), `_`-prefixed arguments, `self`; results plain,
//! in a `Result`, and of a type that is not `Serialize`; sync and `async`.

use mcp_analytics::{mcp_resource, mcp_tool};

#[derive(serde::Serialize)]
struct Query {
    text: String,
}

struct NotSerialize;

struct Wrapper<T>(T);

struct Server;

impl Server {
    #[mcp_tool(capture(arguments, result))]
    fn search(&self, query: Query, limit: u32, _context: NotSerialize, opaque: NotSerialize) -> Vec<String> {
        let _ = opaque;
        vec![query.text; limit as usize]
    }

    #[mcp_tool(capture(result, arguments))]
    async fn fallible(&self, Wrapper(count): Wrapper<u8>) -> Result<u8, String> {
        tokio::task::yield_now().await;
        count.checked_add(1).ok_or_else(|| "overflow".to_owned())
    }
}

#[mcp_resource(name = uri, capture(result))]
fn read(uri: &str) -> NotSerialize {
    let _ = uri;
    NotSerialize
}

fn main() {
    let before = mcp_analytics::stats().enqueued;
    let server = Server;
    let found = server.search(Query { text: "rust".to_owned() }, 2, NotSerialize, NotSerialize);
    assert_eq!(found.len(), 2);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    assert_eq!(runtime.block_on(server.fallible(Wrapper(1))), Ok(2));
    let _ = read("file:///a");
    assert_eq!(mcp_analytics::stats().enqueued - before, 3);
}
