//! What is captured only on request (the user a call acts for; arguments and results), and how
//! it is made safe before it is queued: users hashed when so configured, values redacted.
//!
//! This runs on the recording thread, before the row is pushed, so that nothing raw ever sits
//! in the queue, reaches the worker, a `before_send` hook, the wire or a file. It needs the
//! settings of the running pipeline: before `init`, nothing captured on request is recorded.

pub(crate) mod user;

use std::sync::{Arc, PoisonError, RwLock};

/// The settings the recording threads read, installed by `init`.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// `Some`: users are recorded as a keyed hash of their id.
    pub(crate) user_key: Option<user::HashKey>,
}

static SETTINGS: RwLock<Option<Arc<Settings>>> = RwLock::new(None);

/// The running pipeline's settings; `None` before the first `init`.
pub(crate) fn settings() -> Option<Arc<Settings>> {
    SETTINGS
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// Installs the settings of a pipeline starting now.
pub(crate) fn install(settings: Settings) {
    *SETTINGS.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(settings));
}

/// Free text captured on request (an agent's stated intent, a missing-capability report),
/// made safe to queue: cut to `max_len` bytes.
// The redaction pipeline (issue 13) takes over here: secrets and personal data inside the
// text are replaced before the cut.
// Read by the rmcp wrapper's agent-facing options only.
#[cfg_attr(not(feature = "rmcp"), allow(dead_code))]
pub(crate) fn free_text(text: &str, max_len: usize) -> Box<str> {
    crate::rows::text::bounded_str(text, max_len).into()
}
