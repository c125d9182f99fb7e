//! The runtime crate's layout holds: one job per module, so no module imports one that imports
//! it back, and no source file grows past what one reader can hold.
//!
//! A module here is a top-level module of `mcp-analytics/src` (a file or a folder), and, inside
//! a folder, each of its files; an import is a `crate::module` or `super::sibling` path in code
//! (comments and `#[cfg(test)]` modules aside). A child's `super::` import of its parent is how
//! Rust nests modules, not a cycle, and is not counted.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Most lines of code (comments, blank lines and tests aside) in one source file.
const MAX_CODE_LINES: usize = 450;

struct Source {
    /// `config`, `config::env`, `lib`, ...
    module: String,
    /// The file's code, without comments and without its tests.
    code: String,
}

fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("mcp-analytics/src");
    let mut files = Vec::new();
    collect(&root, &mut files);
    files
        .into_iter()
        .map(|path| {
            let relative = path.strip_prefix(&root).unwrap().with_extension("");
            let mut parts: Vec<String> = relative
                .components()
                .map(|part| part.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.len() > 1 && parts.last().is_some_and(|last| last == "mod") {
                parts.pop();
            }
            let text = fs::read_to_string(&path).unwrap();
            Source {
                module: parts.join("::"),
                code: code_of(&text),
            }
        })
        .collect()
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

/// The lines of code of a file: before its test module, neither blank nor comments.
fn code_of(text: &str) -> String {
    let before_tests = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    before_tests
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules `source` imports, as module paths.
fn imports(source: &Source, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let parent = source
        .module
        .rsplit_once("::")
        .map_or(String::new(), |(parent, _)| parent.to_owned());
    for (prefix, base) in [("crate::", String::new()), ("super::", parent.clone())] {
        for (at, _) in source.code.match_indices(prefix) {
            let rest = &source.code[at + prefix.len()..];
            // `crate::{a, b}` and `super::{a::X, b}` name several.
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group
                    .split('}')
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .collect(),
                None => vec![rest],
            };
            for name in names {
                let name: String = name
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let module = if base.is_empty() {
                    name
                } else {
                    format!("{base}::{name}")
                };
                // Only modules count (not re-exported items), and a child naming its parent
                // through `super` is nesting.
                if modules.contains(&module) && module != source.module && module != parent {
                    found.insert(module);
                }
            }
        }
    }
    found
}

#[test]
fn no_runtime_module_imports_one_that_imports_it_back() {
    let sources = sources();
    let modules: BTreeSet<String> = sources.iter().map(|s| s.module.clone()).collect();
    let graph: BTreeMap<&str, BTreeSet<String>> = sources
        .iter()
        .filter(|source| source.module != "lib")
        .map(|source| (source.module.as_str(), imports(source, &modules)))
        .collect();
    assert!(
        graph["worker"].contains("global") && graph["global"].contains("queue"),
        "the import finder sees the imports it must: {graph:#?}"
    );

    let mut cycles = Vec::new();
    for &start in graph.keys() {
        // Depth-first from `start`: any path that comes back to it is a cycle.
        let mut stack = vec![vec![start.to_owned()]];
        let mut seen = BTreeSet::new();
        while let Some(path) = stack.pop() {
            let last = path.last().unwrap();
            for next in graph.get(last.as_str()).into_iter().flatten() {
                if next == start {
                    cycles.push(format!("{} -> {start}", path.join(" -> ")));
                } else if seen.insert(next.clone()) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push(longer);
                }
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn no_runtime_source_file_is_longer_than_one_reader_can_hold() {
    let long: Vec<String> = sources()
        .iter()
        .map(|source| (source.module.clone(), source.code.lines().count()))
        .filter(|&(_, lines)| lines > MAX_CODE_LINES)
        .map(|(module, lines)| format!("{module}: {lines} lines of code"))
        .collect();
    assert!(
        long.is_empty(),
        "over {MAX_CODE_LINES} lines of code:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_import_finder_sees_imports_in_code_only() {
    let modules: BTreeSet<String> = ["a", "b", "dir", "dir::x", "dir::y"]
        .into_iter()
        .map(String::from)
        .collect();
    let source = |module: &str, text: &str| Source {
        module: module.to_owned(),
        code: code_of(text),
    };
    let a = source("a", "use crate::b::Thing;\n// crate::dir in a comment\n");
    assert_eq!(imports(&a, &modules), BTreeSet::from(["b".to_owned()]));
    let x = source(
        "dir::x",
        "use super::{y::Y, Parent};\nuse super::Other;\nuse crate::{a, b::B};\n",
    );
    assert_eq!(
        imports(&x, &modules),
        BTreeSet::from(["a".to_owned(), "b".to_owned(), "dir::y".to_owned()])
    );
    let tested = source(
        "a",
        "fn f() {}\n#[cfg(test)]\nmod tests {\n    use crate::b;\n}\n",
    );
    assert!(imports(&tested, &modules).is_empty(), "tests do not count");
}
