//! What is captured only on request (the user a call acts for; arguments and results), and how
//! it is made safe before it is queued: users hashed when so configured, values redacted.
//!
//! This runs on the recording thread, before the row is pushed, so that nothing raw ever sits
//! in the queue, reaches the worker, a `before_send` hook, the wire or a file. It needs the
//! settings of the running pipeline: before `init`, nothing captured on request is recorded.

pub(crate) mod probe;
pub(crate) mod user;

use std::sync::{Arc, LazyLock, PoisonError, RwLock};

use crate::redact::Redaction;

/// The settings the recording threads read, installed by `init`.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// `Some`: users are recorded as a keyed hash of their id.
    pub(crate) user_key: Option<user::HashKey>,
    /// How captured values and free text are made safe.
    pub(crate) redaction: Redaction,
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

/// A value captured on request (arguments, a result), made safe to queue: redacted by the
/// running pipeline's rules. `None` before `init`, when the rules are not known yet.
pub(crate) fn value(value: serde_json::Value) -> Option<serde_json::Value> {
    let settings = settings()?;
    Some(settings.redaction.value(value))
}

/// Free text that may hold secrets or personal data (an agent's stated intent, a
/// missing-capability report, a panic's message), made safe to queue: secrets and personal
/// data inside it replaced, then cut to `max_len` bytes. Unlike captured values, free text is
/// recorded before `init` too, with the built-in layers only: a panic's message is recorded
/// by default, and its patterns need no setting.
pub(crate) fn free_text(text: &str, max_len: usize) -> Box<str> {
    static BUILT_IN: LazyLock<Redaction> =
        LazyLock::new(|| Redaction::new(None, Redaction::DEFAULT_MAX_BYTES));
    match settings() {
        Some(settings) => settings.redaction.text(text, max_len),
        None => BUILT_IN.text(text, max_len),
    }
}
