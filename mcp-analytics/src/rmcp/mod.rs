//! rmcp, the official Rust MCP SDK (feature `rmcp`): failed tool results, and the session,
//! client and names its request types carry.

use std::fmt;
use std::sync::Arc;

use rmcp::handler::server::tool::Extension;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, GetPromptRequestParams,
    InitializeRequestParams, ReadResourceRequestParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, Peer, RoleServer};

use crate::rows::outcome::CallOutcome;
use crate::rows::request::{ClientInfo, RequestFacts};
use crate::rows::session::SessionId;

/// The header streamable HTTP carries the session id in.
const SESSION_HEADER: &str = "mcp-session-id";

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

fn session_of(parts: &http::request::Parts) -> Option<SessionId> {
    let id = parts.headers.get(SESSION_HEADER)?.to_str().ok()?;
    (!id.is_empty()).then(|| SessionId::from(id))
}

fn client_of(peer: &Peer<RoleServer>) -> Option<Arc<dyn ClientInfo>> {
    peer.peer_info().map(|info| info as Arc<dyn ClientInfo>)
}

impl RequestFacts for RequestContext<RoleServer> {
    /// Over streamable HTTP, rmcp puts the request's `http::request::Parts` in the context's
    /// extensions; over stdio there are none, and the process session applies.
    fn session(&self) -> Option<SessionId> {
        session_of(self.extensions.get::<http::request::Parts>()?)
    }

    fn client(&self) -> Option<Arc<dyn ClientInfo>> {
        client_of(&self.peer)
    }
}

impl RequestFacts for Peer<RoleServer> {
    fn client(&self) -> Option<Arc<dyn ClientInfo>> {
        client_of(self)
    }
}

impl RequestFacts for http::request::Parts {
    fn session(&self) -> Option<SessionId> {
        session_of(self)
    }
}

impl RequestFacts for Extension<http::request::Parts> {
    fn session(&self) -> Option<SessionId> {
        session_of(&self.0)
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
        assert!(parts.session().is_none());
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
