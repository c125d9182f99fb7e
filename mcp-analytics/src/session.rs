//! Which MCP session a call belongs to.
//!
//! Resolution order, most specific first: the attribute's `session = <expr>`, then a scope set
//! with [`with_session`] (around a future) or [`in_session`] (around a closure), then one id per
//! process: a stdio MCP server process serves exactly one session.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};

/// The id of an MCP session, as recorded in each event's `session` column.
///
/// Cloning is cheap (a reference count), so a scope can hand it to every call it covers.
///
/// ```
/// use mcp_analytics::SessionId;
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
    /// assert_eq!(mcp_analytics::SessionId::from("a").as_str(), "a");
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
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

/// The session id of calls outside any session scope: a UUID v4 made once per process.
///
/// ```
/// let id = mcp_analytics::process_session_id();
/// assert_eq!(id.as_str().len(), 36);
/// assert_eq!(id, mcp_analytics::process_session_id());
/// ```
pub fn process_session_id() -> SessionId {
    PROCESS_SESSION.clone()
}

thread_local! {
    static CURRENT: RefCell<Option<SessionId>> = const { RefCell::new(None) };
}

/// The session of the innermost scope on this thread, if any.
///
/// `try_with`: a call made while the thread's locals are being destroyed gets no scope rather
/// than a panic.
pub(crate) fn current() -> Option<SessionId> {
    CURRENT
        .try_with(|current| current.borrow().clone())
        .ok()
        .flatten()
}

/// Puts `session` in the thread's slot and gives the previous occupant back on drop, so a scope
/// is restored even when the code inside it panics.
struct Swap<'a> {
    slot: &'a mut Option<SessionId>,
}

impl<'a> Swap<'a> {
    fn enter(slot: &'a mut Option<SessionId>) -> Self {
        let _ = CURRENT.try_with(|current| std::mem::swap(&mut *current.borrow_mut(), slot));
        Swap { slot }
    }
}

impl Drop for Swap<'_> {
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|current| std::mem::swap(&mut *current.borrow_mut(), self.slot));
    }
}

/// Runs `f` with `session` as the session of every instrumented call it makes on this thread.
///
/// ```
/// use mcp_analytics::{in_session, mcp_tool};
///
/// #[mcp_tool]
/// fn ping() -> &'static str {
///     "pong"
/// }
///
/// let answer = in_session("client-42", ping);
/// assert_eq!(answer, "pong");
/// ```
pub fn in_session<R>(session: impl Into<SessionId>, f: impl FnOnce() -> R) -> R {
    let mut slot = Some(session.into());
    let _scope = Swap::enter(&mut slot);
    f()
}

/// Runs `future` with `session` as the session of every instrumented call made while it is
/// polled, whatever thread or executor polls it.
///
/// ```
/// use mcp_analytics::{mcp_tool, with_session};
///
/// #[mcp_tool]
/// async fn ping() -> &'static str {
///     "pong"
/// }
///
/// # let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// # runtime.block_on(async {
/// let answer = with_session("client-42", ping()).await;
/// assert_eq!(answer, "pong");
/// # });
/// ```
pub fn with_session<F: Future>(session: impl Into<SessionId>, future: F) -> WithSession<F> {
    WithSession {
        session: Some(session.into()),
        future,
    }
}

pin_project_lite::pin_project! {
    /// A future that runs inside a session scope; made by [`with_session`].
    ///
    /// ```
    /// let scoped: mcp_analytics::WithSession<_> = mcp_analytics::with_session("s", async { 1 });
    /// # drop(scoped);
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct WithSession<F> {
        // `None` only while the inner future is being polled: the id is in the thread's slot.
        session: Option<SessionId>,
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for WithSession<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _scope = Swap::enter(this.session);
        this.future.poll(cx)
    }
}

impl<F> fmt::Debug for WithSession<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithSession")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}
