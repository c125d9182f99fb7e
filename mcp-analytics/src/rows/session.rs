//! Session ids: what a row's `session` column holds.

use std::fmt;
use std::sync::{Arc, LazyLock};

/// The id of an MCP session, as recorded in each row's `session` column.
///
/// Cloning is cheap (a reference count), so a scope can hand it to every call it covers.
///
/// ```
/// use mcp_analytics::session::SessionId;
///
/// let id = SessionId::from("3f1c0e9a");
/// assert_eq!(id.as_str(), "3f1c0e9a");
/// assert_eq!(id.to_string(), "3f1c0e9a");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId(Arc<str>);

impl SessionId {
    /// The id as text.
    ///
    /// ```
    /// assert_eq!(mcp_analytics::session::SessionId::from("a").as_str(), "a");
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// No session: what a request that belongs to none has (streamable HTTP without a session
    /// header). Written as an empty `session`, never replaced by the process's.
    #[cfg_attr(not(feature = "rmcp"), allow(dead_code))]
    pub(crate) fn none() -> Self {
        static NONE: LazyLock<SessionId> = LazyLock::new(|| SessionId(Arc::from("")));
        NONE.clone()
    }

    /// Whether this is [`SessionId::none`].
    #[cfg_attr(not(feature = "rmcp"), allow(dead_code))]
    pub(crate) fn is_none_session(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for SessionId {
    fn from(id: &str) -> Self {
        Self(id.into())
    }
}

impl From<String> for SessionId {
    fn from(id: String) -> Self {
        Self(id.into())
    }
}

impl From<Arc<str>> for SessionId {
    fn from(id: Arc<str>) -> Self {
        Self(id)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

static PROCESS_SESSION: LazyLock<SessionId> =
    LazyLock::new(|| SessionId::from(uuid::Uuid::new_v4().to_string()));

/// The session id of calls outside any session scope: a UUID v4 made once per process, since a
/// stdio MCP server process serves exactly one session.
///
/// ```
/// let id = mcp_analytics::session::process_session_id();
/// assert_eq!(id.as_str().len(), 36);
/// assert_eq!(id, mcp_analytics::session::process_session_id());
/// ```
pub fn process_session_id() -> SessionId {
    PROCESS_SESSION.clone()
}
