//! The redaction pipeline every captured value goes through before it is queued: tool
//! arguments and results (opt-in capture), and free text (an agent's stated intent, a panic's
//! message). A captured value leaves the process, so what might be a credential or personal
//! data is taken out here, on the caller's thread, before anything else sees it.
//!
//! The layers, in order, one file each:
//! 1. `keys`: members whose key names a credential (`password`, `api_key`, `Authorization`)
//!    have their whole value replaced by `"[redacted]"`, whatever its type.
//! 2. `patterns`: inside every string, and every key, secrets and personal data recognised by
//!    their shape (`[redacted:github_token]`, `[redacted:email]`, `[redacted:card]`, ...) or
//!    by the credential's name written before them (`named`: `?token=[redacted]`).
//! 3. The user's hook ([`RedactHook`]), on the whole value, for what only they can know.
//! 4. `bound`: the value's compact JSON cut to fit `max_bytes`, every cut visible.
//!
//! Nothing here panics or recurses with the input's depth: the value's shape is bounded
//! (`bound::prune`) before anything walks it. A hook that panics fails closed: the whole value
//! becomes [`HOOK_PANICKED`].

mod bound;
mod keys;
mod named;
mod patterns;

use std::borrow::Cow;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use serde_json::Value;

use crate::rows::text::bounded_str;

/// A user's own redaction, run on each captured value after the built-in layers and before the
/// size bound: it may change the value in place in any way (remove members, mask ids,
/// replace it whole). It sees the built-in layers' work: markers where secrets were, and the
/// value's shape already bounded (parts nested too deep, and entries past what `max_bytes`
/// could show, replaced by markers). A panic in it is caught (unless the build aborts on
/// panic), and the value is then dropped for [`HOOK_PANICKED`].
pub type RedactHook = Arc<dyn Fn(&mut Value) + Send + Sync>;

/// What a captured value becomes when the user's hook panics on it: the hook may have been
/// half way through removing something, so nothing of the value is kept.
pub(crate) const HOOK_PANICKED: &str = "[redacted:hook_panicked]";

/// What a captured value or text becomes if the pipeline itself panicked (a bug): nothing of
/// it is kept.
pub(crate) const FAILED: &str = "[redacted:failed]";

/// The smallest `max_bytes`: room for the largest marker (`{"_truncated":true,"bytes":N}`, 48
/// bytes at most) with some to spare. Smaller limits are raised to it.
pub(crate) const MIN_MAX_BYTES: usize = 64;

/// How many bytes of strings one value's pattern scan reads, in `max_bytes`: past it, each
/// further string keeps only its first [`MIN_MAX_BYTES`] bytes (scanned with the margin that
/// catches a secret cut at the end), so that a value of many long strings costs little more
/// than one. A value's kept strings fit in `max_bytes`, so four times that loses nothing in
/// practice.
const SCAN_BUDGET: usize = 4;

/// The redaction pipeline, set up once and shared by every capture.
#[derive(Clone)]
pub(crate) struct Redaction {
    /// The user's own layer.
    hook: Option<RedactHook>,
    /// The most bytes of compact JSON one captured value keeps.
    max_bytes: usize,
}

impl Redaction {
    /// The default `max_bytes`, 4 KiB a captured value. Tool arguments are almost always
    /// smaller (an object of ten short members is about 300 bytes, a SQL query or a search
    /// a few hundred), so they are kept whole; results (file contents, query rows) are what gets
    /// cut, with the cut marked. A call's row is about 330 bytes without capture: with both
    /// values at the limit it is under 9 KB, so an 8 MiB batch still holds over 900 such calls.
    /// The worst case is memory: a full default queue (16,384 events) of such calls holds
    /// about 140 MB: a server with large results may want a smaller limit or queue.
    pub(crate) const DEFAULT_MAX_BYTES: usize = 4096;

    /// The pipeline with the user's `hook`, keeping at most `max_bytes` of compact JSON per
    /// value (at least [`MIN_MAX_BYTES`]).
    pub(crate) fn new(hook: Option<RedactHook>, max_bytes: usize) -> Self {
        Self {
            hook,
            max_bytes: max_bytes.max(MIN_MAX_BYTES),
        }
    }

    /// `value` through every layer, in order: keys, patterns, the user's hook, the size bound.
    /// Never panics, and what it returns never serializes to more than `max_bytes` of compact
    /// JSON.
    pub(crate) fn value(&self, value: Value) -> Value {
        panic::catch_unwind(AssertUnwindSafe(|| self.layers(value)))
            .unwrap_or_else(|_| Value::from(FAILED))
    }

    /// Free text (an agent's stated intent, a panic's message): the pattern layer, then cut to
    /// `max_len` bytes at a char boundary, ending in `…` when cut (below 3 bytes, where the `…`
    /// does not fit, a text that does not fit is left empty). Never panics.
    pub(crate) fn text(&self, text: &str, max_len: usize) -> Box<str> {
        let redacted = panic::catch_unwind(|| patterns::scrub_within(text, max_len))
            .unwrap_or(Cow::Borrowed(FAILED));
        if redacted.len() > max_len && max_len < '…'.len_utf8() {
            return Box::default();
        }
        bounded_str(&redacted, max_len).into()
    }

    /// [`Redaction::value`]'s work, which it runs under `catch_unwind`. The shape is bounded
    /// first: every later walk then recurses at most [`bound::MAX_DEPTH`] deep.
    fn layers(&self, mut value: Value) -> Value {
        bound::prune(&mut value, self.max_bytes);
        let mut budget = SCAN_BUDGET.saturating_mul(self.max_bytes);
        self.redact(&mut value, &mut budget);
        if let Some(hook) = &self.hook
            && panic::catch_unwind(AssertUnwindSafe(|| hook(&mut value))).is_err()
        {
            bound::dispose(std::mem::replace(&mut value, Value::from(HOOK_PANICKED)));
        }
        bound::fit(value, self.max_bytes)
    }

    /// The keys and patterns layers, in one walk of the (pruned, so shallow) value. A member
    /// whose key names a credential is redacted whole; any other string is scanned, with
    /// `budget` bytes of scanning left for the whole value.
    fn redact(&self, value: &mut Value, budget: &mut usize) {
        match value {
            Value::String(text) => {
                if let Cow::Owned(redacted) = self.scan(text, budget) {
                    *text = redacted;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| self.redact(item, budget)),
            Value::Object(map) => {
                let mut renamed = Vec::new();
                for (key, member) in map.iter_mut() {
                    if keys::is_credential_key(key) {
                        *member = Value::from(named::REDACTED);
                    } else {
                        self.redact(member, budget);
                    }
                    // Keys are scanned too: a map keyed by email address is personal data.
                    if let Cow::Owned(redacted) = self.scan(key, budget) {
                        renamed.push((key.clone(), redacted));
                    }
                }
                for (key, redacted) in renamed {
                    if let Some(member) = map.remove(&key) {
                        map.insert(unique_key(map, redacted), member);
                    }
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// The patterns layer on one string, within the scan budget. No string can keep more than
    /// `max_bytes` less its quotes, so none is scanned (much) further.
    fn scan<'t>(&self, text: &'t str, budget: &mut usize) -> Cow<'t, str> {
        let limit = (self.max_bytes - 2).min(*budget).max(MIN_MAX_BYTES);
        let scanned = text.len().min(limit.saturating_add(patterns::SCAN_MARGIN));
        *budget = budget.saturating_sub(scanned);
        patterns::scrub_within(text, limit)
    }
}

/// `key`, or when `map` has it already (keys redacted alike: a map keyed by email address),
/// `key #2`, `key #3`, ...: each member stays, and so does their count.
fn unique_key(map: &serde_json::Map<String, Value>, key: String) -> String {
    if !map.contains_key(&key) {
        return key;
    }
    (2..)
        .map(|n: usize| format!("{key} #{n}"))
        .find(|numbered| !map.contains_key(numbered))
        .unwrap_or(key)
}

impl fmt::Debug for Redaction {
    /// The hook as present or absent: a closure has nothing else to show.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hook = match self.hook {
            Some(_) => "present",
            None => "absent",
        };
        f.debug_struct("Redaction")
            .field("hook", &format_args!("{hook}"))
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

// Last: the layout test (tests/layout.rs) reads a file's code as what comes before its tests.
#[cfg(test)]
mod tests;
