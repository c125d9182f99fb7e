#![deny(warnings)]
#![forbid(unsafe_code)]

//! `fields(..)` and `user = <expr>`: typed values read by reference from arguments and `self`,
//! `%` and `?`, raw, quoted and dotted names, on methods (sync and `async`) and generic free
//! functions, with `user` written before or after `fields`.

use mcp_analytics::{mcp_prompt, mcp_tool};

#[derive(Debug)]
struct Args {
    region: String,
    seats: u32,
}

struct Server {
    tenant: &'static str,
}

impl Server {
    #[mcp_tool(user = self.tenant, fields(tenant = self.tenant, region = args.region, seats = args.seats, all = ?args))]
    async fn call(&self, args: Args) -> String {
        tokio::task::yield_now().await;
        args.region
    }

    #[mcp_prompt(fields(r#type = "x", "with space" = 1, a.b.c = 2.5, ok = true,))]
    fn prompt(&mut self) -> &'static str {
        self.tenant
    }
}

#[mcp_tool(fields(n = n, text = text, owned = owned, cow = cow), user = n)]
fn generic<T: Copy>(n: i64, text: &str, owned: String, cow: std::borrow::Cow<'_, str>, _t: T) -> String {
    format!("{owned}{text}{cow}")
}

fn main() {
    let before = mcp_analytics::stats().enqueued;
    let mut server = Server { tenant: "acme" };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let region = runtime.block_on(server.call(Args {
        region: "eu".to_owned(),
        seats: 3,
    }));
    assert_eq!(region, "eu");
    assert_eq!(server.prompt(), "acme");
    assert_eq!(generic(1, "a", "o".to_owned(), "c".into(), ()), "oac");
    assert_eq!(mcp_analytics::stats().enqueued - before, 3);
}
