//! `cargo xtask msrv`: no dependency of a published crate asks for a newer Rust than the crate's
//! own `rust-version`.
//!
//! Only one toolchain is at hand, so the minimum supported Rust version is checked in three parts,
//! of which this is one:
//! - the standard library: clippy's `incompatible_msrv` lint (on by default; it reads
//!   `rust-version`) flags any std item stabilised after it, in `cargo clippy`;
//! - the language: features newer than `rust-version` are not linted; the README says which
//!   feature sets the bound today (let chains, 1.88);
//! - the dependencies: here. `cargo metadata --all-features` gives every package's declared
//!   `rust-version` and the resolved graph; every package a published crate reaches through
//!   normal or build dependencies, on any target, must declare one at most ours. The graph is
//!   the workspace's, so the features a dependency has there are the union over every member
//!   (dev-dependencies included): a superset of what a published crate alone enables, so this
//!   check can only be stricter than needed, never laxer.
//!
//! Packages that declare no `rust-version` cannot be checked; they are listed, not failed.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use serde_json::Value;

use crate::Result;

/// A `rust-version`: `1.88` or `1.88.0`, compared numerically (1.9 < 1.10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RustVersion([u64; 3]);

impl RustVersion {
    pub fn parse(text: &str) -> Result<RustVersion> {
        let mut parts = [0; 3];
        let mut count = 0;
        for part in text.split('.') {
            let slot = parts
                .get_mut(count)
                .ok_or_else(|| format!("rust-version {text:?} has more than three parts"))?;
            *slot = part
                .parse()
                .map_err(|_| format!("rust-version {text:?} is not of the form 1.88 or 1.88.0"))?;
            count += 1;
        }
        if count < 2 {
            return Err(format!(
                "rust-version {text:?} is not of the form 1.88 or 1.88.0"
            ));
        }
        Ok(RustVersion(parts))
    }
}

impl fmt::Display for RustVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [major, minor, patch] = self.0;
        if patch == 0 {
            write!(f, "{major}.{minor}")
        } else {
            write!(f, "{major}.{minor}.{patch}")
        }
    }
}

/// A package a published crate depends on, directly or not.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dependency {
    pub name: String,
    pub version: String,
    /// Its declared `rust-version`, if any.
    pub rust_version: Option<RustVersion>,
    /// How the published crate reaches it: `mcp-analytics → reqwest → url`.
    pub via: Vec<String>,
}

/// What `cargo metadata` says of one published crate.
#[derive(Debug)]
pub struct Report {
    pub name: String,
    pub rust_version: RustVersion,
    /// Every package it reaches through normal or build dependencies, by name and version.
    pub dependencies: Vec<Dependency>,
}

impl Report {
    /// Dependencies that declare a newer `rust-version` than the crate's.
    pub fn offenders(&self) -> impl Iterator<Item = &Dependency> {
        self.dependencies
            .iter()
            .filter(|dep| dep.rust_version.is_some_and(|rv| rv > self.rust_version))
    }

    /// The highest `rust-version` declared by a dependency, and who declares it.
    pub fn highest(&self) -> Option<(RustVersion, Vec<&Dependency>)> {
        let highest = self
            .dependencies
            .iter()
            .filter_map(|d| d.rust_version)
            .max()?;
        let who = self
            .dependencies
            .iter()
            .filter(|d| d.rust_version == Some(highest))
            .collect();
        Some((highest, who))
    }

    pub fn undeclared(&self) -> impl Iterator<Item = &Dependency> {
        self.dependencies
            .iter()
            .filter(|dep| dep.rust_version.is_none())
    }
}

/// One report per published workspace member (`publish` not `false`), in name order.
pub fn check(metadata: &Value) -> Result<Vec<Report>> {
    let packages: BTreeMap<&str, &Value> = metadata["packages"]
        .as_array()
        .ok_or("cargo metadata: no `packages`")?
        .iter()
        .filter_map(|package| Some((package["id"].as_str()?, package)))
        .collect();
    let nodes: BTreeMap<&str, &Value> = metadata
        .pointer("/resolve/nodes")
        .and_then(Value::as_array)
        .ok_or("cargo metadata: no `resolve` (was it run with --no-deps?)")?
        .iter()
        .filter_map(|node| Some((node["id"].as_str()?, node)))
        .collect();
    let members = metadata["workspace_members"]
        .as_array()
        .ok_or("cargo metadata: no `workspace_members`")?;

    let mut reports = Vec::new();
    for member in members.iter().filter_map(Value::as_str) {
        let package = packages
            .get(member)
            .ok_or_else(|| format!("cargo metadata: no package {member}"))?;
        // `publish = false` is an empty list of registries; absent (`null`) means crates.io.
        let published = package["publish"]
            .as_array()
            .is_none_or(|registries| !registries.is_empty());
        if !published {
            continue;
        }
        let name = package["name"].as_str().unwrap_or(member).to_owned();
        let rust_version = package["rust_version"]
            .as_str()
            .ok_or_else(|| format!("{name} is published but declares no rust-version"))
            .and_then(RustVersion::parse)?;

        // Breadth first, so that `via` is a shortest path.
        let mut seen = BTreeMap::from([(member, vec![name.clone()])]);
        let mut queue = VecDeque::from([member]);
        while let Some(id) = queue.pop_front() {
            let node = nodes
                .get(id)
                .ok_or_else(|| format!("cargo metadata: {id} is not in the resolve graph"))?;
            for dep in node["deps"].as_array().into_iter().flatten() {
                let Some(dep_id) = dep["pkg"].as_str() else {
                    continue;
                };
                // A dependency can be declared several times (dev and normal, per target):
                // any declaration that is not a dev-dependency makes it the crate's users'.
                let needed = dep["dep_kinds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|kind| kind["kind"].as_str() != Some("dev"));
                if !needed || seen.contains_key(dep_id) {
                    continue;
                }
                let mut via = seen[id].clone();
                via.push(
                    packages
                        .get(dep_id)
                        .and_then(|p| p["name"].as_str())
                        .unwrap_or(dep_id)
                        .to_owned(),
                );
                seen.insert(dep_id, via);
                queue.push_back(dep_id);
            }
        }

        let mut dependencies = Vec::new();
        for (id, via) in seen {
            if id == member {
                continue;
            }
            let package = packages
                .get(id)
                .ok_or_else(|| format!("cargo metadata: no package {id}"))?;
            let rust_version = package["rust_version"]
                .as_str()
                .map(RustVersion::parse)
                .transpose()
                .map_err(|error| format!("{}: {error}", package["name"]))?;
            dependencies.push(Dependency {
                name: package["name"].as_str().unwrap_or(id).to_owned(),
                version: package["version"].as_str().unwrap_or("?").to_owned(),
                rust_version,
                via,
            });
        }
        dependencies.sort();
        reports.push(Report {
            name,
            rust_version,
            dependencies,
        });
    }
    reports.sort_by(|a, b| a.name.cmp(&b.name));
    if reports.is_empty() {
        return Err("no published crate in the workspace".to_owned());
    }
    Ok(reports)
}

/// The text `cargo xtask msrv` prints, and whether every crate passed.
pub fn render(reports: &[Report]) -> (String, bool) {
    let mut out = String::new();
    let mut passed = true;
    for report in reports {
        let offenders: Vec<_> = report.offenders().collect();
        let undeclared: BTreeSet<&str> = report.undeclared().map(|d| d.name.as_str()).collect();
        out += &format!(
            "{} (rust-version {}): {} dependencies, all features, every target\n",
            report.name,
            report.rust_version,
            report.dependencies.len()
        );
        match report.highest() {
            Some((highest, who)) => {
                let names: Vec<String> = who
                    .iter()
                    .map(|d| format!("{} {}", d.name, d.version))
                    .collect();
                let relation = match highest.cmp(&report.rust_version) {
                    Ordering::Less => "below ours",
                    Ordering::Equal => "ours: a hard lower bound",
                    Ordering::Greater => "ABOVE ours",
                };
                out += &format!(
                    "  highest declared: {highest} ({relation}), by {}\n",
                    names.join(", ")
                );
            }
            None => out += "  no dependency declares a rust-version\n",
        }
        if !undeclared.is_empty() {
            out += &format!(
                "  {} declare none (not checked): {}\n",
                undeclared.len(),
                undeclared.into_iter().collect::<Vec<_>>().join(", ")
            );
        }
        if !offenders.is_empty() {
            passed = false;
            out += &format!(
                "  FAIL: {} dependencies need a newer Rust than {}:\n",
                offenders.len(),
                report.rust_version
            );
            for dep in offenders {
                let needs = dep
                    .rust_version
                    .map(|rv| rv.to_string())
                    .unwrap_or_default();
                out += &format!(
                    "    {} {} needs {needs} (via {})\n",
                    dep.name,
                    dep.version,
                    dep.via.join(" → ")
                );
            }
        }
    }
    (out, passed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_compare_numerically() {
        let v = |text| RustVersion::parse(text).unwrap();
        assert!(v("1.9") < v("1.10"));
        assert_eq!(v("1.88"), v("1.88.0"));
        assert!(v("1.88.1") > v("1.88"));
        assert_eq!(v("1.88.0").to_string(), "1.88");
        assert_eq!(v("1.88.1").to_string(), "1.88.1");
        assert!(RustVersion::parse("1").is_err());
        assert!(RustVersion::parse("1.x").is_err());
        assert!(RustVersion::parse("1.2.3.4").is_err());
    }

    fn package(name: &str, rust_version: Option<&str>, publish: Value) -> Value {
        json!({
            "id": format!("{name} 1.0.0"),
            "name": name,
            "version": "1.0.0",
            "rust_version": rust_version,
            "publish": publish,
        })
    }

    fn dep(name: &str, kinds: &[Option<&str>]) -> Value {
        let kinds: Vec<Value> = kinds
            .iter()
            .map(|kind| json!({"kind": kind, "target": null}))
            .collect();
        json!({"name": name, "pkg": format!("{name} 1.0.0"), "dep_kinds": kinds})
    }

    fn node(name: &str, deps: Vec<Value>) -> Value {
        json!({"id": format!("{name} 1.0.0"), "deps": deps})
    }

    /// A published crate at 1.88 with a normal, a build and a dev dependency; an unpublished
    /// member depending on something newer.
    fn metadata(normal_rust_version: &str) -> Value {
        json!({
            "workspace_members": ["runtime 1.0.0", "macros 1.0.0", "dev 1.0.0"],
            "packages": [
                package("runtime", Some("1.88"), Value::Null),
                package("macros", Some("1.88"), Value::Null),
                package("dev", Some("1.88"), json!([])),
                package("normal", Some(normal_rust_version), Value::Null),
                package("deep", Some("1.70.0"), Value::Null),
                package("builder", None, Value::Null),
                package("tester", Some("1.99"), Value::Null),
                package("devonly", Some("1.99"), Value::Null),
            ],
            "resolve": {"nodes": [
                node("runtime", vec![
                    dep("macros", &[None]),
                    dep("normal", &[None, Some("dev")]),
                    dep("builder", &[Some("build")]),
                    dep("tester", &[Some("dev")]),
                ]),
                node("macros", vec![]),
                node("dev", vec![dep("devonly", &[None]), dep("runtime", &[None])]),
                node("normal", vec![dep("deep", &[None])]),
                node("deep", vec![]),
                node("builder", vec![]),
                node("tester", vec![]),
                node("devonly", vec![]),
            ]},
        })
    }

    #[test]
    fn normal_and_build_dependencies_count_dev_dependencies_and_unpublished_members_do_not() {
        let reports = check(&metadata("1.88.0")).unwrap();
        let names: Vec<&str> = reports.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["macros", "runtime"]);
        let runtime = &reports[1];
        let deps: Vec<&str> = runtime
            .dependencies
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        assert_eq!(deps, ["builder", "deep", "macros", "normal"]);
        assert_eq!(runtime.offenders().count(), 0);
        let (highest, who) = runtime.highest().unwrap();
        assert_eq!(highest, RustVersion::parse("1.88").unwrap());
        let who: Vec<&str> = who.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(who, ["macros", "normal"]);
        let undeclared: Vec<&str> = runtime.undeclared().map(|d| d.name.as_str()).collect();
        assert_eq!(undeclared, ["builder"]);
        let deep = runtime
            .dependencies
            .iter()
            .find(|d| d.name == "deep")
            .unwrap();
        assert_eq!(deep.via, ["runtime", "normal", "deep"]);
        assert!(render(&reports).1);
    }

    #[test]
    fn a_dependency_above_ours_fails_and_is_named_with_its_path() {
        let reports = check(&metadata("1.89")).unwrap();
        let offenders: Vec<&str> = reports[1].offenders().map(|d| d.name.as_str()).collect();
        assert_eq!(offenders, ["normal"]);
        let (text, passed) = render(&reports);
        assert!(!passed);
        assert!(
            text.contains("normal 1.0.0 needs 1.89 (via runtime → normal)"),
            "{text}"
        );
    }

    #[test]
    fn a_published_crate_without_rust_version_is_an_error() {
        let mut metadata = metadata("1.88");
        metadata["packages"][1]["rust_version"] = Value::Null;
        let error = check(&metadata).unwrap_err();
        assert!(error.contains("macros"), "{error}");
    }
}
