//! What is known of the request a call serves: its session, its client, the protocol it speaks,
//! the transport it came over, its JSON-RPC id, and the name of what it asks for.
//!
//! Two sources fill it in. The server wrapper (`mcp_analytics::rmcp`) knows every request and
//! lends what it knows to the calls made inside it, through the scope stack. Without it, the
//! macros offer each handler argument whose type is one of the SDK's request types (by name, see
//! the macro crate) to a probe, `(&&Probe(&argument)).__mcp_analytics_facts()`; the argument's
//! type decides, at compile time, whether it has anything to say ([`RequestFacts`]) or not (the
//! fallback). `Probe` is the same receiver the outcome probe uses. With the `rmcp` feature,
//! rmcp's `RequestContext<RoleServer>`, `Extension<http::request::Parts>`, `Peer<RoleServer>` and
//! request parameter types implement it.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use super::outcome::Probe;
use super::session::SessionId;

/// The client of a request, as it introduced itself.
#[doc(hidden)]
pub trait ClientInfo: Send + Sync {
    fn name(&self) -> &str;
    fn version(&self) -> &str;
}

/// A client's name and version, copied out of a request.
#[cfg_attr(not(feature = "rmcp"), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Client {
    pub(crate) name: Box<str>,
    pub(crate) version: Box<str>,
}

impl ClientInfo for Client {
    fn name(&self) -> &str {
        &self.name
    }

    fn version(&self) -> &str {
        &self.version
    }
}

impl fmt::Debug for dyn ClientInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.name(), self.version())
    }
}

/// How a request reached the server, named as OpenTelemetry's `network.transport`.
#[cfg_attr(not(feature = "rmcp"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// A byte stream of one client: stdio (or any other pipe-like stream).
    Pipe,
    /// Streamable HTTP.
    Tcp,
}

impl Transport {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Transport::Pipe => "pipe",
            Transport::Tcp => "tcp",
        }
    }
}

/// A JSON-RPC request id, as the client sent it; written out as text.
#[cfg_attr(not(feature = "rmcp"), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RequestId {
    Number(i64),
    Text(Arc<str>),
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestId::Number(n) => write!(f, "{n}"),
            RequestId::Text(text) => f.write_str(text),
        }
    }
}

/// Who sent a request, in which protocol, over what, under which id: shared by the rows of the
/// request (one `Arc` per request, made once).
#[doc(hidden)]
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub(crate) client: Option<Arc<dyn ClientInfo>>,
    /// The MCP protocol revision, e.g. `2025-11-25`.
    pub(crate) protocol_version: Option<Cow<'static, str>>,
    pub(crate) transport: Option<Transport>,
    pub(crate) request_id: Option<RequestId>,
}

/// Facts a handler argument carries about its request; each defaults to "not known here".
#[doc(hidden)]
pub trait RequestFacts {
    /// The session of the request: `Some` of an empty id when the request is known to belong
    /// to none (HTTP without a session header), `None` when this argument cannot tell.
    fn session(&self) -> Option<SessionId> {
        None
    }

    /// Who sent the request, in which protocol, over what.
    fn origin(&self) -> Option<Origin> {
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
