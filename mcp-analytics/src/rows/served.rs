//! A request the server wrapper is serving, as the calls made inside it see it: what it lends
//! them (session, client, protocol, transport) and the one place where an attribute's call on
//! the handler reports, so that the wrapper and the attribute together make one row per call.

// Only the server wrapper (`rmcp` feature) makes them.
#![cfg_attr(not(feature = "rmcp"), allow(dead_code))]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::call::{HandlerReport, Kind};
use super::request::Origin;
use super::session::SessionId;

/// Shared between the wrapper's row and the calls made while the request is served.
#[derive(Debug)]
pub(crate) struct ServedRequest {
    /// `None`: the process session (stdio); an empty id: none (HTTP without a session).
    pub(crate) session: Option<SessionId>,
    pub(crate) origin: Arc<Origin>,
    /// The kind of row the request makes: a handler call of that kind inside it joins it
    /// (`tools/call` is a tool call; no handler is of a `Request` kind).
    kind: Kind,
    claimed: AtomicBool,
    report: Mutex<Option<HandlerReport>>,
}

impl ServedRequest {
    pub(crate) fn new(session: Option<SessionId>, origin: Arc<Origin>, kind: Kind) -> Self {
        Self {
            session,
            origin,
            kind,
            claimed: AtomicBool::new(false),
            report: Mutex::new(None),
        }
    }

    /// Whether a call of `kind` is the handler of this request, and the first to say so: it
    /// then reports here instead of making a row of its own. A second instrumented call of the
    /// same kind inside it (a tool calling another) makes its own row.
    pub(crate) fn claim(&self, kind: Kind) -> bool {
        self.kind == kind && !self.claimed.swap(true, Ordering::Relaxed)
    }

    pub(crate) fn report(&self, report: HandlerReport) {
        *self.report.lock().unwrap_or_else(PoisonError::into_inner) = Some(report);
    }

    pub(crate) fn take_report(&self) -> Option<HandlerReport> {
        self.report
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}
