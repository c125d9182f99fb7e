#![deny(warnings)]
#![forbid(unsafe_code)]

//! Lifetime parameters with a returned reference, elided lifetimes, and both on methods and in
//! `async fn`.

use mcp_analytics::{mcp_resource, mcp_tool};

#[mcp_tool]
fn first<'a>(items: &'a [String]) -> Option<&'a str> {
    items.first().map(String::as_str)
}

#[mcp_tool]
fn trimmed(s: &str) -> &str {
    s.trim()
}

#[mcp_tool]
fn longest<'a, 'b: 'a>(a: &'a str, b: &'b str) -> &'a str {
    if b.len() > a.len() { b } else { a }
}

#[mcp_tool]
fn split_words<'s>(text: &'s str, out: &mut Vec<&'s str>) -> usize {
    out.extend(text.split_whitespace());
    out.len()
}

struct Document {
    lines: Vec<String>,
}

impl Document {
    #[mcp_resource]
    fn line(&self, index: usize) -> Option<&str> {
        self.lines.get(index).map(String::as_str)
    }

    #[mcp_resource]
    fn matching<'d, 'p>(&'d self, prefix: &'p str) -> Vec<&'d str> {
        self.lines
            .iter()
            .map(String::as_str)
            .filter(|line| line.starts_with(prefix))
            .collect()
    }
}

#[mcp_tool]
async fn first_word(text: &str) -> &str {
    tokio::task::yield_now().await;
    text.split_whitespace().next().unwrap_or("")
}

fn main() {
    let before = mcp_analytics::stats().enqueued;
    let items = vec!["x".to_owned(), "y".to_owned()];
    assert_eq!(first(&items), Some("x"));
    assert_eq!(first(&[]), None);
    assert_eq!(trimmed("  padded "), "padded");
    assert_eq!(longest("ab", "abc"), "abc");
    let mut words = Vec::new();
    assert_eq!(split_words("one two", &mut words), 2);
    assert_eq!(words, ["one", "two"]);
    let document = Document {
        lines: vec!["# title".to_owned(), "body".to_owned(), "# end".to_owned()],
    };
    assert_eq!(document.line(1), Some("body"));
    assert_eq!(document.matching("#"), ["# title", "# end"]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let text = String::from("hello world");
    assert_eq!(runtime.block_on(first_word(&text)), "hello");
    assert_eq!(mcp_analytics::stats().enqueued - before, 8);
}
