#![deny(warnings)]
#![forbid(unsafe_code)]

//! Visibility is kept: `pub(crate)`, `pub(super)`, `pub(in path)` and `pub` functions and methods
//! of a private module are callable from outside it.

mod handlers {
    use mcp_analytics::{mcp_resource, mcp_tool};

    #[mcp_tool]
    pub(crate) fn crate_visible(a: u8) -> u8 {
        a + 1
    }

    #[mcp_resource]
    pub(super) async fn super_visible(a: u8) -> u8 {
        a + 2
    }

    pub mod inner {
        #[mcp_analytics::mcp_prompt]
        pub(in crate::handlers) fn path_visible() -> u8 {
            3
        }
    }

    pub(crate) fn call_inner() -> u8 {
        inner::path_visible()
    }

    pub struct Server;

    impl Server {
        #[mcp_tool]
        pub fn public(&self) -> u8 {
            4
        }

        #[mcp_tool]
        pub(crate) fn crate_method(&self) -> u8 {
            5
        }
    }
}

fn main() {
    let before = mcp_analytics::stats().enqueued;
    assert_eq!(handlers::crate_visible(1), 2);
    assert_eq!(handlers::call_inner(), 3);
    assert_eq!(handlers::Server.public(), 4);
    assert_eq!(handlers::Server.crate_method(), 5);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    assert_eq!(runtime.block_on(handlers::super_visible(0)), 2);
    assert_eq!(mcp_analytics::stats().enqueued - before, 5);
}
