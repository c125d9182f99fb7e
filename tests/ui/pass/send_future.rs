#![deny(warnings)]
#![forbid(unsafe_code)]

//! The future of an instrumented `async fn` (or returned `async` block) is `Send` when what it
//! captures is, and `'static` when it borrows nothing: it can be spawned on a multi-threaded
//! runtime, with `name` and `session` given.

use std::future::Future;
use std::sync::Arc;

use mcp_analytics::{mcp_resource, mcp_tool};

fn assert_send<T: Send>(_: &T) {}

#[mcp_tool]
async fn add(a: u64, b: u64) -> Result<u64, String> {
    tokio::task::yield_now().await;
    a.checked_add(b).ok_or_else(|| "overflow".to_owned())
}

#[mcp_resource(name = uri, session = session)]
async fn read(uri: String, session: String) -> String {
    tokio::task::yield_now().await;
    format!("{uri}@{session}")
}

struct Server {
    hits: std::sync::atomic::AtomicU32,
}

impl Server {
    #[mcp_tool(name = format!("hit-{}", n))]
    async fn hit(&self, n: u32) -> u32 {
        tokio::task::yield_now().await;
        self.hits.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n
    }

    #[mcp_tool]
    async fn hit_owned(self: Arc<Self>) -> u32 {
        tokio::task::yield_now().await;
        self.hits.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[mcp_tool]
fn later(n: u32) -> impl Future<Output = u32> + Send {
    async move {
        tokio::task::yield_now().await;
        n
    }
}

fn main() {
    let server = Arc::new(Server {
        hits: std::sync::atomic::AtomicU32::new(0),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("a runtime");
    let before = mcp_analytics::stats().enqueued;

    let add_future = add(1, 2);
    assert_send(&add_future);
    let read_future = read("file:///a".to_owned(), "s-1".to_owned());
    assert_send(&read_future);
    let hit_future = server.hit(2);
    assert_send(&hit_future);
    let later_future = later(5);
    assert_send(&later_future);

    runtime.block_on(async {
        assert_eq!(tokio::spawn(add_future).await.unwrap(), Ok(3));
        assert_eq!(tokio::spawn(read_future).await.unwrap(), "file:///a@s-1");
        assert_eq!(tokio::spawn(later_future).await.unwrap(), 5);
        assert_eq!(hit_future.await, 2);
        let owned = tokio::spawn(Arc::clone(&server).hit_owned());
        assert_eq!(owned.await.unwrap(), 2);
    });
    assert_eq!(mcp_analytics::stats().enqueued - before, 5);
}
