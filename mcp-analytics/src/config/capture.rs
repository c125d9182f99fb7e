//! The builder's settings for what is captured on request and what is sent: how users are
//! recorded, and the hook that sees every row before it is sent.

use std::fmt;

use super::Builder;
use crate::before_send::{BeforeSend, Event};
use crate::capture::{self, user::HashKey};
use crate::error::Error;
use crate::redact::{RedactHook, Redaction};

/// Shortest key `hash_users` takes: 128 bits, as much as the hashes it keys keep.
const MIN_USER_KEY_BYTES: usize = 16;

/// Smallest `capture_limit`: room for a cut value's marker, and some of the value.
const MIN_CAPTURE_LIMIT: usize = 128;

/// What the builder holds for the capture settings.
#[derive(Clone, Default)]
pub(super) struct CaptureOptions {
    user_key: Option<HashKey>,
    redact_with: Option<RedactHook>,
    capture_limit: Option<usize>,
    pub(super) before_send: Option<BeforeSend>,
}

impl fmt::Debug for CaptureOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureOptions")
            .field("hash_users", &self.user_key.is_some())
            .field("redact_with", &self.redact_with.is_some())
            .field("capture_limit", &self.capture_limit)
            .field("before_send", &self.before_send.is_some())
            .finish()
    }
}

impl CaptureOptions {
    /// The settings the recording threads will read, or why they cannot be.
    pub(super) fn resolve(&self) -> Result<capture::Settings, Error> {
        if self
            .user_key
            .as_ref()
            .is_some_and(|key| key.len() < MIN_USER_KEY_BYTES)
        {
            return Err(Error::InvalidSetting {
                setting: "hash_users",
                reason: format!("the key must be at least {MIN_USER_KEY_BYTES} bytes"),
            });
        }
        let max_bytes = self.capture_limit.unwrap_or(Redaction::DEFAULT_MAX_BYTES);
        if max_bytes < MIN_CAPTURE_LIMIT {
            return Err(Error::InvalidSetting {
                setting: "capture_limit",
                reason: format!("must be at least {MIN_CAPTURE_LIMIT} bytes"),
            });
        }
        Ok(capture::Settings {
            user_key: self.user_key.clone(),
            redaction: Redaction::new(self.redact_with.clone(), max_bytes),
        })
    }
}

impl Builder {
    /// Records users as a keyed hash of their id rather than the id: HMAC-SHA-256 under `key`,
    /// the first 128 bits as 32 hex digits. One user's calls still group together, but the
    /// data names nobody, and without the key a guessed id cannot be checked against it. Keep
    /// the key secret and stable (a changed key splits every user in two); it must be at least
    /// 16 bytes, and it never appears in `Debug` output, errors or logs.
    ///
    /// Users come from `user = ..` on an attribute, a [`Dimensions`](crate::Dimensions) scope,
    /// or the rmcp server wrapper's `identify`. Default: recorded as given.
    ///
    /// ```
    /// let key = std::env::var("ANALYTICS_USER_KEY").unwrap_or_else(|_| "a".repeat(32));
    /// let builder = mcp_analytics::builder().hash_users(key);
    /// assert!(!format!("{builder:?}").contains("aaaa"));
    /// ```
    pub fn hash_users(mut self, key: impl AsRef<[u8]>) -> Self {
        self.capture.user_key = Some(HashKey::new(key.as_ref()));
        self
    }
}

impl Builder {
    /// Your own redaction, run on every captured value (arguments, results) after the built-in
    /// layers (credential keys, secrets and personal data inside strings) and before the size
    /// bound: remove members, mask ids, replace the value whole. It runs on the thread that
    /// records the call, before the row is queued: keep it cheap. A hook that panics fails
    /// closed: the value is replaced by a marker, and the call goes on.
    ///
    /// ```
    /// let _analytics = mcp_analytics::builder()
    ///     .redact_with(|value| {
    ///         if let Some(object) = value.as_object_mut() {
    ///             object.remove("customer_id");
    ///         }
    ///     })
    ///     .init();
    /// ```
    pub fn redact_with(
        mut self,
        hook: impl Fn(&mut serde_json::Value) + Send + Sync + 'static,
    ) -> Self {
        self.capture.redact_with = Some(std::sync::Arc::new(hook));
        self
    }

    /// The most bytes of compact JSON one captured value (a call's arguments, its result)
    /// keeps; a longer one is cut, the cut marked. Default: 4 KiB; at least 128.
    ///
    /// ```
    /// let _analytics = mcp_analytics::builder().capture_limit(16 * 1024).init();
    /// ```
    pub fn capture_limit(mut self, bytes: usize) -> Self {
        self.capture.capture_limit = Some(bytes);
        self
    }

    /// A hook that sees every row before it is sent, as an [`Event`], and returns it (as it
    /// is or amended) or `None` to drop it: sampling, a key removed, a field added. Dropped
    /// rows are counted in [`Stats::filtered`](crate::Stats::filtered).
    ///
    /// It runs on the analytics worker thread, never on a handler's, so it may take its time
    /// without slowing a call; what is captured on request reaches it already redacted. A
    /// hook that panics drops the row it was given (said once on stderr), and nothing else.
    ///
    /// ```
    /// // One row in ten of the successful calls, every failure, no log lines.
    /// let mut seen = 0_u64;
    /// let _analytics = mcp_analytics::builder()
    ///     .before_send(move |event| {
    ///         seen += 1;
    ///         let keep = event.level == "error" || (event.kind() != "log" && seen % 10 == 0);
    ///         keep.then_some(event)
    ///     })
    ///     .init();
    /// ```
    pub fn before_send(
        mut self,
        hook: impl FnMut(Event) -> Option<Event> + Send + 'static,
    ) -> Self {
        self.capture.before_send = Some(BeforeSend::new(hook));
        self
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_short_user_key_is_refused_naming_the_setting() {
        let error = crate::builder().hash_users("short").capture.resolve();
        let Err(error) = error else {
            panic!("a 5-byte key is refused");
        };
        assert!(error.to_string().contains("hash_users"), "{error}");
        assert!(!error.to_string().contains("short"), "the key is not shown");
        assert!(
            crate::builder()
                .hash_users([7; 16])
                .capture
                .resolve()
                .is_ok()
        );
    }
}
