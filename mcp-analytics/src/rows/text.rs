//! Text a row keeps: names, session ids, error texts and log messages, each cut to a bound so
//! that one huge `Display` cannot make a row, or the queue, grow without limit.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

/// Longest error text kept per call, in bytes; a longer text is cut at a character boundary
/// and ends in `…`.
///
/// ```
/// assert!(mcp_analytics::limits::MAX_ERROR_LEN >= 256);
/// ```
pub const MAX_ERROR_LEN: usize = 1024;

/// Longest name or session id kept per call, in bytes, cut the same way.
///
/// ```
/// assert!(mcp_analytics::limits::MAX_NAME_LEN >= 128);
/// ```
pub const MAX_NAME_LEN: usize = 512;

/// Longest free text an agent gave, kept per call, in bytes, cut the same way: its stated
/// intent, or its report of a missing capability (the rmcp wrapper's agent-facing options).
///
/// ```
/// assert!(mcp_analytics::limits::MAX_INTENT_LEN >= 256);
/// ```
pub const MAX_INTENT_LEN: usize = 512;

const ELLIPSIS: char = '…';

/// Formats `value` into at most `limit` bytes. Formatting stops as soon as the limit is reached,
/// so a huge `Display` costs no more than a short one.
pub(crate) fn bounded(value: &dyn fmt::Display, limit: usize) -> Box<str> {
    let mut out = Bounded {
        text: String::new(),
        limit,
    };
    // An error here is either our own "limit reached" or a misbehaving `Display`: keep what
    // was written either way.
    if write!(out, "{value}").is_err() && out.text.len() > limit {
        // Over the limit: cut so that the text and its ellipsis fit within it, whichever
        // piece of the `Display` crossed it.
        let mut cut = limit.saturating_sub(ELLIPSIS.len_utf8());
        while !out.text.is_char_boundary(cut) {
            cut -= 1;
        }
        out.text.truncate(cut);
        out.text.push(ELLIPSIS);
    }
    out.text.into_boxed_str()
}

/// `text` cut to at most `limit` bytes as [`bounded`] cuts it; borrowed when it fits, which
/// is almost always, without the formatting machinery.
pub(crate) fn bounded_str(text: &str, limit: usize) -> Cow<'_, str> {
    if text.len() <= limit {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(bounded(&text, limit).into_string())
    }
}

/// Collects formatted text up to one byte past its limit (enough to know it was crossed), then
/// stops the formatting.
struct Bounded {
    text: String,
    limit: usize,
}

impl fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.limit + 1 - self.text.len();
        if s.len() < room {
            self.text.push_str(s);
            return Ok(());
        }
        let mut end = room;
        while !s.is_char_boundary(end) {
            end += 1;
        }
        self.text.push_str(&s[..end]);
        Err(fmt::Error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_keeps_short_text_whole() {
        assert_eq!(&*bounded(&"division by zero", 64), "division by zero");
    }

    #[test]
    fn bounded_str_borrows_what_fits_and_cuts_as_bounded_does() {
        assert!(matches!(bounded_str("add", 3), Cow::Borrowed("add")));
        let long = "é".repeat(100);
        assert_eq!(&*bounded_str(&long, 11), &*bounded(&long, 11));
    }

    #[test]
    fn bounded_cuts_at_a_char_boundary_within_the_limit() {
        let long = "é".repeat(100); // 200 bytes
        let cut = bounded(&long, 11);
        assert!(cut.len() <= 11, "{} bytes", cut.len());
        assert!(cut.ends_with('…'));
        assert_eq!(cut.trim_end_matches('…'), "éééé");
    }

    #[test]
    fn bounded_cuts_text_written_in_pieces_within_the_limit() {
        struct Pieces;
        impl fmt::Display for Pieces {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&"a".repeat(10))?;
                f.write_str("bb")?;
                f.write_str("c")
            }
        }
        // Exactly at the limit: whole, no ellipsis.
        assert_eq!(&*bounded(&Pieces, 13), "aaaaaaaaaabbc");
        // One byte over, after earlier pieces filled it: cut back to fit the ellipsis.
        let cut = bounded(&Pieces, 12);
        assert_eq!(&*cut, "aaaaaaaaa…");
        assert!(cut.len() <= 12, "{}", cut.len());
        for limit in 3..=14 {
            assert!(bounded(&Pieces, limit).len() <= limit, "limit {limit}");
        }
    }

    #[test]
    fn bounded_stops_formatting_a_huge_display_early() {
        struct Endless;
        impl fmt::Display for Endless {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                loop {
                    f.write_str("again ")?;
                }
            }
        }
        let text = bounded(&Endless, MAX_ERROR_LEN);
        assert!(text.len() <= MAX_ERROR_LEN);
        assert!(text.starts_with("again again"));
    }
}
