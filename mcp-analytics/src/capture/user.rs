//! The user a call acts for: recorded as given, or, with `Builder::hash_users`, as a keyed hash
//! (HMAC-SHA-256 under the server's own secret key), which still groups one user's calls but
//! cannot be turned back into the id, nor recomputed from a guessed id without the key.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::rows::text::{self, MAX_NAME_LEN};

/// Bytes of the digest kept: 128 bits, ample to keep users apart, half the text.
const KEPT_DIGEST_BYTES: usize = 16;

/// The secret key users are hashed with. Never shown: `Debug` says only that it is set.
#[derive(Clone)]
pub(crate) struct HashKey(Box<[u8]>);

impl HashKey {
    pub(crate) fn new(key: &[u8]) -> Self {
        Self(key.into())
    }

    /// The key's length, in bytes.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// `user`'s hash, as hex.
    fn digest(&self, user: &str) -> String {
        // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            return String::new();
        };
        mac.update(user.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut hex = String::with_capacity(2 * KEPT_DIGEST_BYTES);
        for byte in &digest[..KEPT_DIGEST_BYTES] {
            let _ = write!(hex, "{byte:02x}");
        }
        hex
    }
}

impl fmt::Debug for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// A user id as given, bounded like names.
pub(crate) fn bounded(user: &dyn fmt::Display) -> Box<str> {
    text::bounded(user, MAX_NAME_LEN)
}

/// How `user` is recorded: `None` for an empty id, and before `init` (whether to hash it is
/// not known yet); else the id, or its hash when users are hashed.
pub(crate) fn recorded(user: &str) -> Option<Arc<str>> {
    if user.is_empty() {
        return None;
    }
    let settings = super::settings()?;
    Some(match &settings.user_key {
        Some(key) => Arc::from(key.digest(user)),
        None => Arc::from(user),
    })
}

/// [`recorded`] for any `Display`: what `user = <expr>` records.
pub(crate) fn recorded_display(user: &dyn fmt::Display) -> Option<Arc<str>> {
    recorded(&bounded(user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_keyed_stable_and_short() {
        let key = HashKey::new(b"server secret");
        let once = key.digest("user_42");
        assert_eq!(once, key.digest("user_42"), "one user, one hash");
        assert_eq!(once.len(), 2 * KEPT_DIGEST_BYTES);
        assert!(once.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(once, key.digest("user_43"));
        assert_ne!(once, HashKey::new(b"other secret").digest("user_42"));
        assert!(!format!("{key:?}").contains("server secret"));
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // RFC 4231, test case 2: key "Jefe".
        let key = HashKey::new(b"Jefe");
        assert_eq!(
            key.digest("what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c7"
        );
    }
}
