//! What the code running on a thread is inside of: one stack of scopes per thread, innermost
//! last. A scope carries what the calls made inside it inherit: the session (set with
//! [`with_session`] or [`in_session`]), the instrumented call that is running (for the log
//! lines written inside it), and room for more per-call context.
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
use super::session::SessionId;

/// One scope: what the code inside it inherits.
#[derive(Debug, Default)]
struct Frame {
    session: Option<SessionId>,
    call: Option<RunningCall>,
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
pub(crate) fn tracking_calls() -> bool {
    cfg!(feature = "tracing") && TRACK_CALLS.load(Relaxed)
}

/// What the innermost scope that has it says, if any.
///
/// `try_with`: a call made while the thread's locals are being destroyed gets no scope rather
/// than a panic.
fn innermost<T>(pick: impl Fn(&Frame) -> Option<T>) -> Option<T> {
    STACK
        .try_with(|stack| stack.try_borrow().ok()?.iter().rev().find_map(&pick))
        .ok()
        .flatten()
}

/// The session of the innermost scope that sets one, if any.
pub(crate) fn current_session() -> Option<SessionId> {
    innermost(|frame| frame.session.clone())
}

/// The innermost instrumented call running on this thread, if calls are tracked.
// Only the `tracing` layer asks.
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) fn running_call() -> Option<RunningCall> {
    innermost(|frame| frame.call.clone())
}

pub(crate) fn mark_worker_thread() {
    WORKER.set(true);
}

#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) fn on_worker_thread() -> bool {
    WORKER.try_with(Cell::get).unwrap_or(false)
}

/// A pushed frame: popped on drop, also while unwinding, and handed back to `slot` if it has
/// one, so that a future's scope can be pushed again at its next poll.
struct Entered<'a> {
    slot: Option<&'a mut Option<Frame>>,
}

impl<'a> Entered<'a> {
    /// Pushes `frame`; a thread whose locals are being destroyed, or whose stack is borrowed by
    /// the scope lookups above (it never is across user code), pushes nothing.
    fn push(frame: Frame, slot: Option<&'a mut Option<Frame>>) -> Option<Self> {
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
            *slot = frame;
        }
    }
}

/// Marks a call as running on this thread until dropped.
#[doc(hidden)]
#[must_use]
pub struct Active(#[allow(dead_code)] Option<Entered<'static>>);

impl Active {
    /// Pushes the running call's frame, if any.
    #[inline]
    pub(crate) fn enter(call: Option<RunningCall>) -> Self {
        Self(call.and_then(|call| Entered::push(Frame::running(call), None)))
    }
}

impl Frame {
    fn running(call: RunningCall) -> Self {
        Self {
            session: None,
            call: Some(call),
        }
    }
}

pin_project_lite::pin_project! {
    /// A future that runs inside a scope: made by [`with_session`], and by the attributes
    /// around an async handler's body.
    ///
    /// ```
    /// let scoped: mcp_analytics::session::Scoped<_> =
    ///     mcp_analytics::session::with_session("s", async { 1 });
    /// # drop(scoped);
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct Scoped<F> {
        // `None` while the inner future is being polled (the frame is on the thread's stack),
        // or when there is no scope to enter.
        frame: Option<Frame>,
        #[pin]
        future: F,
    }
}

impl<F> Scoped<F> {
    /// `body`, polled with `call` (if any) marked as running.
    #[inline]
    pub(crate) fn running(call: Option<RunningCall>, body: F) -> Self {
        Self {
            frame: call.map(Frame::running),
            future: body,
        }
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = match this.frame.take() {
            Some(frame) => Entered::push(frame, Some(this.frame)),
            None => None,
        };
        this.future.poll(cx)
    }
}

impl<F> fmt::Debug for Scoped<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scoped")
            .field(
                "session",
                &self.frame.as_ref().and_then(|f| f.session.as_ref()),
            )
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
    let frame = Frame {
        session: Some(session.into()),
        call: None,
    };
    let _entered = Entered::push(frame, None);
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
pub fn with_session<F: Future>(session: impl Into<SessionId>, future: F) -> Scoped<F> {
    Scoped {
        frame: Some(Frame {
            session: Some(session.into()),
            call: None,
        }),
        future,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_nest_and_unwind() {
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
