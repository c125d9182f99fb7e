//! Whatever text a handler gives the pipeline (names through `name = <expr>`, error texts through
//! `Err(String)`, session ids through `session = <expr>`) comes out in the delivered rows
//! exactly: quotes, backslashes, newlines, control characters, any Unicode, several KB long.
//! Equal to the input after the documented truncation, on every line a valid JSON object.
//!
//! Property-based (proptest): each property generates a batch of inputs, calls the handler once
//! per input, flushes once, then checks every input against its row, matched by a tag of its
//! own. A failing input is then shrunk, one flush per step, to a minimal one.
//!
//! All tests of this binary share one pipeline (it is process-global), like `tests/events.rs`:
//! it delivers to memory ([`common::shared_memory`]), and every line must pass the loopback
//! Events API's schema checks, as it would have to over HTTP.

mod common;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mcp_analytics::limits::{MAX_ERROR_LEN, MAX_NAME_LEN};
use mcp_analytics::mcp_tool;
use mcp_analytics_receiver::Row;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

/// Cases per property.
const CASES: u32 = 64;
/// Most flushes spent shrinking a failure.
const SHRINK_STEPS: usize = 200;

// ---------------------------------------------------------------------------------------------
// The handlers: each takes the text under test and a tag that identifies its call's row.

#[mcp_tool(name = name, session = tag)]
fn named(name: &str, tag: &str) {
    let _ = (name, tag);
}

#[mcp_tool(name = tag, session = session)]
fn sessioned(tag: &str, session: &str) {
    let _ = (tag, session);
}

#[mcp_tool(name = tag)]
fn failing(tag: &str, error: &str) -> Result<(), String> {
    let _ = tag;
    Err(error.to_owned())
}

/// A `Display` that writes its text in several pieces, as `write!(f, "{a}{b}")` does.
struct Pieces<'a>(&'a [String]);

impl fmt::Display for Pieces<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|piece| f.write_str(piece))
    }
}

#[mcp_tool(name = Pieces(pieces), session = tag)]
fn named_in_pieces(pieces: &[String], tag: &str) {
    let _ = (pieces, tag);
}

#[mcp_tool(name = tag)]
fn failing_in_pieces<'a>(tag: &str, pieces: &'a [String]) -> Result<(), Pieces<'a>> {
    let _ = tag;
    Err(Pieces(pieces))
}

// ---------------------------------------------------------------------------------------------
// Inputs.

/// Characters that stress an encoder, mixed with any Unicode scalar value and plain ASCII.
fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => any::<char>(),
        2 => prop::sample::select(vec![
            '"', '\\', '/', '\n', '\r', '\t', '\0', '\u{1}', '\u{8}', '\u{c}', '\u{1b}',
            '\u{1f}', '\u{7f}', '\u{80}', '\u{85}', '\u{a0}', '\u{ad}', '\u{200b}', '\u{2028}',
            '\u{2029}', '\u{feff}', '\u{fffd}', '\u{ffff}', '\u{10ffff}', 'é', '€', '😀', '…',
            '{', '}', '[', ']', ':', ',', '<', '&', '\'',
        ]),
        2 => prop::char::range(' ', '~'),
    ]
}

/// Up to `max_chars` characters of [`tricky_char`].
fn text(max_chars: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(tricky_char(), 0..=max_chars).prop_map(String::from_iter)
}

/// Texts around `limit` bytes, made of characters of 1 to 4 bytes, so that the cut falls at and
/// inside characters of every width.
fn near(limit: usize) -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!['x', 'é', '€', '😀', '"', '\n']),
        limit - 8..=limit + 8,
        text(3),
    )
        .prop_map(|(fill, bytes, tail)| {
            let mut text = String::new();
            while text.len() + fill.len_utf8() <= bytes {
                text.push(fill);
            }
            text + &tail
        })
}

/// Short, long (up to about 12 KB) and near-the-limit texts, the empty one included.
fn any_text(limit: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just(String::new()),
        3 => text(40),
        2 => text(3_000),
        2 => near(limit),
    ]
}

/// A text in pieces: arbitrary ones, or a first piece that ends right at or near the limit.
fn pieces(limit: usize) -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        prop::collection::vec(text(300), 1..8),
        (limit - 4..=limit + 1, text(6), text(6)).prop_map(|(bytes, second, third)| vec![
            "p".repeat(bytes),
            second,
            third
        ]),
    ]
}

// ---------------------------------------------------------------------------------------------
// The documented result.

/// `text` as the runtime must keep it: whole if it fits in `limit` bytes, else cut at a character
/// boundary and ended with `…`, the whole within `limit` bytes.
fn cut(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut end = limit - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn expect_eq(what: &str, got: &str, expected: &str) -> Result<(), String> {
    if got == expected {
        Ok(())
    } else {
        Err(format!(
            "{what}: got {} bytes {}, expected {} bytes {}",
            got.len(),
            abridged(&format!("{got:?}")),
            expected.len(),
            abridged(&format!("{expected:?}"))
        ))
    }
}

fn expect_within(what: &str, got: &str, limit: usize) -> Result<(), String> {
    if got.len() <= limit {
        Ok(())
    } else {
        Err(format!(
            "{what}: {} bytes, over the limit of {limit}",
            got.len()
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// The batched property runner.

/// Where a property's rows carry their tag.
#[derive(Clone, Copy)]
enum TagIn {
    Session,
    Tool,
}

impl TagIn {
    fn of(self, row: &Row) -> &str {
        match self {
            TagIn::Session => &row.session,
            TagIn::Tool => row.record_str("tool"),
        }
    }
}

fn new_tag(property: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "encoding-{property}-{}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Flushes, checks that every delivered line fits the datasource (the receiver would refuse or
/// quarantine nothing: [`common::Memory::rows`] panics with the reason otherwise), and returns
/// this property's rows by tag.
fn rows_by_tag(property: &str, tag_in: TagIn) -> HashMap<String, Vec<Row>> {
    mcp_analytics::flush(Duration::from_secs(30)).expect("flush");
    let prefix = format!("encoding-{property}-");
    let mut rows: HashMap<String, Vec<Row>> = HashMap::new();
    for row in common::shared_memory().rows() {
        // Every line the schema checks accepted parsed as a JSON object; check it once more.
        let line: serde_json::Value = serde_json::from_str(&row.raw).expect("a JSON line");
        assert!(line.is_object(), "{}", row.raw);
        if tag_in.of(&row).starts_with(&prefix) {
            rows.entry(tag_in.of(&row).to_owned())
                .or_default()
                .push(row);
        }
    }
    rows
}

/// Checks `property` on [`CASES`] inputs from `strategy`: `call(tag, input)` makes one event,
/// `check(row, tag, input)` says whether its row is right. One flush for the whole batch; a
/// failure is shrunk and reported with its minimal input.
fn check_property<S: Strategy>(
    property: &str,
    strategy: S,
    tag_in: TagIn,
    call: impl Fn(&str, &S::Value),
    check: impl Fn(&Row, &str, &S::Value) -> Result<(), String>,
) where
    S::Value: fmt::Debug,
{
    common::shared_memory();
    let verdict = |rows: &HashMap<String, Vec<Row>>, tag: &str, input: &S::Value| match rows
        .get(tag)
        .map(Vec::as_slice)
    {
        Some([row]) => check(row, tag, input),
        Some(several) => Err(format!("{} rows for one call", several.len())),
        None => Err("no row".to_owned()),
    };

    let mut runner = TestRunner::new(Config::with_cases(CASES));
    let mut cases = Vec::new();
    for _ in 0..CASES {
        let tree = strategy.new_tree(&mut runner).expect("an input");
        let tag = new_tag(property);
        call(&tag, &tree.current());
        cases.push((tag, tree));
    }
    let rows = rows_by_tag(property, tag_in);
    let failure = cases.into_iter().find_map(|(tag, tree)| {
        verdict(&rows, &tag, &tree.current())
            .err()
            .map(|why| (tree, why))
    });
    let Some((mut tree, mut why)) = failure else {
        return;
    };

    // Shrink: simplify while the input still fails, complicate back when it passes.
    let mut minimal = tree.current();
    let mut steps = 0;
    if tree.simplify() {
        while steps < SHRINK_STEPS {
            steps += 1;
            let input = tree.current();
            let tag = new_tag(property);
            call(&tag, &input);
            match verdict(&rows_by_tag(property, tag_in), &tag, &input) {
                Err(failed) => {
                    minimal = input;
                    why = failed;
                    if !tree.simplify() {
                        break;
                    }
                }
                Ok(()) => {
                    if !tree.complicate() {
                        break;
                    }
                }
            }
        }
    }
    panic!(
        "property `{property}` fails (shrunk in {steps} steps): {why}\nminimal input: {}",
        abridged(&format!("{minimal:?}"))
    );
}

/// A long debug text with its middle left out.
fn abridged(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= 400 {
        return text.to_owned();
    }
    let head: String = chars[..200].iter().collect();
    let tail: String = chars[chars.len() - 200..].iter().collect();
    format!("{head} [... {} characters ...] {tail}", chars.len() - 400)
}

// ---------------------------------------------------------------------------------------------
// The properties.

#[test]
fn names_come_out_exactly_as_given_within_the_limit() {
    check_property(
        "name",
        any_text(MAX_NAME_LEN),
        TagIn::Session,
        |tag, name| named(name, tag),
        |row, _, name| {
            let expected = cut(name, MAX_NAME_LEN);
            expect_eq("tool", row.record_str("tool"), &expected)?;
            expect_within("tool", row.record_str("tool"), MAX_NAME_LEN)?;
            expect_eq(
                "message",
                row.record_str("message"),
                &format!("tool {expected}: ok"),
            )?;
            expect_eq("funcName", row.record_str("funcName"), "named")?;
            expect_eq("outcome", row.record_str("outcome"), "ok")
        },
    );
}

#[test]
fn sessions_come_out_exactly_as_given_within_the_limit() {
    let process = mcp_analytics::session::process_session_id().to_string();
    check_property(
        "session",
        any_text(MAX_NAME_LEN),
        TagIn::Tool,
        |tag, session| sessioned(tag, session),
        |row, _, session| {
            // An empty session means "not known here": the process's own applies.
            let expected = if session.is_empty() {
                process.clone()
            } else {
                cut(session, MAX_NAME_LEN)
            };
            expect_eq("session", &row.session, &expected)?;
            expect_within("session", &row.session, MAX_NAME_LEN.max(process.len()))
        },
    );
}

#[test]
fn error_texts_come_out_exactly_as_given_within_the_limit() {
    check_property(
        "error",
        any_text(MAX_ERROR_LEN),
        TagIn::Tool,
        |tag, error| {
            let _ = failing(tag, error);
        },
        |row, tag, error| {
            let expected = cut(error, MAX_ERROR_LEN);
            expect_eq("error", row.record_str("error"), &expected)?;
            expect_within("error", row.record_str("error"), MAX_ERROR_LEN)?;
            let message = if expected.is_empty() {
                format!("tool {tag}: error")
            } else {
                format!("tool {tag}: error: {expected}")
            };
            expect_eq("message", row.record_str("message"), &message)?;
            expect_eq("outcome", row.record_str("outcome"), "error")?;
            expect_eq("level", &row.level, "error")
        },
    );
}

#[test]
fn names_written_in_pieces_are_cut_like_whole_ones() {
    check_property(
        "pieces",
        pieces(MAX_NAME_LEN),
        TagIn::Session,
        |tag, pieces| named_in_pieces(pieces, tag),
        |row, _, pieces| {
            let expected = cut(&pieces.concat(), MAX_NAME_LEN);
            expect_within("tool", row.record_str("tool"), MAX_NAME_LEN)?;
            expect_eq("tool", row.record_str("tool"), &expected)
        },
    );
}

#[test]
fn error_texts_written_in_pieces_are_cut_like_whole_ones() {
    check_property(
        "error-pieces",
        pieces(MAX_ERROR_LEN),
        TagIn::Tool,
        |tag, pieces| {
            let _ = failing_in_pieces(tag, pieces);
        },
        |row, _, pieces| {
            let expected = cut(&pieces.concat(), MAX_ERROR_LEN);
            expect_within("error", row.record_str("error"), MAX_ERROR_LEN)?;
            expect_eq("error", row.record_str("error"), &expected)
        },
    );
}

/// The oracle itself, on hand-picked cases.
#[test]
fn the_documented_cut_is_what_this_test_expects() {
    assert_eq!(cut("short", 16), "short");
    assert_eq!(cut("exactly", 7), "exactly");
    assert_eq!(cut("abcdefgh", 7), "abcd…");
    assert_eq!(cut("ééééé", 7), "éé…"); // 10 bytes: 4 bytes of é, then the 3-byte ellipsis
    assert_eq!(cut("a😀b", 5), "a…");
    for limit in [4, 5, 6, 7, 8] {
        assert!(cut(&"😀".repeat(10), limit).len() <= limit);
    }
}
