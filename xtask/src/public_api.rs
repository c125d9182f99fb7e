//! `cargo xtask public-api [--bless]`: the public API of `mcp-analytics`, all features, as a
//! sorted listing of every public item with its full signature, compared with the snapshot
//! checked in at `mcp-analytics/public-api.txt` (or, with `--bless`, written there).
//!
//! The listing comes from rustdoc's JSON output, which is unstable: it is built on the stable
//! toolchain with `RUSTC_BOOTSTRAP=1`, in a target directory of its own (`<target>/public-api`),
//! because build scripts that watch `RUSTC_BOOTSTRAP` (proc-macro2's, thiserror's) would
//! otherwise rebuild half the workspace's dependencies on the next ordinary build. The JSON is
//! rendered by the `public-api` crate, pinned to the release that reads the JSON format version
//! this toolchain writes ([`FORMAT_VERSION`]); a toolchain that writes another one fails here
//! with that said, rather than with a misread listing.
//!
//! What the listing holds: every item reachable from the crate's root that rustdoc documents
//! (`#[doc(hidden)]` items, such as the `__private` module the macros call, are not part of
//! it), trait impls (derived and auto-trait ones included: losing `Send` is an API change), and
//! not the blanket impls every type gets from std (`impl<T> From<T> for T`), whose list depends
//! on the toolchain rather than on this crate. Function parameter names are left out, so that
//! renaming one is not an API change.
//!
//! Known gap: rustdoc's JSON leaves out a `#[doc(inline)]` re-export of a `#[doc(hidden)]`
//! `macro_rules!` macro, which its HTML shows: today `mcp_analytics::tracing::layer!` (a
//! re-export of the hidden `__tracing_layer`) is not in the listing. The attribute macros, which
//! are re-exports of a proc-macro crate's items, are (`pub use mcp_analytics::mcp_tool`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

use serde_json::Value;

use crate::Result;

/// The crate whose API is listed, its library's name, and where the snapshot lives.
const PACKAGE: &str = "mcp-analytics";
const LIBRARY: &str = "mcp_analytics";
const SNAPSHOT: &str = "mcp-analytics/public-api.txt";

/// The rustdoc JSON format that `public-api` 0.52.1 (through `rustdoc-types` 0.57) reads, and
/// that rustc 1.95's rustdoc writes. A new toolchain with another format needs the `public-api`
/// release made for it (its changelog says which nightly each release supports).
const FORMAT_VERSION: u64 = 57;

const HEADER: &str = "\
// The public API of mcp-analytics, all features: every public item rustdoc documents, with its
// signature. Written by `cargo xtask public-api --bless`; CI fails when the API differs from
// this file. Do not edit by hand.
";

pub fn run(root: &Path, bless: bool) -> Result<()> {
    let current = listing(root)?;
    let path = root.join(SNAPSHOT);
    if bless {
        fs::write(&path, &current).map_err(|error| format!("cannot write {path:?}: {error}"))?;
        println!(
            "wrote {} ({} items)",
            path.display(),
            items(&current).count()
        );
        return Ok(());
    }
    let snapshot = fs::read_to_string(&path).map_err(|error| {
        format!("cannot read {path:?} ({error}): run `cargo xtask public-api --bless` to write it")
    })?;
    let diff = diff(&snapshot, &current);
    if diff.is_empty() {
        println!(
            "public API unchanged: {} items, as in {SNAPSHOT}",
            items(&current).count()
        );
        return Ok(());
    }
    Err(format!(
        "the public API of {PACKAGE} differs from {SNAPSHOT} \
         (- only in the snapshot, + only in the code):\n\n{diff}\n\
         If the change is meant, run `cargo xtask public-api --bless` and commit the file."
    ))
}

/// The listing as the snapshot holds it: the header, then one item per line.
fn listing(root: &Path) -> Result<String> {
    let json = rustdoc_json(root)?;
    let text =
        fs::read_to_string(&json).map_err(|error| format!("cannot read {json:?}: {error}"))?;
    let format_version = format_version(&text)?;
    if format_version != FORMAT_VERSION {
        return Err(format!(
            "rustdoc wrote JSON format version {format_version}, but the pinned `public-api` \
             crate reads version {FORMAT_VERSION}: pin the `public-api` release made for \
             version {format_version} in xtask/Cargo.toml, set FORMAT_VERSION in \
             xtask/src/public_api.rs, and re-bless"
        ));
    }
    let api = public_api::Builder::from_rustdoc_json(&json)
        .omit_blanket_impls(true)
        .build()
        .map_err(|error| format!("cannot read {json:?}: {error}"))?;
    Ok(format!("{HEADER}\n{api}"))
}

/// Builds the crate's rustdoc JSON and says where it is.
fn rustdoc_json(root: &Path) -> Result<PathBuf> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = target_directory()?.join("public-api");
    let status = Command::new(&cargo)
        .current_dir(root)
        .env("RUSTC_BOOTSTRAP", "1")
        .args([
            "rustdoc",
            "--locked",
            "--lib",
            "--all-features",
            "--package",
            PACKAGE,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .args(["--", "-Z", "unstable-options", "--output-format", "json"])
        .status()
        .map_err(|error| format!("cannot run cargo rustdoc: {error}"))?;
    if !status.success() {
        return Err(format!("cargo rustdoc failed ({status})"));
    }
    Ok(target_dir.join("doc").join(format!("{LIBRARY}.json")))
}

/// The workspace's target directory, wherever `CARGO_TARGET_DIR` or a config put it.
fn target_directory() -> Result<PathBuf> {
    crate::cargo_metadata(&["--no-deps"])?["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| "cargo metadata: no target_directory".to_owned())
}

/// The `format_version` of a rustdoc JSON file.
fn format_version(json: &str) -> Result<u64> {
    // The whole document as a `Value`: about 1 MB, parsed in milliseconds.
    let value: Value =
        serde_json::from_str(json).map_err(|error| format!("rustdoc JSON: {error}"))?;
    value["format_version"]
        .as_u64()
        .ok_or_else(|| "rustdoc JSON has no format_version".to_owned())
}

/// The item lines of a listing: not the header's comments, not blank lines.
fn items(listing: &str) -> impl Iterator<Item = &str> {
    listing
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with("//"))
}

/// A line diff of the two listings' items (longest common subsequence), one changed line per
/// output line: `-` for a line only in `old`, `+` for a line only in `new`. Empty when equal.
fn diff(old: &str, new: &str) -> String {
    let old: Vec<&str> = items(old).collect();
    let new: Vec<&str> = items(new).collect();
    // lcs[i][j]: the length of the longest common subsequence of old[i..] and new[j..].
    let mut lcs = vec![vec![0u32; new.len() + 1]; old.len() + 1];
    for i in (0..old.len()).rev() {
        for j in (0..new.len()).rev() {
            lcs[i][j] = if old[i] == new[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = String::new();
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        if i < old.len() && j < new.len() && old[i] == new[j] {
            i += 1;
            j += 1;
        } else if i < old.len() && (j == new.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // Removals first: a changed item reads as its old line, then its new one.
            out += &format!("- {}\n", old[i]);
            i += 1;
        } else {
            out += &format!("+ {}\n", new[j]);
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_listings_have_no_diff_whatever_the_header() {
        let a = "// one header\n\npub fn a()\npub fn b()\n";
        let b = "// another\n\npub fn a()\npub fn b()\n";
        assert_eq!(diff(a, b), "");
    }

    #[test]
    fn the_diff_names_each_removed_added_and_changed_item() {
        let old = "pub mod m\npub fn m::a() -> u8\npub fn m::b()\npub struct m::S\n";
        let new = "pub mod m\npub fn m::a() -> u16\npub struct m::S\npub struct m::T\n";
        assert_eq!(
            diff(old, new),
            "- pub fn m::a() -> u8\n- pub fn m::b()\n+ pub fn m::a() -> u16\n+ pub struct m::T\n"
        );
    }

    #[test]
    fn format_version_is_read_from_the_json() {
        assert_eq!(
            format_version(r#"{"format_version":57,"index":{}}"#),
            Ok(57)
        );
        assert!(format_version(r#"{"index":{}}"#).is_err());
    }
}
