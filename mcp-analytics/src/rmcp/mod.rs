//! rmcp, the official Rust MCP SDK (feature `rmcp`): one wrapper that records every request a
//! server serves, [`instrument!`]; and, for the attributes, failed tool results and what rmcp's
//! request types say of their request.
//!
//! ```
//! use rmcp::{ServerHandler, model::ServerConfig};
//!
//! #[derive(Clone)]
//! struct Server;
//!
//! impl ServerHandler for Server {
//!     fn get_info(&self) -> ServerConfig {
//!         ServerConfig::default()
//!     }
//! }
//!
//! let _analytics = mcp_analytics::init();
//! let server = mcp_analytics::rmcp::instrument!(Server);
//! // Serve `server` as you would `Server`: `server.serve(rmcp::transport::stdio())`, or
//! // `StreamableHttpService::new(move || Ok(server.clone()), ..)`.
//! # drop(server);
//! ```

mod agent;
mod connection;
mod facts;
mod handler;
mod listing;
mod server;
mod settings;
pub(crate) mod sites;
mod spanning;

use std::fmt;

use rmcp::handler::server::tool::Extension;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, GetPromptRequestParams,
    InitializeRequestParams, ReadResourceRequestParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, Peer, RoleServer};

use crate::rows::outcome::CallOutcome;
use crate::rows::request::{ClientInfo, Origin, RequestFacts};
use crate::rows::session::SessionId;

pub use server::Instrumented;
pub use settings::RequestInfo;

/// Wraps an rmcp server (any `ServerHandler`) so that every request it serves is recorded:
/// `mcp_analytics::rmcp::instrument!(server)` is an [`Instrumented`] server, served in its
/// place. A macro, so that the rows carry your crate's name and version, read where you write
/// it, as the attributes do.
///
/// ```
/// use std::sync::Arc;
///
/// use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
/// use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
/// use rmcp::{ServerHandler, model::ServerConfig};
///
/// #[derive(Clone)]
/// struct Server;
///
/// impl ServerHandler for Server {
///     fn get_info(&self) -> ServerConfig {
///         ServerConfig::default()
///     }
/// }
///
/// // rmcp makes one server per session: wrap each.
/// let service = StreamableHttpService::new(
///     || Ok(mcp_analytics::rmcp::instrument!(Server)),
///     Arc::new(LocalSessionManager::default()),
///     StreamableHttpServerConfig::default(),
/// );
/// # drop(service);
/// ```
#[doc(inline)]
pub use crate::__rmcp_instrument as instrument;

#[doc(hidden)]
#[macro_export]
macro_rules! __rmcp_instrument {
    ($server:expr $(,)?) => {{
        static SITES: $crate::__private::ServerSites = $crate::__private::ServerSites::new(
            ::core::env!("CARGO_PKG_NAME"),
            ::core::env!("CARGO_PKG_VERSION"),
        );
        $crate::rmcp::Instrumented::__new($server, &SITES)
    }};
}

/// A tool result with `is_error: Some(true)` is a failed call; its text content is the error.
impl CallOutcome for CallToolResult {
    fn is_error(&self) -> bool {
        self.is_error == Some(true)
    }

    fn fmt_error(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut texts = self.content.iter().filter_map(|block| block.as_text());
        if let Some(first) = texts.next() {
            f.write_str(&first.text)?;
        }
        for text in texts {
            f.write_str("\n")?;
            f.write_str(&text.text)?;
        }
        Ok(())
    }
}

/// What `ServerHandler::call_tool` returns: failed when the completed result says so.
impl CallOutcome for CallToolResponse {
    fn is_error(&self) -> bool {
        matches!(self, CallToolResponse::Complete(result) if result.is_error())
    }

    fn fmt_error(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallToolResponse::Complete(result) => result.fmt_error(f),
            _ => Ok(()),
        }
    }
}

/// An `ErrorData` returned as the value (not in a `Result`) is a failed call too.
impl CallOutcome for ErrorData {
    fn is_error(&self) -> bool {
        true
    }

    fn fmt_error(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl ClientInfo for InitializeRequestParams {
    fn name(&self) -> &str {
        &self.client_info.name
    }

    fn version(&self) -> &str {
        &self.client_info.version
    }
}

/// The context says all: see `facts` for the rules.
impl RequestFacts for RequestContext<RoleServer> {
    fn session(&self) -> Option<SessionId> {
        facts::session(facts::Incoming::from(self).parts())
    }

    fn origin(&self) -> Option<Origin> {
        Some(facts::origin(self))
    }
}

impl RequestFacts for Peer<RoleServer> {
    fn origin(&self) -> Option<Origin> {
        facts::peer_origin(self)
    }
}

impl RequestFacts for http::request::Parts {
    fn session(&self) -> Option<SessionId> {
        Some(facts::http_session(self))
    }
}

impl RequestFacts for Extension<http::request::Parts> {
    fn session(&self) -> Option<SessionId> {
        self.0.session()
    }
}

impl RequestFacts for ReadResourceRequestParams {
    fn handler_name(&self) -> Option<&str> {
        Some(&self.uri)
    }
}

impl RequestFacts for GetPromptRequestParams {
    fn handler_name(&self) -> Option<&str> {
        Some(&self.name)
    }
}

impl RequestFacts for CallToolRequestParams {
    fn handler_name(&self) -> Option<&str> {
        Some(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::outcome::ErrorText;
    use rmcp::model::ContentBlock;

    #[test]
    fn error_results_are_failures_with_their_text() {
        let failed = CallToolResult::error(vec![
            ContentBlock::text("no such city"),
            ContentBlock::text("try another"),
        ]);
        assert!(failed.is_error());
        assert_eq!(ErrorText(&failed).to_string(), "no such city\ntry another");
        assert!(!CallToolResult::success(vec![ContentBlock::text("ok")]).is_error());
    }

    #[test]
    fn the_session_is_the_mcp_session_id_header() {
        let (mut parts, ()) = http::Request::new(()).into_parts();
        assert!(parts.session().unwrap().is_none_session());
        parts
            .headers
            .insert("Mcp-Session-Id", http::HeaderValue::from_static("abc-123"));
        assert_eq!(parts.session().unwrap().as_str(), "abc-123");
        assert_eq!(Extension(parts).session().unwrap().as_str(), "abc-123");
    }

    #[test]
    fn request_parameters_name_their_handler() {
        let read = ReadResourceRequestParams::new("file:///a.txt");
        assert_eq!(read.handler_name(), Some("file:///a.txt"));
        let prompt = GetPromptRequestParams::new("greet");
        assert_eq!(prompt.handler_name(), Some("greet"));
    }
}
