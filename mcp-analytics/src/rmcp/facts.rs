//! Who sent a request, in which protocol, over what, and in which session: read off rmcp's
//! request context, the same way for the server wrapper and for a handler that takes the
//! context.
//!
//! The rules, for every protocol revision and transport:
//! - **Client**: the request's `_meta` (`io.modelcontextprotocol/clientInfo`, every request of a
//!   2026-07-28 client) first; else the `initialize` handshake, but only where one connection
//!   carries one client (a pipe, or an HTTP session). A stateless HTTP request has no
//!   handshake of its own: rmcp fills in a placeholder naming itself, which is nobody's client.
//! - **Protocol**: the request's `_meta` first, else what was negotiated.
//! - **Transport**: streamable HTTP when rmcp put the HTTP request's parts in the context
//!   (`tcp`), else a byte stream of one client (`pipe`: stdio).
//! - **Model**: the request's `_meta`: `io.modelcontextprotocol/aiInvocation`'s `model`
//!   (SEP-2817), else `x-codex-turn-metadata`'s (OpenAI's Codex). A blank or `unknown` model
//!   names none.
//! - **Trace**: the request's `_meta` `traceparent` (SEP-414), as W3C trace context.
//! - **Session**: the `mcp-session-id` header; over a pipe, the process (one connection); over
//!   HTTP without the header (stateless servers, and every 2026-07-28 request) none: an empty
//!   session, never the process's, which would merge every client of the server into one.

use std::borrow::Cow;
use std::sync::Arc;

use rmcp::model::{Extensions, MetaObject, ProtocolVersion};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{Peer, RoleServer};
use serde_json::Value;

use crate::rows::request::{Client, ClientInfo, Origin, RequestId, TraceParent, Transport};
use crate::rows::session::SessionId;
use crate::rows::text::{MAX_NAME_LEN, bounded_str};

/// The header streamable HTTP carries the session id in.
const SESSION_HEADER: &str = "mcp-session-id";
/// Where a 2026-07-28 request says who its client is (SEP-2575).
const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// Where a 2026-07-28 request says which protocol revision it speaks (SEP-2575).
const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

/// The session of a request that came with these HTTP parts: its `mcp-session-id`, else none.
pub(super) fn http_session(parts: &http::request::Parts) -> SessionId {
    parts
        .headers
        .get(SESSION_HEADER)
        .and_then(|id| id.to_str().ok())
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map_or_else(SessionId::none, SessionId::from)
}

/// The session of a request: see the module's rules. `None` is the process session.
pub(super) fn session(parts: Option<&http::request::Parts>) -> Option<SessionId> {
    parts.map(http_session)
}

/// Whether the handshake of this connection describes this request's client: over a pipe and
/// in an HTTP session, yes; on a stateless HTTP request, no.
pub(super) fn handshake_applies(parts: Option<&http::request::Parts>) -> bool {
    parts.is_none_or(|parts| !http_session(parts).is_none_session())
}

/// The client a request's `_meta` names, if it names one. Reuses `known` when it is the same
/// client, so that a connection's requests share one copy.
pub(super) fn meta_client(meta: &MetaObject, known: Option<&Arc<Client>>) -> Option<Arc<Client>> {
    let info = meta.0.get(META_CLIENT_INFO)?;
    let field = |name: &str| info.get(name).and_then(Value::as_str).unwrap_or("");
    let (name, version) = (field("name"), field("version"));
    if name.is_empty() {
        return None;
    }
    match known {
        Some(known) if &*known.name == name && &*known.version == version => {
            Some(Arc::clone(known))
        }
        _ => Some(Arc::new(Client {
            name: name.into(),
            version: version.into(),
        })),
    }
}

/// Where clients say which model made a request, most standard first: SEP-2817's invocation
/// context, then OpenAI Codex's turn metadata. Both hold a `model` member.
const META_MODEL: [&str; 2] = [
    "io.modelcontextprotocol/aiInvocation",
    "x-codex-turn-metadata",
];

/// The model a request's `_meta` names, if it names one.
pub(super) fn meta_model(meta: &MetaObject) -> Option<Box<str>> {
    let model = META_MODEL.iter().find_map(|key| {
        let model = meta.0.get(*key)?.get("model")?.as_str()?.trim();
        (!model.is_empty() && !model.eq_ignore_ascii_case("unknown")).then_some(model)
    })?;
    Some(bounded_str(model, MAX_NAME_LEN).into())
}

/// The protocol revision a request's `_meta` names, if it names one.
pub(super) fn meta_protocol(meta: &MetaObject) -> Option<Cow<'static, str>> {
    let version = meta.0.get(META_PROTOCOL_VERSION)?.as_str()?;
    Some(protocol_text(version))
}

/// A protocol revision as text, without a copy for the revisions rmcp knows.
pub(super) fn protocol_text(version: &str) -> Cow<'static, str> {
    ProtocolVersion::KNOWN_VERSIONS
        .iter()
        .map(ProtocolVersion::as_str)
        .find(|known| *known == version)
        .map_or_else(|| Cow::Owned(version.to_owned()), Cow::Borrowed)
}

pub(super) fn transport(parts: Option<&http::request::Parts>) -> Transport {
    match parts {
        Some(_) => Transport::Tcp,
        None => Transport::Pipe,
    }
}

pub(super) fn request_id(id: &rmcp::model::RequestId) -> RequestId {
    match id {
        rmcp::model::NumberOrString::Number(n) => RequestId::Number(*n),
        rmcp::model::NumberOrString::String(text) => RequestId::Text(Arc::clone(text)),
    }
}

/// What a request or notification offers, read before rmcp's context moves on to the server.
pub(super) struct Incoming<'a> {
    pub(super) extensions: &'a Extensions,
    pub(super) meta: &'a MetaObject,
    pub(super) peer: &'a Peer<RoleServer>,
    pub(super) id: Option<&'a rmcp::model::RequestId>,
}

impl<'a> From<&'a RequestContext<RoleServer>> for Incoming<'a> {
    fn from(context: &'a RequestContext<RoleServer>) -> Self {
        Self {
            extensions: &context.extensions,
            meta: &context.meta.0,
            peer: &context.peer,
            id: Some(&context.id),
        }
    }
}

impl<'a> Incoming<'a> {
    pub(super) fn notification(context: &'a NotificationContext<RoleServer>) -> Self {
        Self {
            extensions: &context.extensions,
            meta: &context.meta.0,
            peer: &context.peer,
            id: None,
        }
    }
}

impl Incoming<'_> {
    /// The HTTP parts of the request, when it came over streamable HTTP.
    pub(super) fn parts(&self) -> Option<&http::request::Parts> {
        self.extensions.get::<http::request::Parts>()
    }

    /// The request's origin, by the module's rules: `meta_client` is the client its `_meta`
    /// names ([`meta_client`]), `handshake` the connection's, where it applies
    /// ([`handshake_applies`]).
    pub(super) fn origin(
        &self,
        meta_client: Option<Arc<Client>>,
        handshake: Option<Handshake>,
    ) -> Origin {
        let (handshake_client, negotiated) = handshake
            .map(|handshake| (handshake.client, handshake.protocol))
            .unzip();
        let protocol_version = meta_protocol(self.meta).or(negotiated).or_else(|| {
            // A stateless HTTP request: rmcp read its protocol off the request's header.
            let info = self.peer.peer_info()?;
            Some(protocol_text(info.protocol_version.as_str()))
        });
        Origin {
            client: meta_client
                .map(|client| client as Arc<dyn ClientInfo>)
                .or(handshake_client),
            protocol_version,
            transport: Some(transport(self.parts())),
            request_id: self.id.map(request_id),
            model: meta_model(self.meta),
            trace: self.meta.get_traceparent().and_then(TraceParent::parse),
            ..Origin::default()
        }
    }
}

/// A connection's handshake: the client that introduced itself in `initialize`, and the
/// protocol revision agreed.
#[derive(Clone)]
pub(super) struct Handshake {
    pub(super) client: Arc<dyn ClientInfo>,
    pub(super) protocol: Cow<'static, str>,
}

impl Handshake {
    /// What rmcp recorded of the connection's handshake, if it recorded one.
    pub(super) fn of(peer: &Peer<RoleServer>) -> Option<Self> {
        let info = peer.peer_info()?;
        Some(Self {
            protocol: protocol_text(info.protocol_version.as_str()),
            client: info,
        })
    }
}

/// The origin of a request a handler sees through its context, without the server wrapper:
/// rmcp's record of the handshake stands for the connection's.
pub(super) fn origin(context: &RequestContext<RoleServer>) -> Origin {
    let incoming = Incoming::from(context);
    let handshake = handshake_applies(incoming.parts())
        .then(|| Handshake::of(&context.peer))
        .flatten();
    incoming.origin(meta_client(incoming.meta, None), handshake)
}

/// What a `Peer` alone tells: the handshake's client. A peer does not say which transport it
/// serves, so the placeholder of a stateless HTTP request cannot be told from a real client:
/// take a `RequestContext` instead where that matters.
pub(super) fn peer_origin(peer: &Peer<RoleServer>) -> Option<Origin> {
    let handshake = Handshake::of(peer)?;
    Some(Origin {
        client: Some(handshake.client),
        protocol_version: Some(handshake.protocol),
        ..Origin::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(session: Option<&'static str>) -> http::request::Parts {
        let (mut parts, ()) = http::Request::new(()).into_parts();
        if let Some(session) = session {
            parts
                .headers
                .insert("Mcp-Session-Id", http::HeaderValue::from_static(session));
        }
        parts
    }

    #[test]
    fn sessions_are_the_header_the_process_or_none() {
        assert_eq!(session(None), None, "a pipe: the process session");
        let with = parts(Some("abc-123"));
        assert_eq!(session(Some(&with)).unwrap().as_str(), "abc-123");
        let without = parts(None);
        assert!(
            session(Some(&without)).unwrap().is_none_session(),
            "HTTP without a session header: no session, never the process's"
        );
        assert!(handshake_applies(None));
        assert!(handshake_applies(Some(&with)));
        assert!(!handshake_applies(Some(&without)));
    }

    #[test]
    fn the_client_and_protocol_come_from_meta() {
        let mut meta = MetaObject::default();
        assert!(meta_client(&meta, None).is_none());
        meta.0.insert(
            META_CLIENT_INFO.into(),
            serde_json::json!({"name": "claude-code", "version": "2.1.0"}),
        );
        meta.0
            .insert(META_PROTOCOL_VERSION.into(), "2026-07-28".into());
        let client = meta_client(&meta, None).unwrap();
        assert_eq!((&*client.name, &*client.version), ("claude-code", "2.1.0"));
        let again = meta_client(&meta, Some(&client)).unwrap();
        assert!(Arc::ptr_eq(&client, &again), "the same client is shared");
        assert!(matches!(
            meta_protocol(&meta),
            Some(Cow::Borrowed("2026-07-28"))
        ));
        assert_eq!(protocol_text("2099-01-01"), "2099-01-01");
    }

    #[test]
    fn the_model_comes_from_the_invocation_context_then_codex() {
        let mut meta = MetaObject::default();
        assert_eq!(meta_model(&meta), None);
        meta.0.insert(
            "x-codex-turn-metadata".into(),
            serde_json::json!({"model": "gpt-5.2"}),
        );
        assert_eq!(meta_model(&meta).as_deref(), Some("gpt-5.2"));
        meta.0.insert(
            META_MODEL[0].into(),
            serde_json::json!({"model": " claude-opus-4-8 "}),
        );
        assert_eq!(meta_model(&meta).as_deref(), Some("claude-opus-4-8"));
        meta.0.insert(
            META_MODEL[0].into(),
            serde_json::json!({"model": "unknown"}),
        );
        assert_eq!(
            meta_model(&meta).as_deref(),
            Some("gpt-5.2"),
            "unknown is none"
        );
    }
}
