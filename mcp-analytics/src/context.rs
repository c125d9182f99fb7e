//! Which instrumented call is running on this thread, so that a log line written inside a handler
//! (feature `tracing`) carries that handler's kind, name and session.
//!
//! A sync handler's body runs under an [`Active`] guard; an async handler's body is polled
//! through [`Activated`], which sets the guard for each poll only, since between polls the
//! thread runs other tasks. Calls nest: the innermost is the one a log line belongs to. Without
//! the `tracing` feature nothing reads this, and the guard and the future wrapper compile to
//! nothing.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::event::Call;

/// Marks a call as running on this thread until dropped.
#[doc(hidden)]
#[must_use]
pub struct Active {
    #[cfg(feature = "tracing")]
    _entered: active::Entered,
}

impl Call {
    /// Marks this call as the one running on this thread, until the guard drops.
    #[inline]
    pub fn activate(&self) -> Active {
        Active {
            #[cfg(feature = "tracing")]
            _entered: active::enter(self),
        }
    }
}

pin_project! {
    /// An async handler's body, polled with its call marked as running.
    #[doc(hidden)]
    #[must_use = "futures do nothing unless polled"]
    pub struct Activated<'call, F> {
        call: &'call Call,
        #[pin]
        body: F,
    }
}

impl<'call, F> Activated<'call, F> {
    #[inline]
    pub fn new(call: &'call Call, body: F) -> Self {
        Self { call, body }
    }
}

impl<F: Future> Future for Activated<'_, F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _active = this.call.activate();
        this.body.poll(cx)
    }
}

#[cfg(feature = "tracing")]
pub(crate) use active::{CallInfo, enable, innermost, is_worker_thread, mark_worker_thread};

#[cfg(feature = "tracing")]
mod active {
    use std::cell::{Cell, RefCell};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

    use crate::event::{Call, Callsite};
    use crate::session::SessionId;

    /// What a log line needs of the call it was written in.
    #[derive(Clone)]
    pub(crate) struct CallInfo {
        pub(crate) callsite: &'static Callsite,
        /// `None`: the callsite's name.
        pub(crate) name: Option<Arc<str>>,
        /// `None`: the scoped session, else the process's.
        pub(crate) session: Option<SessionId>,
    }

    thread_local! {
        /// The calls running on this thread, innermost last.
        static RUNNING: RefCell<Vec<CallInfo>> = const { RefCell::new(Vec::new()) };
        /// Set on the worker's thread: what is logged there (the HTTP client's own events) must
        /// not become log lines, which the worker would then ship, log about, and so on.
        static WORKER: Cell<bool> = const { Cell::new(false) };
    }

    /// Whether a `tracing` layer of ours was installed: until then no call is marked, and a
    /// handler pays one load of this flag.
    static ENABLED: AtomicBool = AtomicBool::new(false);

    pub(crate) fn enable() {
        ENABLED.store(true, Relaxed);
    }

    /// Pops its call off this thread's running calls when dropped, also while unwinding; `false`
    /// when nothing was pushed.
    pub(crate) struct Entered(bool);

    #[inline]
    pub(crate) fn enter(call: &Call) -> Entered {
        if !ENABLED.load(Relaxed) {
            return Entered(false);
        }
        let info = CallInfo {
            callsite: call.callsite(),
            name: call.name().cloned(),
            session: call.session().cloned(),
        };
        // A thread whose locals are being destroyed has no log lines to attribute either.
        let pushed = RUNNING
            .try_with(|running| {
                running
                    .try_borrow_mut()
                    .map(|mut running| running.push(info))
                    .is_ok()
            })
            .unwrap_or(false);
        Entered(pushed)
    }

    impl Drop for Entered {
        fn drop(&mut self) {
            if !self.0 {
                return;
            }
            let _ = RUNNING.try_with(|running| {
                if let Ok(mut running) = running.try_borrow_mut() {
                    running.pop();
                }
            });
        }
    }

    /// The innermost call running on this thread, if any.
    pub(crate) fn innermost() -> Option<CallInfo> {
        RUNNING
            .try_with(|running| running.try_borrow().ok()?.last().cloned())
            .ok()
            .flatten()
    }

    pub(crate) fn mark_worker_thread() {
        WORKER.set(true);
    }

    pub(crate) fn is_worker_thread() -> bool {
        WORKER.try_with(Cell::get).unwrap_or(false)
    }
}
