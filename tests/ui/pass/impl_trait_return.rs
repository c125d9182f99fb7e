#![deny(warnings)]
#![forbid(unsafe_code)]

//! `impl Trait` in return position: bare and nested in a `Result`, sync and `async`, and an
//! iterator borrowing `self`.

use std::fmt::Display;

use mcp_analytics::{mcp_prompt, mcp_tool};

#[mcp_tool]
fn label(n: u32) -> impl Display {
    format!("#{n}")
}

#[mcp_tool]
fn parse(text: &str) -> Result<impl Display, String> {
    let n: u32 = text.parse().map_err(|_| format!("not a number: {text}"))?;
    Ok(n * 2)
}

#[mcp_prompt]
async fn render(n: u32) -> Result<impl Display, String> {
    tokio::task::yield_now().await;
    if n == 0 {
        return Err("zero".to_owned());
    }
    Ok(format!("n = {n}"))
}

#[mcp_tool]
async fn plain(n: u32) -> impl Display {
    n + 1
}

struct Numbers(Vec<u32>);

impl Numbers {
    #[mcp_tool]
    fn evens(&self) -> impl Iterator<Item = &u32> + '_ {
        self.0.iter().filter(|n| *n % 2 == 0)
    }
}

fn main() {
    let before = mcp_analytics::stats().enqueued;
    assert_eq!(label(3).to_string(), "#3");
    assert_eq!(parse("21").map(|n| n.to_string()), Ok("42".to_owned()));
    assert_eq!(
        parse("x").map(|n| n.to_string()),
        Err("not a number: x".to_owned())
    );
    let numbers = Numbers(vec![1, 2, 3, 4]);
    assert_eq!(numbers.evens().copied().collect::<Vec<_>>(), [2, 4]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        assert_eq!(
            render(2).await.map(|s| s.to_string()),
            Ok("n = 2".to_owned())
        );
        assert_eq!(
            render(0).await.map(|s| s.to_string()),
            Err("zero".to_owned())
        );
        assert_eq!(plain(1).await.to_string(), "2");
    });
    assert_eq!(mcp_analytics::stats().enqueued - before, 7);
}
