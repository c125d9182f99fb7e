#![deny(warnings)]
#![forbid(unsafe_code)]

//! A `&self` method returning `Pin<Box<dyn Future<Output = ..> + Send + '_>>` whose body ends
//! in `Box::pin(async move { .. })`: the shape rmcp's `#[tool]` generates.

use std::future::Future;
use std::pin::Pin;

use mcp_analytics::mcp_tool;

struct Server {
    prefix: String,
}

impl Server {
    #[mcp_tool]
    fn echo(
        &self,
        text: String,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            if text.is_empty() {
                return Err("empty".to_owned());
            }
            Ok(format!("{}{text}", self.prefix))
        })
    }

    #[mcp_tool(name = "len")]
    fn len(
        &self,
        text: String,
    ) -> std::pin::Pin<std::boxed::Box<dyn std::future::Future<Output = usize> + Send + 'static>>
    {
        let extra = self.prefix.len();
        std::boxed::Box::pin(async move {
            tokio::task::yield_now().await;
            text.len() + extra
        })
    }
}

fn main() {
    let server = Server {
        prefix: "> ".to_owned(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let before = mcp_analytics::stats().enqueued;
    let future = server.echo("hi".to_owned());
    assert_eq!(mcp_analytics::stats().enqueued - before, 0);
    assert_eq!(runtime.block_on(future), Ok("> hi".to_owned()));
    assert_eq!(
        runtime.block_on(server.echo(String::new())),
        Err("empty".to_owned())
    );
    assert_eq!(runtime.block_on(server.len("abc".to_owned())), 5);
    assert_eq!(mcp_analytics::stats().enqueued - before, 3);
}
