//! Secrets and personal data inside strings, found by their shape (a provider's key format, a
//! JWT, an email address, a card number) or by the name written before them (`named`), each
//! replaced by a marker naming its kind: `[redacted:github_token]`, `[redacted:email]`, ...
//!
//! Every string of a captured value goes through here, so plain strings must be cheap: one
//! pass over the bytes ([`Hints`]) tells whether any shape could be there at all (most
//! strings: names, words, prose, numbers, dates: no), then one pass of a [`RegexSet`] says
//! which shapes the string holds, and only those shapes' regexes run. The shapes run in
//! [`SHAPES`]' order, most specific first: a card number's digits inside a GitHub token, or an
//! email inside a URL's credentials, must go with the larger secret, not leave the rest of it
//! behind.
//!
//! Only ASCII classes are used (no `\d`, `\w`, `\s` or Unicode `\b`): every format matched is
//! ASCII, and so the `regex` dependency needs none of its Unicode tables (see Cargo.toml).

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Captures, Regex, RegexSet};

use super::named;
use crate::rows::text::bounded_str;

/// How much text past a string's kept length is still scanned, so that a secret the scan's end
/// cuts through is recognised whole. Covers every format here but a PEM key (which is redacted
/// to the end of the text when its end is cut off) and JWTs over 1 KiB.
pub(super) const SCAN_MARGIN: usize = 1024;

/// The shortest text that can hold anything redacted here (`pwd=x`, `a@b.co` are 5 and 6
/// bytes); shorter strings (enums, ids, numbers written as text) skip the scan.
const MIN_SECRET_LEN: usize = 5;

/// One kind of secret or personal data, recognised by its form.
struct Shape {
    /// What replaces it.
    marker: &'static str,
    /// Its form; where only part of a match is secret, that part is the group named `s`.
    pattern: &'static str,
    /// When a match is redacted.
    check: Check,
}

/// Which matches of a shape's pattern are redacted.
#[derive(Clone, Copy)]
enum Check {
    /// Every match.
    Always,
    /// A bearer credential: not a word of prose ("Bearer tokens are ...").
    TokenLike,
    /// Card numbers: only digit groups that pass the Luhn check (see [`cards`]).
    Luhn,
}

/// ASCII whitespace, as a class's contents.
macro_rules! space {
    () => {
        r"\t\n\x0B\x0C\r "
    };
}

/// The shapes, in the order they are replaced. The provider formats are those the providers
/// document or that their scanners (GitHub's secret scanning) match.
const SHAPES: &[Shape] = &[
    Shape {
        marker: "[redacted:private_key]",
        // To the end of the text when the block's end is missing (a cut file).
        pattern: r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY-----(?s:.)*?(?:-----END[A-Z0-9 ]{0,40}PRIVATE KEY-----|\z)",
        check: Check::Always,
    },
    Shape {
        marker: "[redacted:anthropic_key]",
        pattern: r"(?-u:\b)sk-ant-[A-Za-z0-9_-]{20,}",
        check: Check::Always,
    },
    Shape {
        marker: "[redacted:openai_key]",
        // `sk-`, `sk-proj-`, `sk-svcacct-`, `sk-admin-`: the class takes the prefixes in.
        pattern: r"(?-u:\b)sk-[A-Za-z0-9_-]{20,}",
        check: Check::Always,
    },
    Shape {
        marker: "[redacted:github_token]",
        pattern: r"(?-u:\b)(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})",
        check: Check::Always,
    },
    Shape {
        marker: "[redacted:aws_key]",
        pattern: r"(?-u:\b)(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?-u:\b)",
        check: Check::Always,
    },
    Shape {
        marker: "[redacted:slack_token]",
        pattern: r"(?-u:\b)xox[abprs]-[A-Za-z0-9-]{10,}",
        check: Check::Always,
    },
    Shape {
        marker: "[redacted:stripe_key]",
        pattern: r"(?-u:\b)(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}",
        check: Check::Always,
    },
    Shape {
        marker: "[redacted:google_key]",
        pattern: r"(?-u:\b)AIza[A-Za-z0-9_-]{35}",
        check: Check::Always,
    },
    Shape {
        marker: "[redacted:tinybird_token]",
        // `p.` then a JWT's payload and signature; before `jwt`, which it would half match.
        pattern: r"(?-u:\b)p\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
        check: Check::Always,
    },
    Shape {
        marker: "[redacted:jwt]",
        // Header (JSON, so `eyJ`), payload, signature (empty for `alg: none`).
        pattern: r"(?-u:\b)eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*",
        check: Check::Always,
    },
    Shape {
        marker: "[redacted:url_credentials]",
        // The userinfo, up to its last `@`; the scheme and host stay.
        pattern: concat!(
            r"[A-Za-z][A-Za-z0-9+.-]{0,31}://(?P<s>[^/?#",
            space!(),
            r#""'<>]+)@"#
        ),
        check: Check::Always,
    },
    Shape {
        marker: "[redacted:bearer]",
        pattern: r"(?-u:\b)(?i-u:bearer)[ \t]+(?P<s>[A-Za-z0-9._~+/=-]{8,})",
        check: Check::TokenLike,
    },
    Shape {
        marker: "[redacted:email]",
        pattern: r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}(?-u:\b)",
        check: Check::Always,
    },
    Shape {
        marker: "[redacted:card]",
        // Digit runs with single spaces or dashes; [`cards`] finds the cards inside.
        pattern: r"(?-u:\b)[0-9](?:[ -]?[0-9]){12,}(?-u:\b)",
        check: Check::Luhn,
    },
];

/// Where the credentials named in text (`named`) are redacted among the shapes: after the
/// shapes that name a provider (so `token=ghp_…` says which), before the bearer shape (so
/// `Authorization: Bearer …` goes whole).
const NAMED_BEFORE: usize = 11;

/// All shapes at once: which of them a string holds, in one pass.
static SET: LazyLock<RegexSet> = LazyLock::new(|| {
    RegexSet::new(SHAPES.iter().map(|shape| shape.pattern)).expect("literal patterns compile")
});

/// Each shape's own regex, to replace its matches.
static REGEXES: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    SHAPES
        .iter()
        .map(|shape| Regex::new(shape.pattern).expect("a literal pattern compiles"))
        .collect()
});

/// `text` with every secret and personal datum found in it replaced by its marker; borrowed
/// when there is none, as for almost every string.
pub(super) fn scrub(text: &str) -> Cow<'_, str> {
    if text.len() < MIN_SECRET_LEN {
        return Cow::Borrowed(text);
    }
    let hints = Hints::of(text);
    if !hints.shapes && !hints.named {
        return Cow::Borrowed(text);
    }
    let shapes = hints.shapes.then(|| SET.matches(text));
    let named = hints.named;
    let mut text = Cow::Borrowed(text);
    for (index, shape) in SHAPES.iter().enumerate() {
        if index == NAMED_BEFORE && named {
            replace(&mut text, named::redact);
        }
        if shapes.as_ref().is_some_and(|shapes| shapes.matched(index)) {
            replace(&mut text, |current| redact_shape(index, shape, current));
        }
    }
    text
}

/// What one pass over a string's bytes says it may hold: each shape needs something most
/// strings lack, and finding none of it spares the string the regexes.
struct Hints {
    /// A shape may match: an `@` (emails, URL credentials), 13 digits apart from single spaces
    /// or dashes (a card), a run of 20 token characters (15 with `xox` or `eyJ` in it: Slack's
    /// shortest tokens, JWTs), five dashes (a PEM block), or the word `bearer`.
    shapes: bool,
    /// A `=` or `:` that a credential's name may come before (`named`).
    named: bool,
}

impl Hints {
    /// The shortest token run that may be a secret, and the shortest holding `xox` or `eyJ`.
    const LONG_RUN: usize = 20;
    const SHORT_RUN: usize = 15;

    fn of(text: &str) -> Self {
        let bytes = text.as_bytes();
        let mut hints = Hints {
            shapes: false,
            named: false,
        };
        let (mut run_start, mut dashes) = (0, 0);
        // Digits of a run a card may be: none (`None`) while glued to a word before it, which
        // the card pattern's word boundary rules out (`a716-4466…` in a UUID).
        let mut digits = Some(0);
        let mut previous = b' ';
        for (at, &byte) in bytes.iter().enumerate() {
            let token = byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-');
            if !token {
                hints.shapes |= Self::secret_run(&bytes[run_start..at]);
                run_start = at + 1;
            }
            digits = match byte {
                b'0'..=b'9' if previous.is_ascii_alphabetic() || previous == b'_' => None,
                b'0'..=b'9' => digits.map(|digits| digits + 1),
                // One separator between digits keeps the run; the second ends it.
                b' ' | b'-' if previous.is_ascii_digit() => Some(digits.unwrap_or(0)),
                _ => Some(0),
            };
            dashes = if byte == b'-' { dashes + 1 } else { 0 };
            hints.shapes |= byte == b'@' || digits >= Some(13) || dashes >= 5;
            hints.named |= byte == b'=' || byte == b':';
            previous = byte;
        }
        hints.shapes |= Self::secret_run(&bytes[run_start.min(bytes.len())..]);
        hints
    }

    /// Whether a run of token characters may be a secret, or ends with the word `bearer`. Runs
    /// of lowercase hex digits and dashes alone (UUIDs, digests) cannot be a token shape: each
    /// shape's prefix has a letter past `f` or an uppercase one (AWS's `ACCA`).
    fn secret_run(run: &[u8]) -> bool {
        let long = run.len() >= Self::LONG_RUN
            || (run.len() >= Self::SHORT_RUN
                && run
                    .windows(3)
                    .any(|three| three == b"xox" || three == b"eyJ"));
        let hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b) || *b == b'-';
        let bearer = run.len().checked_sub(6).is_some_and(|start| {
            run[start..].eq_ignore_ascii_case(b"bearer")
                && run[..start]
                    .last()
                    .is_none_or(|&b| !b.is_ascii_alphanumeric() && b != b'_')
        });
        (long && !run.iter().all(hex)) || bearer
    }
}

/// [`scrub`] at a bounded cost: a text longer than `limit` is scanned only to `limit` plus
/// [`SCAN_MARGIN`], and then cut to `limit` or to the margin's start, whichever is shorter,
/// ending in `…`. Dropping the margin drops any secret the scan's end cut through, even when an
/// earlier redaction shortened the text and would have slid it under `limit`.
pub(super) fn scrub_within(text: &str, limit: usize) -> Cow<'_, str> {
    let scan = limit.saturating_add(SCAN_MARGIN);
    if text.len() <= scan {
        return scrub(text);
    }
    let scrubbed = scrub(&text[..floor_char_boundary(text, scan)]);
    let keep = scrubbed.len().saturating_sub(SCAN_MARGIN).min(limit);
    Cow::Owned(bounded_str(&scrubbed, keep).into_owned())
}

/// The largest char boundary of `text` at or below `at` (`str::floor_char_boundary` is newer
/// than the crate's MSRV).
pub(super) fn floor_char_boundary(text: &str, at: usize) -> usize {
    if at >= text.len() {
        return text.len();
    }
    (0..=at)
        .rev()
        .find(|&at| text.is_char_boundary(at))
        .unwrap_or(0)
}

/// Replaces `text` with `redact`'s answer when it changed something.
fn replace(text: &mut Cow<'_, str>, redact: impl Fn(&str) -> Cow<'_, str>) {
    let changed = match redact(text) {
        Cow::Owned(changed) => changed,
        Cow::Borrowed(_) => return,
    };
    *text = Cow::Owned(changed);
}

/// `text` with the matches of one shape replaced.
fn redact_shape<'t>(index: usize, shape: &Shape, text: &'t str) -> Cow<'t, str> {
    let Some(regex) = REGEXES.get(index) else {
        return Cow::Borrowed(text);
    };
    regex.replace_all(text, |found: &Captures<'_>| {
        let whole = found.get(0).map_or("", |m| m.as_str());
        match (shape.check, found.name("s")) {
            (Check::Luhn, _) => cards::redact(whole, shape.marker),
            (Check::TokenLike, Some(token)) if !token_like(token.as_str()) => whole.to_owned(),
            (_, Some(secret)) => {
                let start = secret.start() - found.get(0).map_or(0, |m| m.start());
                let end = start + secret.len();
                format!("{}{}{}", &whole[..start], shape.marker, &whole[end..])
            }
            (_, None) => shape.marker.to_owned(),
        }
    })
}

/// Whether the word after `Bearer` is a credential rather than prose: credentials mix in digits
/// or punctuation, or are long.
fn token_like(word: &str) -> bool {
    word.len() >= 24 || word.bytes().any(|byte| !byte.is_ascii_alphabetic())
}

/// Payment card numbers inside a run of digits.
mod cards {
    /// The card numbers inside `run` (digits separated by single spaces or dashes) replaced by
    /// `marker`: each longest stretch of whole groups that is a card's length, starts as a card
    /// network's numbers do, and passes the Luhn check. Groups keep the rest of the run apart
    /// (an expiry date after the number, a phone number before it).
    pub(super) fn redact(run: &str, marker: &str) -> String {
        let groups: Vec<(usize, usize)> = groups(run);
        let mut out = String::new();
        let mut copied = 0;
        let mut first = 0;
        while first < groups.len() {
            match longest_card(run, &groups, first) {
                Some(last) => {
                    out.push_str(&run[copied..groups[first].0]);
                    out.push_str(marker);
                    copied = groups[last].1;
                    first = last + 1;
                }
                None => first += 1,
            }
        }
        out.push_str(&run[copied..]);
        out
    }

    /// The start and end of each group of digits.
    fn groups(run: &str) -> Vec<(usize, usize)> {
        let mut groups = Vec::new();
        let mut start = None;
        for (at, byte) in run.bytes().enumerate() {
            match (byte.is_ascii_digit(), start) {
                (true, None) => start = Some(at),
                (false, Some(from)) => {
                    groups.push((from, at));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(from) = start {
            groups.push((from, run.len()));
        }
        groups
    }

    /// The last group of the longest card that starts at group `first`, if any. A card is one
    /// group of 13 to 19 digits, or groups of 3 to 6 digits (4-4-4-4, Amex's 4-6-5, ...) whose
    /// first has 4; UUIDs, dates and phone numbers are grouped otherwise.
    fn longest_card(run: &str, groups: &[(usize, usize)], first: usize) -> Option<usize> {
        let mut digits = String::new();
        let mut longest = None;
        for (last, &(start, end)) in groups.iter().enumerate().skip(first) {
            let group = end - start;
            let grouped = last > first || group < 13;
            if grouped && (!(3..=6).contains(&group) || (groups[first].1 - groups[first].0) != 4) {
                break;
            }
            digits.push_str(&run[start..end]);
            if digits.len() > 19 {
                break;
            }
            if digits.len() >= 13 && issued(&digits) && luhn(&digits) {
                longest = Some(last);
            }
        }
        longest
    }

    /// Whether `digits` start as a card network's do: 3 (Amex, Diners, JCB), 4 (Visa),
    /// 5 (Mastercard, Maestro), 6 (Discover, UnionPay), or Mastercard's 2221 to 2720. Spares
    /// the Luhn-valid tenth of ids and epoch milliseconds (`17…`) and dates (`2024…`).
    fn issued(digits: &str) -> bool {
        match digits.as_bytes().first() {
            Some(b'3'..=b'6') => true,
            Some(b'2') => digits
                .get(..4)
                .and_then(|prefix| prefix.parse::<u16>().ok())
                .is_some_and(|prefix| (2221..=2720).contains(&prefix)),
            _ => false,
        }
    }

    /// The Luhn checksum of card numbers, which a mistyped digit fails.
    pub(super) fn luhn(digits: &str) -> bool {
        let sum: u32 = digits
            .bytes()
            .rev()
            .enumerate()
            .map(|(position, byte)| {
                let digit = u32::from(byte - b'0');
                match position % 2 {
                    1 if digit > 4 => digit * 2 - 9,
                    1 => digit * 2,
                    _ => digit,
                }
            })
            .sum();
        sum.is_multiple_of(10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrubbed(text: &str) -> String {
        scrub(text).into_owned()
    }

    #[test]
    fn every_pattern_compiles_alone_and_in_the_set() {
        assert_eq!(REGEXES.len(), SHAPES.len());
        assert_eq!(SET.len(), SHAPES.len());
        assert_eq!(SHAPES[NAMED_BEFORE].marker, "[redacted:bearer]");
    }

    #[test]
    fn plain_text_is_borrowed() {
        for text in [
            "",
            "add",
            "the token budget",
            "hello, world",
            "résumé ünïcode ✓",
        ] {
            assert!(matches!(scrub(text), Cow::Borrowed(_)), "{text}");
        }
    }

    #[test]
    fn the_secret_part_goes_and_its_context_stays() {
        assert_eq!(
            scrubbed("see https://admin:hunter2@db.example.com:5432/app now"),
            "see https://[redacted:url_credentials]@db.example.com:5432/app now"
        );
        assert_eq!(
            scrubbed("curl -H 'authorization: bearer 9f8e7d6c5b4a3f2e' x"),
            "curl -H 'authorization: [redacted]' x"
        );
        assert_eq!(
            scrubbed("send Bearer 9f8e7d6c5b4a3f2e1d0c along"),
            "send Bearer [redacted:bearer] along"
        );
        assert_eq!(
            scrubbed("mail jane.doe+tag@example.co.uk."),
            "mail [redacted:email]."
        );
        assert_eq!(
            scrubbed("key=AKIAIOSFODNN7EXAMPLE;"),
            "key=[redacted:aws_key];"
        );
    }

    #[test]
    fn bearer_before_prose_is_kept() {
        for text in ["a Bearer token goes in the header", "Bearer authentication"] {
            assert_eq!(scrubbed(text), text);
        }
    }

    #[test]
    fn cards_are_luhn_valid_issued_groups_and_their_neighbours_stay() {
        assert_eq!(
            scrubbed("card 4111 1111 1111 1111 12 30 ok"),
            "card [redacted:card] 12 30 ok"
        );
        assert_eq!(
            scrubbed("amex 3782-822463-10005, visa 4242424242424242"),
            "amex [redacted:card], visa [redacted:card]"
        );
        for kept in [
            "order 4111111111111112",                  // fails Luhn
            "at 1718035200000 ms",                     // epoch milliseconds
            "id 12345678-1234-1234-1234-123456789012", // grouped as a UUID
            "call +1 415 555 0142 4111",
        ] {
            assert_eq!(scrubbed(kept), kept);
        }
        assert!(cards::luhn("79927398713"));
        assert!(!cards::luhn("79927398710"));
    }

    #[test]
    fn a_long_text_is_scanned_to_its_limit_and_the_margin() {
        let text = format!("{} {}", "a".repeat(5_000), "bob@example.com");
        let scanned = scrub_within(&text, 100);
        assert!(scanned.len() <= 100 && scanned.ends_with('…'), "{scanned}");
        // An email cut by the scan's end never shows, however the text shrank before it.
        let emails = "x@example.com ".repeat(40);
        let shrinking = format!("{emails}{}", "y".repeat(SCAN_MARGIN - 20));
        let text = format!("{shrinking} jane.doe@example.org and more");
        let scanned = scrub_within(&text, 600);
        assert!(!scanned.contains("jane"), "{scanned}");
        assert!(!scanned.contains("@example"), "{scanned}");
    }

    #[test]
    fn the_byte_hints_never_turn_away_what_a_shape_matches() {
        let corpus: serde_json::Value =
            serde_json::from_str(include_str!("corpus.json")).expect("corpus.json parses");
        let samples = corpus["secrets"].as_array().expect("secrets");
        let mut texts: Vec<String> = [
            "ACCA0123456789ABCDEF",
            "x-Bearer 1234abcd",
            "x.bearer 1234abcd",
            "é4111111111111111",
            "a12 4111 1111 1111 1111",
            "eyJabcdefgh.ab.",
            "xoxb-0123456789",
        ]
        .map(String::from)
        .into();
        for sample in samples {
            let text = sample["text"].as_str().expect("text");
            for context in ["{}", "x.{}", "x-{}", "é{}.", "({})", "a={}&b", "\"{}\""] {
                texts.push(context.replace("{}", text));
            }
        }
        for text in &texts {
            if SET.is_match(text) {
                assert!(Hints::of(text).shapes, "{text}");
            }
        }
    }

    #[test]
    fn floor_char_boundary_never_splits_a_char() {
        let text = "aé€";
        assert_eq!(floor_char_boundary(text, 2), 1);
        assert_eq!(floor_char_boundary(text, 3), 3);
        assert_eq!(floor_char_boundary(text, 5), 3);
        assert_eq!(floor_char_boundary(text, 99), text.len());
    }
}
