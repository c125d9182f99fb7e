//! Credentials named inside text: a value written after a credential's name and `=` or `:`, as
//! in a URL's query (`?token=…`), a form body, an env file (`API_KEY=…`), a connection string
//! (`Password=…;`), an HTTP header (`Authorization: Basic …`), YAML (`password: …`), a CLI flag
//! (`--password=…`) or JSON text (`"client_secret": "…"`, which tool results often are).
//!
//! The names are those of `keys`, so a member and its JSON text are treated alike. The text is
//! read by hand, from each `=` or `:` back to the name and on to the value: a value's end
//! depends on how it is written (quoted, bracketed, or bare), a regex that also matched the value
//! would consume text where the next name starts (`a=b:token=c`), and a regex search costs far
//! more than this walk on text full of colons (timestamps, URLs).

use std::borrow::Cow;

use super::keys::{is_credential_field, is_credential_key};

/// What a named credential's value becomes: the same marker as a member's value (the key
/// layer's), since the name, right before it, says what it was.
pub(super) const REDACTED: &str = "[redacted]";

/// The longest name read before a separator: longer runs are not names, and a name's end is
/// what `keys` judges it by.
const MAX_NAME: usize = 64;

/// Authorization schemes written before the credential (`Authorization: Basic dXNlcjpw`):
/// the credential is the word after them, so both go.
const SCHEMES: &[&str] = &["basic", "bearer", "digest", "token", "negotiate", "ntlm"];

/// `text` with the value of every credential named in it replaced by [`REDACTED`]; borrowed
/// when there is none.
pub(super) fn redact(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out = String::new();
    // How far `text` has been copied to `out`, or skipped as a redacted value.
    let mut copied = 0;
    for (sep, _) in bytes
        .iter()
        .enumerate()
        .filter(|&(_, &byte)| byte == b'=' || byte == b':')
    {
        if sep < copied {
            continue; // inside a value already redacted
        }
        let Some(start) = name_start(bytes, sep) else {
            continue;
        };
        let Some(value) = credential_value(text, start, sep + 1) else {
            continue;
        };
        out.push_str(&text[copied..value.start]);
        match value.quote {
            Some(quote) => {
                out.push(quote);
                out.push_str(REDACTED);
                out.push(quote);
            }
            None => out.push_str(REDACTED),
        }
        copied = value.end;
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// Where the name before the separator at `sep` starts: a run of name characters (ASCII
/// letters, digits, `_`, `.`, `-`), at most [`MAX_NAME`] long, then maybe a quote and blanks.
fn name_start(bytes: &[u8], sep: usize) -> Option<usize> {
    let blanks = bytes[..sep]
        .iter()
        .rev()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    let mut end = sep - blanks;
    if end > 0 && matches!(bytes[end - 1], b'"' | b'\'') {
        end -= 1;
    }
    let name = bytes[..end]
        .iter()
        .rev()
        .take(MAX_NAME)
        .take_while(|&&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        .count();
    (name > 0).then_some(end - name)
}

/// Where a credential's value lies in the text, and the quote its replacement is written in
/// (the value's own, or else its name's: JSON text stays valid JSON).
struct Span {
    start: usize,
    end: usize,
    quote: Option<char>,
}

/// The value after the name at `start..sep_end` (which ends with its `=` or `:`), when the
/// name is a credential's and a value follows.
fn credential_value(text: &str, start: usize, sep_end: usize) -> Option<Span> {
    let bytes = text.as_bytes();
    let sep = bytes[sep_end - 1];
    // `::` (a path), `==` (a comparison), `=>` (an arrow): not values. (A URL's `https:` needs
    // no such rule: its name is not a credential's.)
    if matches!(bytes.get(sep_end), Some(b':' | b'=' | b'>')) {
        return None;
    }
    let name_end = text[start..sep_end - 1].trim_end_matches([' ', '\t']).len() + start;
    let name_quote = match bytes[name_end - 1] {
        quote @ (b'"' | b'\'') => Some(char::from(quote)),
        _ => None,
    };
    let name = &text[start..name_end - usize::from(name_quote.is_some())];
    // A name right after `?`, `&`, `#` or `;` is a URL's (or a connection string's) field.
    let before = start.checked_sub(1).map(|at| bytes[at]);
    let in_url = sep == b'=' && matches!(before, Some(b'?' | b'&' | b'#' | b';'));
    let credential = if in_url {
        is_credential_field(name)
    } else {
        is_credential_key(name)
    };
    if !credential {
        return None;
    }
    let value_start = sep_end + count_while(&bytes[sep_end..], |b| b == b' ' || b == b'\t');
    let rest = &text[value_start..];
    if rest
        .trim_start_matches(['"', '\''])
        .starts_with("[redacted")
    {
        return None; // already redacted, by name or by shape
    }
    let (len, quote) = match rest.as_bytes().first()? {
        &quote @ (b'"' | b'\'') => (quoted_len(rest), Some(char::from(quote))),
        b'[' | b'{' => (bracketed_len(rest), name_quote),
        _ => (bare_len(rest, name, sep, in_url), name_quote),
    };
    (len > 0).then_some(Span {
        start: value_start,
        end: value_start + len,
        quote,
    })
}

/// The length of a quoted value, quotes included; to the end when it is not closed (a cut
/// text). Backslash escapes a character, as in JSON.
fn quoted_len(rest: &str) -> usize {
    let bytes = rest.as_bytes();
    let quote = bytes[0];
    let mut at = 1;
    while at < bytes.len() {
        match bytes[at] {
            b'\\' => at += 2,
            byte if byte == quote => return at + 1,
            _ => at += 1,
        }
    }
    rest.len()
}

/// The length of a JSON array or object written as the value, to its matching bracket
/// (brackets inside strings aside); to the end when it is not closed.
fn bracketed_len(rest: &str) -> usize {
    let bytes = rest.as_bytes();
    let mut depth = 0usize;
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'"' => at += quoted_len(&rest[at..]) - 1,
            b'[' | b'{' => depth += 1,
            b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return at + 1;
                }
            }
            _ => {}
        }
        at += 1;
    }
    rest.len()
}

/// The length of a bare value: an authorization scheme and its credential, then, after `=`
/// (env files, logfmt, flags, URLs), up to the first space or delimiter; after `:` (YAML,
/// headers), to the end of the line or a delimiter, spaces included (`password: correct horse
/// battery staple`). A cookie header's value is its whole line. Delimiters: `&` `;` quotes and
/// angle brackets, and `#` in a URL, `,` and closing brackets elsewhere.
fn bare_len(rest: &str, name: &str, sep: u8, in_url: bool) -> usize {
    let bytes = rest.as_bytes();
    let to_line_end = |b: u8| b != b'\n' && b != b'\r';
    if !in_url && name.to_ascii_lowercase().ends_with("cookie") {
        return count_while(bytes, to_line_end);
    }
    let mut start = 0;
    let word = count_while(bytes, |b| b.is_ascii_alphabetic());
    if SCHEMES
        .iter()
        .any(|scheme| rest[..word].eq_ignore_ascii_case(scheme))
    {
        let spaces = count_while(&bytes[word..], |b| b == b' ' || b == b'\t');
        if spaces > 0 && word + spaces < bytes.len() {
            start = word + spaces;
        }
    }
    let spaces_end = sep == b'=';
    let ends_value = |b: u8| {
        (if spaces_end {
            b.is_ascii_whitespace()
        } else {
            !to_line_end(b)
        }) || matches!(b, b'"' | b'\'' | b'<' | b'>' | b'&' | b';')
            || (in_url && b == b'#')
            || (!in_url && matches!(b, b',' | b')' | b']' | b'}'))
    };
    let len = start + count_while(&bytes[start..], |b| !ends_value(b));
    // Blanks before a delimiter are not the value's.
    rest[..len].trim_end_matches([' ', '\t']).len()
}

/// How many of `bytes`' first bytes satisfy `keep`.
fn count_while(bytes: &[u8], keep: impl Fn(u8) -> bool) -> usize {
    bytes.iter().take_while(|&&b| keep(b)).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redacted(text: &str) -> String {
        redact(text).into_owned()
    }

    #[test]
    fn url_fields_named_as_credentials_lose_their_value() {
        assert_eq!(
            redacted("GET https://api.example.com/v1?token=abc123&page=2#top"),
            "GET https://api.example.com/v1?token=[redacted]&page=2#top"
        );
        assert_eq!(
            redacted("https://s3.example.com/o?X-Amz-Signature=f00d&sig=beef"),
            "https://s3.example.com/o?X-Amz-Signature=[redacted]&sig=[redacted]"
        );
        assert_eq!(
            redacted("https://app.example.com/cb#access_token=xyz&state=1"),
            "https://app.example.com/cb#access_token=[redacted]&state=1"
        );
        assert_eq!(
            redacted("?code=4/0Adeu5B&scope=email"),
            "?code=[redacted]&scope=email"
        );
    }

    #[test]
    fn assignments_headers_and_json_text_lose_their_value() {
        assert_eq!(
            redacted("API_KEY=abc123 DEBUG=1"),
            "API_KEY=[redacted] DEBUG=1"
        );
        assert_eq!(redacted("token=/xYz+ab== next"), "token=[redacted] next");
        assert_eq!(
            redacted("run --password=hunter2 now"),
            "run --password=[redacted] now"
        );
        assert_eq!(
            redacted("Server=db;User Id=sa;Password=hunter2;"),
            "Server=db;User Id=sa;Password=[redacted];"
        );
        assert_eq!(
            redacted("Authorization: Basic dXNlcjpwYXNz\nAccept: */*"),
            "Authorization: [redacted]\nAccept: */*"
        );
        assert_eq!(
            redacted("Cookie: sid=abc; theme=dark\nHost: x"),
            "Cookie: [redacted]\nHost: x"
        );
        assert_eq!(
            redacted(r#"{"user":"ada","password":"hun\"ter2","max_tokens":5}"#),
            r#"{"user":"ada","password":"[redacted]","max_tokens":5}"#
        );
        assert_eq!(
            redacted(r#"{"token": 12345, "credentials": {"a": {"b": "}"}, "c": [1]}, "n": 1}"#),
            r#"{"token": "[redacted]", "credentials": "[redacted]", "n": 1}"#
        );
        assert_eq!(redacted("password: 'pa ss'"), "password: '[redacted]'");
        assert_eq!(
            redacted("db:\n  password: correct horse battery staple\n  port: 5432"),
            "db:\n  password: [redacted]\n  port: 5432"
        );
        assert_eq!(
            redacted("{password: two words , user: ada}"),
            "{password: [redacted] , user: ada}"
        );
        assert_eq!(
            redacted("password=hunter2 user=ada"),
            "password=[redacted] user=ada"
        );
    }

    #[test]
    fn other_names_paths_and_times_are_kept() {
        for text in [
            "max_tokens=1000 tokens_used: 20",
            "the token budget: 500 tokens",
            "crate::token::Kind and a == b and x => y",
            "https://example.com/?page=2&q=tokens",
            "at 12:30:00, key: value, code: 200",
            "password:",
            "token: [redacted:jwt]",
        ] {
            assert_eq!(redacted(text), text);
        }
    }

    #[test]
    fn a_value_cut_off_at_the_end_is_still_redacted() {
        assert_eq!(redacted(r#"{"secret": "abc"#), r#"{"secret": "[redacted]""#);
        assert_eq!(
            redacted(r#"{"secret": {"a": "#),
            r#"{"secret": "[redacted]""#
        );
    }
}
