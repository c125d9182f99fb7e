//! What the code running on a thread is inside of: one stack of scopes per thread, innermost
//! last. A scope carries what the calls made inside it inherit: the session (set with
//! [`with_session`] or [`in_session`]), the instrumented call that is running (for the log
//! lines written inside it), and the request the server wrapper is serving ([`ServedRequest`]).
//!
//! A sync scope is pushed and popped around a closure; an async one is pushed for each poll of
//! its future ([`Scoped`]), since between polls the thread runs other tasks. Either is popped
//! also when the code inside it panics.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::task::{Context, Poll};

use super::call::Callsite;
use super::fields::Resolved;
use super::request::Origin;
use super::served::ServedRequest;
use super::session::SessionId;

/// One scope: what the code inside it inherits.
#[derive(Debug, Default)]
struct Frame {
    session: Option<SessionId>,
    call: Option<RunningCall>,
    served: Option<Arc<ServedRequest>>,
    dimensions: Option<Arc<Resolved>>,
}

/// What a log line needs of the instrumented call it was written in.
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
#[derive(Debug, Clone)]
pub(crate) struct RunningCall {
    pub(crate) callsite: &'static Callsite,
    /// `None`: the callsite's name.
    pub(crate) name: Option<Arc<str>>,
    /// `None`: the scoped session, else the process's.
    pub(crate) session: Option<SessionId>,
}

thread_local! {
    static STACK: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
    /// Set on the worker's thread: what is logged there (the HTTP client's own events) must
    /// not become log lines, which the worker would then ship, log about, and so on.
    static WORKER: Cell<bool> = const { Cell::new(false) };
}

/// Whether running calls are tracked: only a log layer reads them, so until one is installed a
/// call pays one load of this flag, and without the `tracing` feature not even that.
static TRACK_CALLS: AtomicBool = AtomicBool::new(false);

#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) fn track_calls() {
    TRACK_CALLS.store(true, Relaxed);
}

#[inline]
fn tracking_calls() -> bool {
    cfg!(feature = "tracing") && TRACK_CALLS.load(Relaxed)
}

/// What `read` makes of this thread's scopes, innermost last.
///
/// `try_with`: a call made while the thread's locals are being destroyed gets no scope rather
/// than a panic.
#[inline]
fn frames<T: Default>(read: impl FnOnce(&[Frame]) -> T) -> T {
    STACK
        .try_with(|stack| {
            stack
                .try_borrow()
                .map(|stack| read(&stack))
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

/// What a call starting now inherits.
#[derive(Default)]
pub(crate) struct Inherited {
    /// The innermost session.
    pub(crate) session: Option<SessionId>,
    /// The innermost request the server wrapper is serving.
    pub(crate) served: Option<Arc<ServedRequest>>,
    /// The innermost [`Dimensions`](crate::Dimensions) scope's.
    pub(crate) dimensions: Option<Arc<Resolved>>,
}

/// Whether the thread is inside a scope, so that a call starting now may inherit something
/// (see [`inherited`]; a stack that cannot be read holds none, as there).
#[inline]
pub(crate) fn in_scope() -> bool {
    frames(|frames| !frames.is_empty())
}

/// What a call starting now inherits, read in one pass.
#[inline]
pub(crate) fn inherited() -> Inherited {
    frames(|frames| {
        let mut inherited = Inherited::default();
        for frame in frames.iter().rev() {
            if inherited.session.is_none() {
                inherited.session = frame.session_set();
            }
            if inherited.served.is_none() {
                inherited.served.clone_from(&frame.served);
            }
            if inherited.dimensions.is_none() {
                inherited.dimensions.clone_from(&frame.dimensions);
            }
            if inherited.session.is_some()
                && inherited.served.is_some()
                && inherited.dimensions.is_some()
            {
                break;
            }
        }
        inherited
    })
}

/// The innermost [`Dimensions`](crate::Dimensions) scope's, alone: for the wrapper's requests
/// and nested scopes, which need nothing else of [`inherited`].
pub(crate) fn inherited_dimensions() -> Option<Arc<Resolved>> {
    frames(|frames| {
        frames
            .iter()
            .rev()
            .find_map(|frame| frame.dimensions.clone())
    })
}

/// Where a log line written now stands, read in one pass: the innermost instrumented call
/// running (if calls are tracked), the innermost session, and who sent the request the rmcp
/// server wrapper serves, if it serves one.
// Only the `tracing` layer asks.
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) fn for_log_line() -> (Option<RunningCall>, Option<SessionId>, Option<Arc<Origin>>) {
    frames(|frames| {
        let (mut call, mut session, mut origin) = (None, None, None);
        for frame in frames.iter().rev() {
            call = call.or_else(|| frame.call.clone());
            session = session.or_else(|| frame.session_set());
            origin = origin.or_else(|| Some(Arc::clone(&frame.served.as_ref()?.origin)));
        }
        (call, session, origin)
    })
}

pub(crate) fn mark_worker_thread() {
    WORKER.set(true);
}

#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) fn on_worker_thread() -> bool {
    WORKER.try_with(Cell::get).unwrap_or(false)
}

/// An instrumented call, as the scope stack sees it.
pub(crate) trait Running {
    /// What the log lines written inside the call need of it.
    fn running(&self) -> RunningCall;
}

/// A request the server wrapper serves: a running call that lends the calls inside it what it
/// knows of the request.
pub(crate) trait Serving: Running + Sync {
    fn served(&self) -> &Arc<ServedRequest>;
}

impl Frame {
    fn session(session: SessionId) -> Self {
        Self {
            session: Some(session),
            ..Self::default()
        }
    }

    fn dimensions(dimensions: Arc<Resolved>) -> Self {
        Self {
            dimensions: Some(dimensions),
            ..Self::default()
        }
    }

    fn running(call: &dyn Running) -> Self {
        Self {
            call: Some(call.running()),
            ..Self::default()
        }
    }

    fn serving(request: &dyn Serving) -> Self {
        Self {
            call: tracking_calls().then(|| request.running()),
            served: Some(Arc::clone(request.served())),
            ..Self::default()
        }
    }

    fn session_set(&self) -> Option<SessionId> {
        self.session
            .clone()
            .or_else(|| self.served.as_ref()?.session.clone())
    }
}

/// A pushed frame: popped on drop, also while unwinding. A future's session goes back to its
/// `slot`, to be pushed again at the next poll.
struct Entered<'a> {
    slot: Option<&'a mut Option<SessionId>>,
}

impl<'a> Entered<'a> {
    /// Pushes `frame`; a thread whose locals are being destroyed, or whose stack is borrowed by
    /// the scope lookups above (it never is across user code), pushes nothing.
    fn push(frame: Frame, slot: Option<&'a mut Option<SessionId>>) -> Option<Self> {
        STACK
            .try_with(|stack| {
                let mut stack = stack.try_borrow_mut().ok()?;
                stack.push(frame);
                Some(Entered { slot })
            })
            .ok()
            .flatten()
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        let frame = STACK
            .try_with(|stack| stack.try_borrow_mut().ok()?.pop())
            .ok()
            .flatten();
        if let Some(slot) = self.slot.as_deref_mut() {
            *slot = frame.and_then(|frame| frame.session);
        }
    }
}

/// Marks a call as running on this thread until dropped.
#[doc(hidden)]
#[must_use]
pub struct Active(#[allow(dead_code)] Option<Entered<'static>>);

impl Active {
    /// Pushes `call`'s frame, while calls are tracked.
    #[inline]
    pub(crate) fn enter(call: &dyn Running) -> Self {
        Self(
            tracking_calls()
                .then(|| Entered::push(Frame::running(call), None))
                .flatten(),
        )
    }
}

/// What a [`Scoped`] future enters at each poll.
enum Scope<'a> {
    /// A session; `None` while the future is polled, its frame being on the thread's stack.
    Session(Option<SessionId>),
    /// An instrumented call, entered while calls are tracked. Borrowed, not copied: a call's
    /// future stays as small as it can, since it is moved on every call.
    Call(&'a (dyn Running + Sync)),
    /// A request the server wrapper serves, always entered.
    #[cfg_attr(not(feature = "rmcp"), allow(dead_code))]
    Served(&'a dyn Serving),
    /// A [`Dimensions`](crate::Dimensions) scope.
    Dimensions(Arc<Resolved>),
}

pin_project_lite::pin_project! {
    /// A future that runs inside a scope: made by [`with_session`] (then `'a` is `'static`),
    /// and by the attributes around an async handler's body.
    ///
    /// ```
    /// let scoped: mcp_analytics::session::Scoped<'static, _> =
    ///     mcp_analytics::session::with_session("s", async { 1 });
    /// # drop(scoped);
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct Scoped<'a, F> {
        scope: Scope<'a>,
        #[pin]
        future: F,
    }
}

impl<'a, F> Scoped<'a, F> {
    /// `body`, polled with `call` marked as running.
    #[inline]
    pub(crate) fn call(call: &'a (dyn Running + Sync), body: F) -> Self {
        Self {
            scope: Scope::Call(call),
            future: body,
        }
    }

    /// `future`, polled inside a [`Dimensions`](crate::Dimensions) scope.
    pub(crate) fn dimensions(dimensions: Arc<Resolved>, future: F) -> Self {
        Self {
            scope: Scope::Dimensions(dimensions),
            future,
        }
    }

    /// `body`, polled inside the request the server wrapper serves.
    #[cfg_attr(not(feature = "rmcp"), allow(dead_code))]
    pub(crate) fn served(request: &'a dyn Serving, body: F) -> Self {
        Self {
            scope: Scope::Served(request),
            future: body,
        }
    }
}

impl<F: Future> Future for Scoped<'_, F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = match this.scope {
            Scope::Session(slot) => slot
                .take()
                .and_then(|session| Entered::push(Frame::session(session), Some(slot))),
            Scope::Call(call) if tracking_calls() => Entered::push(Frame::running(*call), None),
            Scope::Call(_) => None,
            Scope::Served(request) => Entered::push(Frame::serving(*request), None),
            Scope::Dimensions(dimensions) => {
                Entered::push(Frame::dimensions(Arc::clone(dimensions)), None)
            }
        };
        this.future.poll(cx)
    }
}

impl<F> fmt::Debug for Scoped<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let session = match &self.scope {
            Scope::Session(session) => session.as_ref(),
            Scope::Call(_) | Scope::Served(_) | Scope::Dimensions(_) => None,
        };
        f.debug_struct("Scoped")
            .field("session", &session)
            .finish_non_exhaustive()
    }
}

/// Runs `f` with `session` as the session of every instrumented call it makes on this thread.
///
/// ```
/// use mcp_analytics::mcp_tool;
/// use mcp_analytics::session::in_session;
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
    let _entered = Entered::push(Frame::session(session.into()), None);
    f()
}

/// Runs `f` inside a [`Dimensions`](crate::Dimensions) scope, on this thread.
pub(crate) fn in_dimensions<R>(dimensions: Arc<Resolved>, f: impl FnOnce() -> R) -> R {
    let _entered = Entered::push(Frame::dimensions(dimensions), None);
    f()
}

/// Runs `future` with `session` as the session of every instrumented call made while it is
/// polled, whatever thread or executor polls it.
///
/// ```
/// use mcp_analytics::mcp_tool;
/// use mcp_analytics::session::with_session;
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
pub fn with_session<F: Future>(session: impl Into<SessionId>, future: F) -> Scoped<'static, F> {
    Scoped {
        scope: Scope::Session(Some(session.into())),
        future,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scoped_future_adds_little_to_the_future_it_wraps() {
        // Every async handler's future holds one, and is moved on every call: a copied frame
        // here (56 bytes) cost its call about 8 ns in the hot-path benchmark.
        let scope = std::mem::size_of::<Scope<'static>>();
        assert!(scope <= 24, "{scope} bytes");
    }

    #[test]
    fn scopes_nest_and_unwind() {
        let current_session = || inherited().session;
        assert_eq!(current_session(), None);
        in_session("outer", || {
            assert_eq!(current_session().unwrap().as_str(), "outer");
            in_session("inner", || {
                assert_eq!(current_session().unwrap().as_str(), "inner");
            });
            let unwound = std::panic::catch_unwind(|| in_session("panics", || panic!("boom")));
            assert!(unwound.is_err());
            assert_eq!(current_session().unwrap().as_str(), "outer");
        });
        assert_eq!(current_session(), None);
    }
}
