//! The size bound: a captured value's compact JSON fits in `max_bytes`, and every cut shows.
//!
//! In order: [`prune`] bounds the shape (nesting depth, and the number of values: no more than
//! `max_bytes` can show), then [`fit`] bounds the bytes. `fit` first cuts the strings, all to
//! one length, the longest that fits (a long text is cut, the members around it kept); when
//! even short strings do not fit, it keeps a prefix of each array and object, marking what it
//! left out. Last, and never expected, the whole value gives way to [`truncated`].
//!
//! The cuts, each valid JSON and visible:
//! - a string: cut at a char boundary, ending in `…`;
//! - an array: its last element `"[… N more]"`; an object: a member `"…": "[… N more]"`;
//! - a container nested deeper than [`MAX_DEPTH`]: `"[… too deep]"`;
//! - the whole value: `{"_truncated": true, "bytes": N}`.
//!
//! Nothing here recurses deeper than [`MAX_DEPTH`], and what is cut off is dropped by
//! [`dispose`], without recursion: `serde_json::Value`'s own drop recurses, and a value nested
//! a million deep (which a hook, or code building values, can make) would overflow the stack.

use std::io;

use serde_json::{Map, Number, Value};

use crate::rows::text::bounded_str;

/// Deepest nesting of arrays and objects kept. Tool arguments and results rarely nest past
/// five; 32 keeps them whole and every walk here shallow.
pub(super) const MAX_DEPTH: usize = 32;

/// What replaces a container nested deeper than [`MAX_DEPTH`].
pub(super) const TOO_DEEP: &str = "[… too deep]";

/// The key of an object's marker member.
pub(super) const MORE_KEY: &str = "…";

/// Shortest length strings are cut to before containers lose entries instead.
const MIN_STRING: usize = 32;

/// Longest object key kept: keys are names, not payloads.
const MAX_KEY: usize = 128;

/// Smallest room worth cutting an entry into, rather than leaving it out.
const MIN_PARTIAL: usize = 16;

/// No cut at all, as a string length.
const WHOLE: usize = usize::MAX;

/// The marker for `hidden` entries left out of an array or object.
pub(super) fn more(hidden: usize) -> Value {
    Value::String(format!("[… {hidden} more]"))
}

/// What stands for a value that could not be cut to fit: its size before the cut, `bytes`.
pub(super) fn truncated(bytes: usize) -> Value {
    let mut map = Map::new();
    map.insert("_truncated".to_owned(), Value::Bool(true));
    map.insert("bytes".to_owned(), Value::from(bytes));
    Value::Object(map)
}

/// Bounds `value`'s shape: containers deeper than [`MAX_DEPTH`] become [`TOO_DEEP`], and only
/// the first `max_bytes / 2` values (in document order) are kept, the rest of each container
/// they cut through marked with [`more`]. A value takes at least a byte and a separator, so no
/// more could show in `max_bytes`: what is dropped here is what [`fit`] would drop, at a cost
/// that no longer grows with the input.
pub(super) fn prune(value: &mut Value, max_bytes: usize) {
    let mut values = max_bytes / 2 + 1;
    prune_at(value, 0, &mut values);
}

fn prune_at(value: &mut Value, depth: usize, values: &mut usize) {
    *values = values.saturating_sub(1);
    let deep = depth >= MAX_DEPTH;
    match value {
        Value::Array(items) if deep && !items.is_empty() => too_deep(value),
        Value::Object(map) if deep && !map.is_empty() => too_deep(value),
        Value::Array(items) => {
            let mut kept = 0;
            while kept < items.len() && *values > 0 {
                prune_at(&mut items[kept], depth + 1, values);
                kept += 1;
            }
            if kept < items.len() {
                let hidden = hidden_in(&items[kept..]);
                items.drain(kept..).for_each(dispose);
                items.push(more(hidden));
            }
        }
        Value::Object(map) => {
            let mut hidden = 0;
            map.retain(|key, member| {
                if *values == 0 {
                    hidden += hidden_by(key, member);
                    dispose(std::mem::take(member));
                    return false;
                }
                prune_at(member, depth + 1, values);
                true
            });
            if hidden > 0 {
                map.insert(MORE_KEY.to_owned(), more(hidden));
            }
        }
        _ => {}
    }
}

fn too_deep(value: &mut Value) {
    dispose(std::mem::replace(value, Value::from(TOO_DEEP)));
}

/// Drops `value` without recursion, however deeply it nests.
pub(super) fn dispose(value: Value) {
    let mut pending = vec![value];
    while let Some(mut value) = pending.pop() {
        match &mut value {
            Value::Array(items) => pending.append(items),
            Value::Object(map) => pending.extend(std::mem::take(map).into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

/// `value` within `max_bytes` of compact JSON (at least 64: the largest marker's size), cut as
/// the module's doc says. Deterministic: the same value is always cut the same way.
pub(super) fn fit(mut value: Value, max_bytes: usize) -> Value {
    prune(&mut value, max_bytes);
    if size(&value, WHOLE, max_bytes) <= max_bytes {
        return value;
    }
    let before = size(&value, WHOLE, WHOLE);
    if size(&value, MIN_STRING, max_bytes) <= max_bytes {
        // The longest string length that fits: sizes only grow with it.
        let (mut fits, mut over) = (MIN_STRING, max_bytes);
        while over - fits > 1 {
            let mid = fits + (over - fits) / 2;
            if size(&value, mid, max_bytes) <= max_bytes {
                fits = mid;
            } else {
                over = mid;
            }
        }
        cut_strings(&mut value, fits);
    } else {
        cut_strings(&mut value, MIN_STRING);
    }
    if size(&value, WHOLE, max_bytes) <= max_bytes || shrink(&mut value, max_bytes) {
        return value;
    }
    dispose(value);
    truncated(before)
}

/// Cuts every string longer than `limit` bytes, and every key longer than `limit` or
/// [`MAX_KEY`], as [`cut`] does.
fn cut_strings(value: &mut Value, limit: usize) {
    match value {
        Value::String(text) if text.len() > limit => *text = cut(text, limit),
        Value::Array(items) => items.iter_mut().for_each(|item| cut_strings(item, limit)),
        Value::Object(map) => {
            map.values_mut()
                .for_each(|member| cut_strings(member, limit));
            let key_limit = limit.min(MAX_KEY);
            if map.keys().any(|key| key.len() > key_limit) {
                // Cut keys may meet: the later member then stands for both.
                *map = std::mem::take(map)
                    .into_iter()
                    .map(|(key, member)| match key.len() > key_limit {
                        true => (cut(&key, key_limit), member),
                        false => (key, member),
                    })
                    .collect();
            }
        }
        _ => {}
    }
}

/// `text` cut to at most `limit` bytes (at least 3), at a char boundary, ending in `…`.
fn cut(text: &str, limit: usize) -> String {
    bounded_str(text, limit).into_owned()
}

/// Cuts `value` to `budget` bytes by keeping a prefix of each container (and cutting the first
/// entry that does not fit whole into the room left, when there is some), marking what is left
/// out. Whether it fits afterwards; when not, the caller drops it.
fn shrink(value: &mut Value, budget: usize) -> bool {
    if size(value, WHOLE, budget) <= budget {
        return true;
    }
    match value {
        Value::String(text) => return shrink_string(text, budget),
        Value::Array(items) => {
            let sizes: Vec<usize> = items.iter().map(|item| size(item, WHOLE, budget)).collect();
            let last = items.len().saturating_sub(1);
            let weights: Vec<usize> = (0..items.len())
                .map(|at| match at == last {
                    true => hidden_by(MORE_KEY, &items[at]),
                    false => 1,
                })
                .collect();
            let (kept, room) = prefix(&sizes, &weights, budget);
            let partial =
                kept < items.len() && room >= MIN_PARTIAL && shrink(&mut items[kept], room);
            let keep = kept + usize::from(partial);
            let hidden = hidden_in(&items[keep..]);
            items.truncate(keep);
            if hidden > 0 {
                items.push(more(hidden));
            }
        }
        Value::Object(map) => {
            let sizes: Vec<usize> = map
                .iter()
                .map(|(key, member)| string_size(key, WHOLE) + 1 + size(member, WHOLE, budget))
                .collect();
            let weights: Vec<usize> = map
                .iter()
                .map(|(key, member)| hidden_by(key, member))
                .collect();
            let (kept, room) = prefix(&sizes, &weights, budget);
            // The cut member's value gets the room its key leaves.
            let key_size = map
                .keys()
                .nth(kept)
                .map_or(0, |key| string_size(key, WHOLE) + 1);
            let value_room = room.saturating_sub(key_size);
            let partial = value_room >= MIN_PARTIAL
                && map
                    .values_mut()
                    .nth(kept)
                    .is_some_and(|member| shrink(member, value_room));
            let keep = kept + usize::from(partial);
            let mut at = 0;
            let mut hidden = 0;
            map.retain(|key, member| {
                at += 1;
                if at <= keep {
                    return true;
                }
                hidden += hidden_by(key, member);
                false
            });
            if hidden > 0 {
                map.insert(MORE_KEY.to_owned(), more(hidden));
            }
        }
        _ => return false,
    }
    size(value, WHOLE, budget) <= budget
}

/// How many entries, of sizes `sizes`, fit whole in `budget` (brackets included) with room
/// left for the marker of those after them, and the room then left to cut the next one into.
/// `weights`: how many entries each stands for (one, but more for an earlier cut's marker).
fn prefix(sizes: &[usize], weights: &[usize], budget: usize) -> (usize, usize) {
    // hidden[at]: how many entries the marker stands for when those from `at` on are left out.
    let mut hidden = vec![0; sizes.len() + 2];
    for at in (0..weights.len()).rev() {
        hidden[at] = hidden[at + 1] + weights[at];
    }
    let marker = |at: usize| match hidden[at] {
        0 => 0,
        count => 1 + marker_size(count),
    };
    let mut used = 2;
    let mut kept = 0;
    while kept < sizes.len() {
        let comma = usize::from(kept > 0);
        if used + comma + sizes[kept] + marker(kept + 1) > budget {
            break;
        }
        used += comma + sizes[kept];
        kept += 1;
    }
    let comma = usize::from(kept > 0);
    let room = budget.saturating_sub(used + comma + marker(kept + 1));
    (kept, room)
}

/// The size of the marker entry for `hidden` entries: an object's, the larger, with its key
/// (`"…":`, 6 bytes).
fn marker_size(hidden: usize) -> usize {
    string_size(&format!("[… {hidden} more]"), WHOLE) + 6
}

/// How many entries `entries` stand for: one each, but a marker of an earlier cut, last, as
/// many as it says.
fn hidden_in(entries: &[Value]) -> usize {
    match entries.split_last() {
        Some((last, others)) => others.len() + hidden_by(MORE_KEY, last),
        None => 0,
    }
}

/// How many entries the member `key: value` stands for (see [`hidden_in`]); an array's
/// elements are asked with [`MORE_KEY`] for their key.
fn hidden_by(key: &str, value: &Value) -> usize {
    let said = value.as_str().filter(|_| key == MORE_KEY).and_then(|text| {
        text.strip_prefix("[… ")?
            .strip_suffix(" more]")?
            .parse()
            .ok()
    });
    said.unwrap_or(1)
}

/// Cuts a string to `budget` bytes of JSON (quotes and escapes included). False when not even
/// `"…"` fits.
fn shrink_string(text: &mut String, budget: usize) -> bool {
    let mut limit = budget.saturating_sub(2);
    loop {
        let candidate = cut(text, limit);
        let size = string_size(&candidate, WHOLE);
        if size <= budget {
            *text = candidate;
            return true;
        }
        if limit == 0 {
            return false;
        }
        // Escapes made it longer than its bytes: shrink in proportion, by one at least.
        let scaled = limit * budget.saturating_sub(2) / size.saturating_sub(2).max(1);
        limit = scaled.min(limit - 1);
    }
}

/// The size of `value`'s compact JSON were every string cut to `limit` bytes (keys to
/// [`MAX_KEY`] too), or any size above `stop` once it is known to exceed it.
pub(super) fn size(value: &Value, limit: usize, stop: usize) -> usize {
    let mut sizer = Sizer {
        limit,
        stop,
        total: 0,
    };
    sizer.add(value);
    sizer.total
}

/// Sums a value's compact JSON size, stopping early once past `stop`.
struct Sizer {
    limit: usize,
    stop: usize,
    total: usize,
}

impl Sizer {
    fn add(&mut self, value: &Value) {
        match value {
            Value::Null | Value::Bool(true) => self.total += 4,
            Value::Bool(false) => self.total += 5,
            Value::Number(number) => self.total += number_size(number),
            Value::String(text) => self.total += string_size(text, self.limit),
            Value::Array(items) => {
                self.total += 2 + items.len().saturating_sub(1);
                for item in items {
                    if self.total > self.stop {
                        return;
                    }
                    self.add(item);
                }
            }
            Value::Object(map) => {
                let key_limit = match self.limit {
                    WHOLE => WHOLE,
                    limit => limit.min(MAX_KEY),
                };
                self.total += 2 + map.len().saturating_sub(1);
                for (key, member) in map {
                    if self.total > self.stop {
                        return;
                    }
                    self.total += string_size(key, key_limit) + 1;
                    self.add(member);
                }
            }
        }
    }
}

/// The size of a number's JSON: integers by their digits, floats as serde_json writes them.
fn number_size(number: &Number) -> usize {
    let digits = |n: u64| n.checked_ilog10().map_or(1, |log| log as usize + 1);
    match (number.as_u64(), number.as_i64()) {
        (Some(n), _) => digits(n),
        (None, Some(n)) => 1 + digits(n.unsigned_abs()),
        (None, None) => {
            let mut count = Count(0);
            let _ = serde_json::to_writer(&mut count, number);
            count.0
        }
    }
}

/// Counts the bytes serde_json writes.
struct Count(usize);

impl io::Write for Count {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The size of `text` as a JSON string, quotes and escapes included, were it cut to `limit`
/// bytes by [`cut`]: serde_json escapes `"`, `\` and control characters, nothing else.
pub(super) fn string_size(text: &str, limit: usize) -> usize {
    let (kept, ellipsis) = if text.len() <= limit {
        (text, 0)
    } else {
        let end = super::patterns::floor_char_boundary(text, limit.saturating_sub(3));
        (&text[..end], 3)
    };
    let escaped = |byte: u8| byte < 0x20 || byte == b'"' || byte == b'\\';
    // Counting first is a loop the compiler vectorises; text rarely needs escapes at all.
    let extra: usize = match kept.bytes().filter(|&byte| escaped(byte)).count() {
        0 => 0,
        _ => kept
            .bytes()
            .filter(|&byte| escaped(byte))
            .map(|byte| match byte {
                b'"' | b'\\' | 0x08 | 0x09 | 0x0a | 0x0c | 0x0d => 1,
                _ => 5,
            })
            .sum(),
    };
    2 + kept.len() + extra + ellipsis
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn json_size(value: &Value) -> usize {
        serde_json::to_string(value).unwrap().len()
    }

    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::from),
            "[\"\\\\\\x00-\\x1f a-zé€]{0,80}".prop_map(Value::from),
        ];
        leaf.prop_recursive(5, 64, 10, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..10).prop_map(Value::Array),
                proptest::collection::btree_map(any::<String>(), inner, 0..10)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    /// How many members the objects in `value` have, all told.
    fn members(value: &Value) -> usize {
        match value {
            Value::Array(items) => items.iter().map(members).sum(),
            Value::Object(map) => map.len() + map.values().map(members).sum::<usize>(),
            _ => 0,
        }
    }

    proptest! {
    // The default case count; no regression files written into the crate's sources.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn sizes_match_what_serde_json_writes_for_any_cut(value in arbitrary_json(), limit in 3..200usize) {
            prop_assert_eq!(size(&value, WHOLE, WHOLE), json_size(&value));
            let mut cut_value = value.clone();
            cut_strings(&mut cut_value, limit);
            let estimate = size(&value, limit, WHOLE);
            if members(&cut_value) == members(&value) {
                prop_assert_eq!(estimate, json_size(&cut_value));
            } else {
                // Keys that were cut alike merged: the estimate is over, never under.
                prop_assert!(estimate > json_size(&cut_value));
            }
        }

        #[test]
        fn fit_always_fits(value in arbitrary_json(), max_bytes in 64..600usize) {
            let out = fit(value, max_bytes);
            prop_assert!(json_size(&out) <= max_bytes, "{} > {max_bytes}: {out}", json_size(&out));
        }
    }

    #[test]
    fn long_strings_are_cut_alike_and_short_members_kept() {
        let value = json!({ "a": "x".repeat(5_000), "b": "y".repeat(5_000), "n": 7, "ok": true });
        let out = fit(value, 1024);
        let (a, b) = (out["a"].as_str().unwrap(), out["b"].as_str().unwrap());
        assert!(a.ends_with('…') && b.ends_with('…'));
        assert_eq!(a.len(), b.len(), "one length for every string");
        assert!(a.len() > 450, "the room is used: {}", a.len());
        assert_eq!((&out["n"], &out["ok"]), (&json!(7), &json!(true)));
        assert!(json_size(&out) <= 1024);
    }

    #[test]
    fn containers_keep_a_prefix_and_count_what_they_left_out() {
        let value = Value::Array((0..10_000).map(|i| json!({ "i": i })).collect());
        let out = fit(value, 200);
        let items = out.as_array().unwrap();
        let (last, kept) = items.split_last().unwrap();
        assert_eq!(kept[0], json!({ "i": 0 }));
        assert_eq!(
            last,
            &more(10_000 - kept.len()),
            "pruned ones are counted too"
        );
        assert!(json_size(&out) <= 200);
    }

    #[test]
    fn prune_bounds_depth_and_count_and_marks_both() {
        let mut value = json!([[[[1]]], 2, 3]);
        prune_at(&mut value, MAX_DEPTH - 2, &mut 100);
        assert_eq!(value, json!([[TOO_DEEP], 2, 3]));

        let mut value = json!({ "a": [1, 2, 3, 4], "b": 5, "c": 6 });
        prune_at(&mut value, 0, &mut 4);
        assert_eq!(
            value,
            json!({ "a": [1, 2, "[… 2 more]"], MORE_KEY: "[… 2 more]" })
        );
    }

    #[test]
    fn a_marker_counts_what_an_earlier_cut_left_out() {
        assert_eq!(hidden_in(&[json!(1), more(41)]), 42);
        assert_eq!(hidden_in(&[more(41), json!(1)]), 2, "only a last marker");
        assert_eq!(hidden_by("x", &more(9)), 1, "only under the marker's key");
    }

    #[test]
    fn strings_of_escapes_are_cut_to_their_escaped_size() {
        let mut text = "\u{1}".repeat(1_000); // 6 bytes each once escaped
        assert!(shrink_string(&mut text, 100));
        assert!(string_size(&text, WHOLE) <= 100);
        assert!(text.len() > 10 && text.ends_with('…'), "{}", text.len());
        assert!(
            !shrink_string(&mut "abcdef".to_owned(), 4),
            "not even `\"…\"` fits"
        );
    }

    #[test]
    fn the_last_resort_fits_the_smallest_limit() {
        assert!(json_size(&truncated(usize::MAX)) <= super::super::MIN_MAX_BYTES);
        assert_eq!(
            truncated(12).to_string(),
            r#"{"_truncated":true,"bytes":12}"#
        );
    }

    #[test]
    fn dispose_drops_any_depth_without_recursion() {
        let mut deep = json!(0);
        for _ in 0..100_000 {
            // Not `json!`, which would serialize `deep` (recursively) to embed it.
            let mut map = Map::new();
            map.insert("k".to_owned(), Value::Array(vec![deep]));
            deep = Value::Object(map);
        }
        dispose(deep);
    }
}
