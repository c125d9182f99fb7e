//! What a handler's arguments tell about the request: its session, its client, and the name of
//! the resource or prompt asked for.
//!
//! The macros offer each argument whose type is one of the SDK's request types (by name, see
//! the macro crate) to a probe, `(&&Probe(&argument)).__mcp_analytics_facts()`; the argument's
//! type decides, at compile time, whether it has anything to say ([`RequestFacts`]) or not (the
//! fallback). `Probe` is the same receiver the outcome probe uses. With the `rmcp` feature, rmcp's
//! `RequestContext<RoleServer>`, `Extension<http::request::Parts>`, `Peer<RoleServer>` and
//! request parameter types implement it.

use std::sync::Arc;

use super::outcome::Probe;
use super::session::SessionId;

/// The client of a session, as it introduced itself.
#[doc(hidden)]
pub trait ClientInfo: Send + Sync {
    fn name(&self) -> &str;
    fn version(&self) -> &str;
}

/// Facts a handler argument carries about its request; each defaults to "not known here".
#[doc(hidden)]
pub trait RequestFacts {
    /// The MCP session id of the request (streamable HTTP's `mcp-session-id`).
    fn session(&self) -> Option<SessionId> {
        None
    }

    /// The client that sent the request.
    fn client(&self) -> Option<Arc<dyn ClientInfo>> {
        None
    }

    /// What the request names: the resource's URI, the prompt's or the tool's name.
    fn handler_name(&self) -> Option<&str> {
        None
    }
}

#[doc(hidden)]
pub trait ViaRequestFacts {
    fn __mcp_analytics_facts(&self) -> Option<&dyn RequestFacts>;
}

impl<T: RequestFacts> ViaRequestFacts for &Probe<'_, T> {
    fn __mcp_analytics_facts(&self) -> Option<&dyn RequestFacts> {
        Some(self.0)
    }
}

#[doc(hidden)]
pub trait ViaNoFacts {
    fn __mcp_analytics_facts(self) -> Option<&'static dyn RequestFacts>;
}

impl<T> ViaNoFacts for Probe<'_, T> {
    fn __mcp_analytics_facts(self) -> Option<&'static dyn RequestFacts> {
        None
    }
}
