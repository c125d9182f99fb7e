//! Which names mark a credential: an object's keys, and the names written before a value inside
//! text (`token=…`, `"password": …`, `Authorization: …`, read by `named`).
//!
//! The rule, in full: lowercase the name (ASCII) and drop the separators `-`, `_`, `.` and
//! spaces, so that `api_key`, `API-KEY`, `apiKey` and `apikey` read the same. The name is a
//! credential when what is left ends with one of [`ENDINGS`], or is one of [`WHOLE`].
//!
//! Endings, not words anywhere: a credential is what the name ends on (`github_token`,
//! `client_secret`, `x-api-key`), while names that merely mention one end on something else
//! (`token_count`, `password_policy`, `secret_name`, `credentials_path`). The plural `tokens`
//! is not an ending: in a model's world it counts words (`max_tokens`, `tokens_used`,
//! `input_tokens`), so only the plurals that hold credentials (`access_tokens`, ...) are listed.
//! `key` alone is not one either (`key`, `primary_key` and `sort_key` are everyday names);
//! the kinds of key that are secrets are (`api_key`, `private_key`, `secret_key`, ...).
//!
//! A name that does not end this way may still hold a secret: the pattern layer looks at every
//! string's content whatever its name.

/// What a credential's name ends with, once normalised (lowercase, no separators).
pub(super) const ENDINGS: &[&str] = &[
    // Tokens of every kind: access, refresh, id, session, csrf, github_, slack_bot_...
    "token",
    "accesstokens",
    "refreshtokens",
    "authtokens",
    "apitokens",
    "idtokens",
    // Secrets and passwords.
    "secret",
    "secrets",
    "password",
    "passwords",
    "passwordhash",
    "passwd",
    "pwd",
    "passphrase",
    "mnemonic",
    "otp",
    // Keys that are secrets (not `key` alone: see the module's doc).
    "apikey",
    "apikeys",
    "accesskey",
    "secretkey",
    "privatekey",
    "signingkey",
    "encryptionkey",
    "masterkey",
    "sessionkey",
    "licensekey",
    // HTTP: headers and cookies.
    "auth",
    "authorization",
    "bearer",
    "cookie",
    "cookies",
    "credential",
    "credentials",
    // Session ids are bearer credentials: `sessionid`, `session_id`, `JSESSIONID`, `PHPSESSID`.
    "sessionid",
    "sessid",
    // A card's security code, which no pattern can tell from any three digits.
    "cvv",
    "cvv2",
    "cvc",
];

/// Whole names (normalised) that are credentials, too short to be safe as endings (`pass`
/// ends `bypass` and `compass`).
pub(super) const WHOLE: &[&str] = &["pass"];

/// Whole names (normalised) that are credentials only as URL query or fragment fields (`?sig=…`
/// of a presigned URL, `?code=…` of an OAuth redirect, `?key=…` of Google's APIs), where they
/// are not the everyday words they are elsewhere.
pub(super) const URL_FIELDS: &[&str] = &[
    "sig",
    "signature",
    "xamzsignature",
    "xgoogsignature",
    "code",
    "key",
];

/// The longest ending: only that many normalised bytes from a name's end are ever compared.
const LONGEST: usize = longest(ENDINGS);

/// For each byte, the endings (bit `i`: `ENDINGS[i]`) that end with it.
const BY_LAST_BYTE: [u64; 256] = by_last_byte(ENDINGS);

const fn by_last_byte(endings: &[&str]) -> [u64; 256] {
    assert!(endings.len() <= 64, "one bit an ending");
    let mut table = [0; 256];
    let mut at = 0;
    while at < endings.len() {
        let bytes = endings[at].as_bytes();
        table[bytes[bytes.len() - 1] as usize] |= 1 << at;
        at += 1;
    }
    table
}

const fn longest(endings: &[&str]) -> usize {
    let mut max = 0;
    let mut at = 0;
    while at < endings.len() {
        if endings[at].len() > max {
            max = endings[at].len();
        }
        at += 1;
    }
    max
}

/// Whether `name` (an object key, or a name written in text) names a credential, by the rule
/// of the module's doc. Allocation-free: it runs on every key of every captured object.
pub(super) fn is_credential_key(name: &str) -> bool {
    let (tail, complete) = normalised_tail(name);
    let Some(&last) = tail.last() else {
        return false;
    };
    // Only the endings with the same last byte are compared: a few at most.
    let mut candidates = BY_LAST_BYTE[usize::from(last)];
    while candidates != 0 {
        let at = candidates.trailing_zeros() as usize;
        candidates &= candidates - 1;
        if ENDINGS
            .get(at)
            .is_some_and(|ending| tail.ends_with(ending.as_bytes()))
        {
            return true;
        }
    }
    complete && WHOLE.iter().any(|whole| *tail == *whole.as_bytes())
}

/// Whether `name`, as the name of a URL's query or fragment field, names a credential: the
/// names of [`is_credential_key`], and [`URL_FIELDS`].
pub(super) fn is_credential_field(name: &str) -> bool {
    let (tail, complete) = normalised_tail(name);
    is_credential_key(name)
        || (complete && URL_FIELDS.iter().any(|field| *tail == *field.as_bytes()))
}

/// The last [`LONGEST`] bytes of `name` once normalised, and whether that is all of it.
fn normalised_tail(name: &str) -> (NormalisedTail, bool) {
    let mut tail = NormalisedTail {
        bytes: [0; LONGEST],
        len: 0,
    };
    for &byte in name.as_bytes().iter().rev() {
        if matches!(byte, b'-' | b'_' | b'.' | b' ') {
            continue;
        }
        if tail.len == LONGEST {
            return (tail, false);
        }
        tail.len += 1;
        tail.bytes[LONGEST - tail.len] = byte.to_ascii_lowercase();
    }
    (tail, true)
}

/// A name's normalised end, kept on the stack.
struct NormalisedTail {
    bytes: [u8; LONGEST],
    len: usize,
}

impl std::ops::Deref for NormalisedTail {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes[LONGEST - self.len..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_names_are_found_whatever_their_case_and_separators() {
        for name in [
            "authorization",
            "Authorization",
            "Proxy-Authorization",
            "password",
            "PASSWORD",
            "db_password",
            "newPassword",
            "passwd",
            "pwd",
            "pass",
            "token",
            "access_token",
            "refresh-token",
            "id_token",
            "idToken",
            "GITHUB_TOKEN",
            "x-auth-token",
            "secret",
            "client_secret",
            "clientSecret",
            "api_key",
            "api-key",
            "apikey",
            "apiKey",
            "APIKey",
            "x-api-key",
            "X-API-KEY",
            "x.api.key",
            "cookie",
            "set-cookie",
            "Set-Cookie",
            "session_id",
            "sessionid",
            "JSESSIONID",
            "PHPSESSID",
            "private_key",
            "privateKey",
            "aws_secret_access_key",
            "credentials",
            "credential",
            "bearer",
            "auth",
            "oauth",
            "cvv",
            "otp",
        ] {
            assert!(is_credential_key(name), "{name} names a credential");
        }
    }

    #[test]
    fn names_that_mention_a_credential_but_end_otherwise_are_kept() {
        for name in [
            "max_tokens",
            "tokens_used",
            "input_tokens",
            "outputTokens",
            "token_count",
            "token_type",
            "tokenizer",
            "token_budget",
            "tokens",
            "key",
            "primary_key",
            "sort_key",
            "public_key",
            "keyboard",
            "author",
            "auth_method",
            "secret_name",
            "secretary",
            "password_policy",
            "credentials_path",
            "session",
            "session_count",
            "bypass",
            "compass",
            "passenger",
            "code",
            "signature",
            "",
            "-_.",
            "ключ",
        ] {
            assert!(!is_credential_key(name), "{name} is not a credential");
        }
    }

    #[test]
    fn url_fields_add_the_names_that_are_credentials_only_in_urls() {
        for name in [
            "sig",
            "Signature",
            "code",
            "key",
            "token",
            "X-Amz-Signature",
        ] {
            assert!(is_credential_field(name), "{name}");
        }
        assert!(!is_credential_field("page"));
        assert!(!is_credential_key("sig"), "sig is a URL field only");
    }

    #[test]
    fn a_long_name_is_judged_on_its_end() {
        let long = format!("{}_api_key", "x".repeat(1_000));
        assert!(is_credential_key(&long));
        assert!(!is_credential_key(&format!("{}pass", "x".repeat(100))));
        assert!(
            !is_credential_key(&"pass".repeat(100)),
            "whole names are whole"
        );
    }

    #[test]
    fn every_ending_is_normalised() {
        for ending in ENDINGS.iter().chain(WHOLE).chain(URL_FIELDS) {
            assert!(
                ending
                    .bytes()
                    .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit()),
                "{ending}"
            );
        }
    }
}
