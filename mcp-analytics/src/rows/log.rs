//! The row of one log line. The `tracing` feature's layer makes them; this type knows nothing of
//! `tracing`, so that the rows, the queue and the wire format need no feature gate.

use std::borrow::Cow;
use std::sync::Arc;

use super::call::Callsite;
pub(crate) use super::fields::Fields;
use super::request::Origin;
use super::session::SessionId;

/// Longest message kept per log line, in bytes (cut like error texts, ending in `…`).
pub(crate) const MAX_MESSAGE_LEN: usize = 4096;

/// The crate a log line is attributed to outside any handler: the one where the layer was made.
#[doc(hidden)]
#[derive(Debug)]
pub struct App {
    pub(crate) name: &'static str,
    pub(crate) version: &'static str,
}

impl App {
    /// Called by `tracing::layer!()` only, with the crate's `CARGO_PKG_NAME` and
    /// `CARGO_PKG_VERSION`.
    pub const fn new(name: &'static str, version: &'static str) -> Self {
        Self { name, version }
    }
}

/// A log line, waiting in the queue for the worker.
#[derive(Debug)]
pub(crate) struct LogRow {
    pub(crate) level: Level,
    pub(crate) message: Box<str>,
    pub(crate) target: Cow<'static, str>,
    /// The enclosing span's name, outside handlers only: inside one, the handler's function
    /// names the line.
    pub(crate) span: Option<&'static str>,
    pub(crate) fields: Fields,
    /// The crate that logged: the handler's inside one, else the layer's.
    pub(crate) app_name: &'static str,
    pub(crate) app_version: &'static str,
    /// The instrumented call it was written in.
    pub(crate) handler: Option<Handler>,
    /// `None`: the process session.
    pub(crate) session: Option<SessionId>,
    /// Who sent the request it was written in, when the rmcp server wrapper serves one.
    pub(crate) origin: Option<Arc<Origin>>,
    /// Raw clock ticks.
    pub(crate) logged: u64,
}

/// The instrumented call a log line was written in.
#[derive(Debug)]
pub(crate) struct Handler {
    pub(crate) callsite: &'static Callsite,
    /// `None`: the callsite's name.
    pub(crate) name: Option<Arc<str>>,
}

impl Handler {
    pub(crate) fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.callsite.name)
    }
}

/// A log line's severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    /// The row's `level`, in lower case: the template counts `error` as an error.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }
}
