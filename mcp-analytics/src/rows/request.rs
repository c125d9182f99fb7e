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

use super::fields::Fields;
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

/// Who sent a request, in which protocol, over what, under which id, for which user, from
/// which model and trace, and, where the rmcp wrapper's agent-facing options are on, why and in
/// which conversation: shared by the rows of the request (one `Arc` per request, made once).
#[doc(hidden)]
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub(crate) client: Option<Arc<dyn ClientInfo>>,
    /// The MCP protocol revision, e.g. `2025-11-25`.
    pub(crate) protocol_version: Option<Cow<'static, str>>,
    pub(crate) transport: Option<Transport>,
    pub(crate) request_id: Option<RequestId>,
    /// The model that made the request, as the client's `_meta` names it.
    pub(crate) model: Option<Box<str>>,
    /// The trace the request belongs to, from its `_meta` `traceparent`.
    pub(crate) trace: Option<TraceParent>,
    /// The user the request acts for, as the server wrapper's `identify` resolved it (and
    /// recorded it: hashed if so configured).
    pub(crate) user: Option<Arc<str>>,
    /// The server wrapper's `fields_by`, for the request.
    pub(crate) fields: Fields,
    /// Why the agent made the request, in its own words, made safe to queue (redacted, cut):
    /// the rmcp wrapper's `intent_argument` option.
    pub(crate) intent: Option<Box<str>>,
    /// The conversation handle the agent's call carried or was given: the rmcp wrapper's
    /// `conversations` option.
    pub(crate) conversation: Option<Arc<str>>,
}

/// A W3C trace context's ids (`traceparent`: `00-<trace-id>-<parent-id>-<flags>`): the trace,
/// and the caller's span in it, which is the request's parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TraceParent {
    pub(crate) trace_id: u128,
    pub(crate) span_id: u64,
}

impl TraceParent {
    /// Parses a `traceparent` header value. Version `00` has exactly four parts; a later
    /// version may append more, which are ignored as the W3C spec says. All-zero ids, upper
    /// case hex and version `ff` are invalid.
    #[cfg_attr(not(feature = "rmcp"), allow(dead_code))]
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('-');
        let version = parts.next()?;
        let (trace_id, span_id, flags) = (parts.next()?, parts.next()?, parts.next()?);
        let lower_hex = |part: &str, len: usize| {
            part.len() == len && part.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        let valid = lower_hex(version, 2)
            && version != "ff"
            && (version != "00" || parts.next().is_none())
            && lower_hex(trace_id, 32)
            && lower_hex(span_id, 16)
            && lower_hex(flags, 2);
        if !valid {
            return None;
        }
        let trace_id = u128::from_str_radix(trace_id, 16).ok()?;
        let span_id = u64::from_str_radix(span_id, 16).ok()?;
        (trace_id != 0 && span_id != 0).then_some(Self { trace_id, span_id })
    }
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

#[cfg(test)]
mod tests {
    use super::TraceParent;

    #[test]
    fn traceparents_parse_as_the_w3c_spec_says() {
        let parsed = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert_eq!(
            parsed,
            Some(TraceParent {
                trace_id: 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
                span_id: 0x00f0_67aa_0ba9_02b7,
            })
        );
        let future = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes";
        assert!(
            TraceParent::parse(future).is_some(),
            "later versions may add parts"
        );
        for invalid in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(invalid), None, "{invalid:?}");
        }
    }
}
