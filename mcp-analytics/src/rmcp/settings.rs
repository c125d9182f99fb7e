//! What a wrapped server is told to do beyond recording every request: the callbacks that read
//! sessions and dimensions off a request, what to capture, and what to say to the agent (the
//! agent-facing options). Shared by the server's clones, which are its connections.

use std::fmt;
use std::sync::Arc;

use rmcp::model::{Extensions, MetaObject};

use super::agent;
use super::facts::Incoming;
use super::sites::ServerSites;
use crate::Dimensions;

/// Picks the session of a request from its extensions (where rmcp puts the HTTP request's parts,
/// and auth middleware its claims): see `Instrumented::session_by`.
pub(super) type SessionBy = dyn Fn(&Extensions) -> Option<String> + Send + Sync;

/// Reads a request's user and fields: see `Instrumented::dimensions_by`.
pub(super) type DimensionsBy = dyn Fn(&RequestInfo<'_>) -> Dimensions + Send + Sync;

#[derive(Clone)]
pub(super) struct Settings {
    pub(super) sites: &'static ServerSites,
    pub(super) session_by: Option<Arc<SessionBy>>,
    pub(super) dimensions_by: Option<Arc<DimensionsBy>>,
    /// Record handler calls' arguments (`tools/call`, `prompts/get`), redacted.
    pub(super) capture_arguments: bool,
    /// Record handler calls' results, redacted.
    pub(super) capture_results: bool,
    pub(super) agent: agent::Options,
}

impl Settings {
    pub(super) fn new(sites: &'static ServerSites) -> Self {
        Self {
            sites,
            session_by: None,
            dimensions_by: None,
            capture_arguments: false,
            capture_results: false,
            agent: agent::Options::default(),
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("session_by", &self.session_by.is_some())
            .field("dimensions_by", &self.dimensions_by.is_some())
            .field("capture_arguments", &self.capture_arguments)
            .field("capture_results", &self.capture_results)
            .field("agent", &self.agent)
            .finish_non_exhaustive()
    }
}

/// A request as the wrapper's callbacks see it: its method, its `_meta`, and its extensions,
/// where rmcp puts the HTTP request's `http::request::Parts` on streamable HTTP, and where
/// your auth middleware's own types end up (in the parts' extensions).
///
/// ```
/// # use rmcp::{ServerHandler, model::ServerConfig};
/// # #[derive(Clone)]
/// # struct Server;
/// # impl ServerHandler for Server {
/// #     fn get_info(&self) -> ServerConfig { ServerConfig::default() }
/// # }
/// use mcp_analytics::Dimensions;
///
/// let server = mcp_analytics::rmcp::instrument!(Server).dimensions_by(|request| {
///     let tenant = request
///         .http()
///         .and_then(|parts| parts.headers.get("x-tenant")?.to_str().ok())
///         .unwrap_or("none");
///     Dimensions::new().field("tenant", tenant).field("method", request.method())
/// });
/// # drop(server);
/// ```
pub struct RequestInfo<'a> {
    pub(super) method: &'a str,
    pub(super) incoming: &'a Incoming<'a>,
}

impl<'a> RequestInfo<'a> {
    /// The MCP method: `tools/call`, `initialize`, `notifications/initialized`, ...
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The request's `_meta`, as the client sent it.
    pub fn meta(&self) -> &'a MetaObject {
        self.incoming.meta
    }

    /// The request's extensions, as rmcp hands them to handlers.
    pub fn extensions(&self) -> &'a Extensions {
        self.incoming.extensions
    }

    /// The HTTP request's head (method, URI, headers, and the extensions your HTTP middleware
    /// inserted), when the request came over streamable HTTP.
    pub fn http(&self) -> Option<&'a http::request::Parts> {
        self.incoming.extensions.get::<http::request::Parts>()
    }
}

impl fmt::Debug for RequestInfo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestInfo")
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}
