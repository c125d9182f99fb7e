#![deny(warnings)]
#![forbid(unsafe_code)]

//! By-value `self` receivers (plain and `mut self`), sync and `async`.

use mcp_analytics::mcp_tool;

struct Request {
    words: Vec<String>,
}

impl Request {
    #[mcp_tool]
    fn into_words(self) -> Vec<String> {
        self.words
    }

    #[mcp_tool]
    fn sorted(mut self) -> Vec<String> {
        self.words.sort();
        self.words
    }

    #[mcp_tool]
    async fn count(self) -> usize {
        tokio::task::yield_now().await;
        self.words.len()
    }
}

fn request() -> Request {
    Request {
        words: vec!["b".to_owned(), "a".to_owned()],
    }
}

fn main() {
    let before = mcp_analytics::stats().enqueued;
    assert_eq!(request().into_words(), ["b", "a"]);
    assert_eq!(request().sorted(), ["a", "b"]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    assert_eq!(runtime.block_on(request().count()), 2);
    assert_eq!(mcp_analytics::stats().enqueued - before, 3);
}
