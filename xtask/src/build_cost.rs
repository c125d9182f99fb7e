//! `cargo xtask build-cost [--only plain,analytics,posthog] [--runs N] [--no-write]`: what
//! mcp-analytics adds to the build of a minimal rmcp stdio server, beside posthog-rs's `mcp`
//! feature for the same server.
//!
//! Three cargo projects are generated in a temporary directory from the templates in
//! `xtask/build-cost/` (the server in `server.rs`, one `main` per way of serving it): the plain
//! server, the same wrapped by `mcp_analytics::rmcp::instrument!` (a path dependency on this
//! workspace's `mcp-analytics`, feature `rmcp`), and the same wrapped by
//! `posthog_rs::mcp::instrument` (posthog-rs 0.30, feature `mcp`, its default features kept, as
//! its docs write the dependency). Each project starts from a copy of the workspace's
//! `Cargo.lock`, so that the crates it shares with the workspace (rmcp, hyper, rustls, tokio..)
//! are at the workspace's versions, and is fetched before it is timed.
//!
//! Each is then built clean, one at a time, `runs` times: `cargo build --release --offline
//! --timings --message-format=json-render-diagnostics` in a fresh target directory, with cargo's
//! default release profile and without the caller's `RUSTFLAGS`, rustc wrapper (a cache would
//! make the build not clean) or profile overrides. What is measured, from that build:
//!
//! - crates: the unique packages among the `compiler-artifact` messages (the server's own
//!   included; a build script or proc macro counts with its package);
//! - wall time (the median of the runs) and CPU time (user + system of cargo and everything it
//!   ran: `getrusage(RUSAGE_CHILDREN)` before and after), with the load average at each start;
//! - the binary's size as cargo leaves it and after `strip` on a copy;
//! - C and C++ compiled: the object files (`.o`) in each build script's output directory;
//! - the five slowest units, from the `--timings` report's data.
//!
//! The Markdown section is printed and, unless `--no-write`, written into `BENCHMARKS.md`
//! between [`START`] and [`END`] (appended when they are absent). The temporary directory is
//! removed at the end, on failure too.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use std::{env, fs};

use serde_json::Value;

use crate::{Machine, Result, number};

/// Where the section starts and ends in `BENCHMARKS.md`.
pub const START: &str = "<!-- build-cost:start -->";
pub const END: &str = "<!-- build-cost:end -->";

/// The server all three projects serve.
const SERVER_RS: &str = include_str!("../build-cost/server.rs");

/// What every project depends on: rmcp as the workspace has it (the server side, its macros,
/// stdio), tokio's `#[tokio::main]`, serde for the tool's arguments.
const COMMON_DEPENDENCIES: &str = r#"rmcp = { version = "3.11", default-features = false, features = ["server", "macros", "transport-io"] }
serde = { version = "1", features = ["derive"] }
tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
"#;

/// One way of serving the server: its project's name, its row's label, its `main.rs` and what
/// it depends on besides [`COMMON_DEPENDENCIES`] (`{mcp_analytics}`: the path of this
/// workspace's `mcp-analytics`).
#[derive(Debug)]
struct Server {
    key: &'static str,
    label: &'static str,
    main: &'static str,
    dependencies: &'static str,
}

const SERVERS: [Server; 3] = [
    Server {
        key: "plain",
        label: "plain rmcp",
        main: include_str!("../build-cost/plain.rs"),
        dependencies: "",
    },
    Server {
        key: "analytics",
        label: "+ mcp-analytics (`rmcp`)",
        main: include_str!("../build-cost/analytics.rs"),
        dependencies: "mcp-analytics = { path = {mcp_analytics}, features = [\"rmcp\"] }\n",
    },
    Server {
        key: "posthog",
        label: "+ posthog-rs 0.30 (`mcp`)",
        main: include_str!("../build-cost/posthog.rs"),
        dependencies: "posthog-rs = { version = \"0.30\", features = [\"mcp\"] }\n",
    },
];

/// The crates whose resolved versions the section records.
const VERSIONS_OF: [&str; 5] = ["rmcp", "hyper", "reqwest", "rustls", "posthog-rs"];

/// How many of the slowest units the section lists per server.
const SLOWEST: usize = 5;

#[derive(Debug)]
struct Options {
    servers: Vec<&'static Server>,
    runs: usize,
    write: bool,
}

fn parse_args(args: &[&str]) -> Result<Options> {
    let mut options = Options {
        servers: SERVERS.iter().collect(),
        runs: 1,
        write: true,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match *arg {
            "--no-write" => options.write = false,
            "--only" => {
                let list = args
                    .next()
                    .ok_or("--only needs a list: plain,analytics,posthog")?;
                let keys: Vec<&str> = list.split(',').map(str::trim).collect();
                if let Some(unknown) = keys
                    .iter()
                    .find(|key| !SERVERS.iter().any(|server| server.key == **key))
                {
                    return Err(format!(
                        "--only: no server {unknown:?} (the servers: plain, analytics, posthog)"
                    ));
                }
                // In table order, whatever the order given.
                options.servers = SERVERS
                    .iter()
                    .filter(|server| keys.contains(&server.key))
                    .collect();
            }
            "--runs" => {
                options.runs = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or("--runs needs a number of runs, at least 1")?;
            }
            other => return Err(format!("build-cost: unknown argument {other:?}")),
        }
    }
    Ok(options)
}

pub fn run(root: &Path, args: &[&str]) -> Result<()> {
    let options = parse_args(args)?;
    let machine = Machine::read(root);
    let temp = TempDir::create()?;
    let mut measured = Vec::new();
    for server in &options.servers {
        measured.push(measure(root, temp.path(), server, options.runs)?);
    }
    drop(temp);

    let section = render(&machine, options.runs, &measured);
    print!("\n{section}");
    if options.write {
        let path = root.join("BENCHMARKS.md");
        let page = fs::read_to_string(&path).unwrap_or_default();
        fs::write(&path, splice(&page, &section))
            .map_err(|error| format!("cannot write {path:?}: {error}"))?;
        println!("\nwrote the build-cost section of {}", path.display());
    }
    Ok(())
}

/// A temporary directory, removed when dropped (on an error's early return too).
struct TempDir(PathBuf);

impl TempDir {
    fn create() -> Result<TempDir> {
        let path = env::temp_dir().join(format!("xtask-build-cost-{}", std::process::id()));
        if path.exists() {
            fs::remove_dir_all(&path).map_err(|error| format!("cannot clear {path:?}: {error}"))?;
        }
        fs::create_dir_all(&path).map_err(|error| format!("cannot create {path:?}: {error}"))?;
        Ok(TempDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(error) = fs::remove_dir_all(&self.0) {
            eprintln!("xtask: cannot remove {:?}: {error}", self.0);
        }
    }
}

/// What one server's builds measured.
#[derive(Debug)]
struct Measured {
    label: &'static str,
    key: &'static str,
    /// Every package compiled, as (name, version).
    packages: BTreeSet<(String, String)>,
    /// Per run: seconds of wall time, of CPU time, and the 1-minute load average at its start.
    wall: Vec<f64>,
    cpu: Vec<Option<f64>>,
    load: Vec<Option<f64>>,
    binary_bytes: u64,
    stripped_bytes: Option<u64>,
    /// Packages whose build scripts compiled C or C++: how many object files each left.
    c_objects: BTreeMap<String, usize>,
    /// The slowest units of the last run: label and seconds.
    slowest: Vec<(String, f64)>,
}

impl Measured {
    fn crates(&self) -> usize {
        self.packages.len()
    }

    fn wall(&self) -> Option<f64> {
        median(&self.wall)
    }

    fn cpu(&self) -> Option<f64> {
        let cpu: Option<Vec<f64>> = self.cpu.iter().copied().collect();
        median(&cpu?)
    }

    fn version_of(&self, name: &str) -> Vec<&str> {
        self.packages
            .iter()
            .filter(|(package, _)| package == name)
            .map(|(_, version)| version.as_str())
            .collect()
    }
}

fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[middle]),
        _ => Some((sorted[middle - 1] + sorted[middle]) / 2.0),
    }
}

/// The package's name in its project's manifest.
fn package_name(server: &Server) -> String {
    format!("build-cost-{}", server.key)
}

fn manifest(root: &Path, server: &Server) -> String {
    let mcp_analytics = format!("{:?}", root.join("mcp-analytics").display().to_string());
    format!(
        "[package]\nname = \"{}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
         # A workspace of its own, wherever the temporary directory is.\n[workspace]\n\n\
         [dependencies]\n{COMMON_DEPENDENCIES}{}",
        package_name(server),
        server
            .dependencies
            .replace("{mcp_analytics}", &mcp_analytics)
    )
}

/// Writes the project, fetches its dependencies, then builds and measures it `runs` times.
fn measure(root: &Path, temp: &Path, server: &'static Server, runs: usize) -> Result<Measured> {
    let project = temp.join(server.key);
    let write = |path: PathBuf, text: &str| {
        fs::write(&path, text).map_err(|error| format!("cannot write {path:?}: {error}"))
    };
    fs::create_dir_all(project.join("src"))
        .map_err(|error| format!("cannot create {project:?}: {error}"))?;
    write(project.join("Cargo.toml"), &manifest(root, server))?;
    write(project.join("src/main.rs"), server.main)?;
    write(project.join("src/server.rs"), SERVER_RS)?;
    let lock = root.join("Cargo.lock");
    fs::copy(&lock, project.join("Cargo.lock"))
        .map_err(|error| format!("cannot copy {lock:?}: {error}"))?;
    let target = project.join("target");

    eprintln!("build-cost: {}: cargo fetch", server.key);
    let fetch = cargo(&project, &target)
        .arg("fetch")
        .output()
        .map_err(|error| format!("cannot run cargo fetch: {error}"))?;
    check(server, "cargo fetch", &fetch)?;

    let mut measured = Measured {
        label: server.label,
        key: server.key,
        packages: BTreeSet::new(),
        wall: Vec::new(),
        cpu: Vec::new(),
        load: Vec::new(),
        binary_bytes: 0,
        stripped_bytes: None,
        c_objects: BTreeMap::new(),
        slowest: Vec::new(),
    };
    for run in 1..=runs {
        if target.exists() {
            fs::remove_dir_all(&target)
                .map_err(|error| format!("cannot clear {target:?}: {error}"))?;
        }
        let load = load_average();
        eprintln!(
            "build-cost: {}: clean release build {run} of {runs} (load average {})",
            server.key,
            number(load, 2)
        );
        let cpu_before = children_cpu();
        let started = Instant::now();
        let build = cargo(&project, &target)
            .args([
                "build",
                "--release",
                "--offline",
                "--timings",
                "--message-format=json-render-diagnostics",
            ])
            .output()
            .map_err(|error| format!("cannot run cargo build: {error}"))?;
        let wall = started.elapsed();
        let cpu = children_cpu()
            .zip(cpu_before)
            .map(|(after, before)| after.saturating_sub(before));
        check(server, "cargo build --release", &build)?;
        eprintln!(
            "build-cost: {}: {:.1} s wall, {} s CPU",
            server.key,
            wall.as_secs_f64(),
            number(cpu.map(|cpu| cpu.as_secs_f64()), 1)
        );
        measured.wall.push(wall.as_secs_f64());
        measured.cpu.push(cpu.map(|cpu| cpu.as_secs_f64()));
        measured.load.push(load);

        let stdout = String::from_utf8_lossy(&build.stdout);
        measured.packages = artifact_packages(&stdout);
        let binary = executable(&stdout, &package_name(server)).ok_or_else(|| {
            format!(
                "{}: cargo build reported no executable for {}",
                server.key,
                package_name(server)
            )
        })?;
        measured.binary_bytes = fs::metadata(&binary)
            .map_err(|error| format!("{binary:?}: {error}"))?
            .len();
        measured.stripped_bytes = stripped_size(&binary, &project.join("stripped"));
        measured.c_objects = build_script_out_dirs(&stdout)
            .into_iter()
            .map(|(package, dir)| (package, count_objects(&dir)))
            .filter(|(_, objects)| *objects > 0)
            .fold(BTreeMap::new(), |mut counts, (package, objects)| {
                *counts.entry(package).or_default() += objects;
                counts
            });
        measured.slowest = fs::read_to_string(target.join("cargo-timings/cargo-timing.html"))
            .ok()
            .map(|html| slowest_units(&html, SLOWEST))
            .unwrap_or_default();
    }
    // Hundreds of megabytes each: gone before the next server builds.
    let _ = fs::remove_dir_all(&target);
    Ok(measured)
}

/// Cargo, in `project`, building into `target`, away from what the caller's environment would
/// change in a clean build with the default release profile.
fn cargo(project: &Path, target: &Path) -> Command {
    let mut command = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .current_dir(project)
        .env("CARGO_TARGET_DIR", target)
        .env("CARGO_TERM_COLOR", "never")
        // Empty: no wrapper, whatever cargo's configuration says (a cache is not a clean build).
        .env("RUSTC_WRAPPER", "")
        .env("RUSTC_WORKSPACE_WRAPPER", "")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_INCREMENTAL");
    for (key, _) in env::vars_os() {
        if key.to_string_lossy().starts_with("CARGO_PROFILE_") {
            command.env_remove(key);
        }
    }
    command
}

/// An error with the tail of cargo's stderr when `output` is a failure.
fn check(server: &Server, what: &str, output: &Output) -> Result<()> {
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} of the {} server failed ({}); the end of its output:\n{}",
        server.key,
        output.status,
        tail(&String::from_utf8_lossy(&output.stderr), 40)
    ))
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The 1-minute load average, from `/proc/loadavg`.
fn load_average() -> Option<f64> {
    fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// User and system time of this process's children that have been waited for, theirs
/// included (cargo waits for every rustc and build script it runs).
#[cfg(unix)]
fn children_cpu() -> Option<Duration> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `getrusage` fills the `rusage` it is given a pointer to, and reports failure
    // (nothing written) with -1.
    let usage = unsafe {
        if libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) != 0 {
            return None;
        }
        usage.assume_init()
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.try_into().unwrap_or(0))
            + Duration::from_micros(t.tv_usec.try_into().unwrap_or(0))
    };
    Some(time(usage.ru_utime) + time(usage.ru_stime))
}

#[cfg(not(unix))]
fn children_cpu() -> Option<Duration> {
    None
}

/// The size of `binary` once stripped, measured on a copy at `copy`; `None` (and a warning)
/// without a working `strip`.
fn stripped_size(binary: &Path, copy: &Path) -> Option<u64> {
    fs::copy(binary, copy).ok()?;
    match Command::new("strip").arg(copy).status() {
        Ok(status) if status.success() => fs::metadata(copy).ok().map(|meta| meta.len()),
        outcome => {
            eprintln!("build-cost: strip did not run ({outcome:?}): no stripped size");
            None
        }
    }
}

/// The object files (`.o`, `.obj`) under `dir`: what a build script compiled with a C or C++
/// compiler (cc-rs and cmake leave them in the script's output directory).
fn count_objects(dir: &Path) -> usize {
    let mut count = 0;
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path
                .extension()
                .is_some_and(|extension| extension == "o" || extension == "obj")
            {
                count += 1;
            }
        }
    }
    count
}

/// A package's name and version from its id, as cargo writes it in JSON messages:
/// `registry+https://github.com/rust-lang/crates.io-index#rmcp@3.11.0`, or, for a path package
/// in a folder of its own name, `path+file:///tmp/plain#0.1.0`.
fn package_of(id: &str) -> Option<(String, String)> {
    let (source, fragment) = id.rsplit_once('#')?;
    match fragment.split_once('@') {
        Some((name, version)) => Some((name.to_owned(), version.to_owned())),
        None => {
            let name = source.trim_end_matches('/').rsplit('/').next()?;
            Some((name.to_owned(), fragment.to_owned()))
        }
    }
}

/// The JSON messages of `cargo build --message-format=json..`, one per line (cargo's rendered
/// diagnostics go to stderr; anything else that is not JSON is skipped).
fn messages(stdout: &str) -> impl Iterator<Item = Value> + '_ {
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
}

fn reason_is(message: &Value, reason: &str) -> bool {
    message["reason"].as_str() == Some(reason)
}

/// Every package that produced a `compiler-artifact`: the crates the build compiled, each once
/// however many of its targets (library, build script, binary) were built.
fn artifact_packages(stdout: &str) -> BTreeSet<(String, String)> {
    messages(stdout)
        .filter(|message| reason_is(message, "compiler-artifact"))
        .filter_map(|message| package_of(message["package_id"].as_str()?))
        .collect()
}

/// The executable the build produced for `package` (the server's binary).
fn executable(stdout: &str, package: &str) -> Option<PathBuf> {
    messages(stdout)
        .filter(|message| reason_is(message, "compiler-artifact"))
        .filter(|message| {
            message["package_id"]
                .as_str()
                .and_then(package_of)
                .is_some_and(|(name, _)| name == package)
        })
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
}

/// Each build script that ran: its package's name and its output directory.
fn build_script_out_dirs(stdout: &str) -> Vec<(String, PathBuf)> {
    messages(stdout)
        .filter(|message| reason_is(message, "build-script-executed"))
        .filter_map(|message| {
            let (name, _) = package_of(message["package_id"].as_str()?)?;
            Some((name, PathBuf::from(message["out_dir"].as_str()?)))
        })
        .collect()
}

/// The `n` slowest units of cargo's `--timings` report (its HTML embeds them as `UNIT_DATA`,
/// a JSON array): a label and seconds each, slowest first. Empty when the report has no such
/// data (its format is not a stable interface).
fn slowest_units(html: &str, n: usize) -> Vec<(String, f64)> {
    let Some(start) = html.find("const UNIT_DATA = ") else {
        return Vec::new();
    };
    let data = &html[start + "const UNIT_DATA = ".len()..];
    let Some(end) = data.find("\n];") else {
        return Vec::new();
    };
    let Ok(Value::Array(units)) = serde_json::from_str::<Value>(&data[..end + 2]) else {
        return Vec::new();
    };
    let mut units: Vec<(String, f64)> = units
        .iter()
        .filter_map(|unit| {
            let name = unit["name"].as_str()?;
            let duration = unit["duration"].as_f64()?;
            let target = unit["target"].as_str().unwrap_or("");
            let label = if unit["mode"].as_str() == Some("run-custom-build") {
                format!("{name} (build script, run)")
            } else if target.contains("build script") {
                format!("{name} (build script, compiled)")
            } else {
                name.to_owned()
            };
            Some((label, duration))
        })
        .collect();
    units.sort_by(|a, b| b.1.total_cmp(&a.1));
    units.truncate(n);
    units
}

/// A difference from the plain server's figure, signed; empty on the plain row or without it.
fn delta(value: Option<f64>, plain: Option<f64>, decimals: usize) -> String {
    match (value, plain) {
        (Some(value), Some(plain)) => {
            let sign = if value - plain >= 0.0 { "+" } else { "" };
            format!("{sign}{}", number(Some(value - plain), decimals))
        }
        _ => "—".to_owned(),
    }
}

fn megabytes(bytes: Option<u64>) -> Option<f64> {
    bytes.map(|bytes| bytes as f64 / 1e6)
}

/// The Markdown section, markers included.
fn render(machine: &Machine, runs: usize, measured: &[Measured]) -> String {
    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(w, "{START}");
    let _ = writeln!(
        w,
        "## Build cost: a minimal rmcp stdio server\n\nWritten by `cargo xtask build-cost` \
         (`cargo xtask bench` keeps this section as it is). The same minimal server (one tool \
         through rmcp's `#[tool_router]`, `#[tool]` and `#[tool_handler]`, served on \
         `rmcp::transport::stdio()`), each way a cargo project generated from \
         `xtask/build-cost/`: plain; wrapped by mcp-analytics (`init()` and `instrument!`, \
         feature `rmcp`); wrapped by posthog-rs's `mcp` feature (`posthog_rs::mcp::instrument`, \
         its default features kept). Each built clean with `cargo build --release` (cargo's \
         default release profile) in a fresh target directory, one at a time, its downloads \
         fetched before the clock starts. The + columns are over the plain server of the same \
         run.\n"
    );
    let _ = writeln!(
        w,
        "| server | crates | + crates | wall s | + wall s | CPU s | + CPU s | binary MB | \
         stripped MB | + stripped MB | load at start |\n| --- | ---: | ---: | ---: | ---: | \
         ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let plain = measured.iter().find(|m| m.key == "plain");
    for m in measured {
        let is_plain = m.key == "plain";
        let against = |value: Option<f64>, of_plain: Option<f64>, decimals| {
            if is_plain {
                String::new()
            } else {
                delta(value, of_plain, decimals)
            }
        };
        let crates = Some(m.crates() as f64);
        let loads: Vec<String> = m.load.iter().map(|load| number(*load, 2)).collect();
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            m.label,
            m.crates(),
            against(crates, plain.map(|p| p.crates() as f64), 0),
            number(m.wall(), 1),
            against(m.wall(), plain.and_then(Measured::wall), 1),
            number(m.cpu(), 1),
            against(m.cpu(), plain.and_then(Measured::cpu), 1),
            number(megabytes(Some(m.binary_bytes)), 2),
            number(megabytes(m.stripped_bytes), 2),
            against(
                megabytes(m.stripped_bytes),
                plain.and_then(|p| megabytes(p.stripped_bytes)),
                2
            ),
            loads.join(", ")
        );
    }

    let resolved: Vec<String> = measured
        .iter()
        .map(|m| {
            let versions: Vec<String> = VERSIONS_OF
                .iter()
                .filter_map(|name| {
                    let versions = m.version_of(name);
                    (!versions.is_empty()).then(|| format!("{name} {}", versions.join(" and ")))
                })
                .collect();
            format!("{}: {}", m.key, versions.join(", "))
        })
        .collect();
    let _ = writeln!(w, "\n| run | |\n| --- | --- |");
    let _ = writeln!(w, "| date | {} |", machine.date);
    let _ = writeln!(w, "| commit | {} |", machine.commit);
    let _ = writeln!(w, "| CPU | {} |", machine.cpu);
    let _ = writeln!(w, "| cores | {} |", machine.cores);
    let _ = writeln!(w, "| compiler | {} |", machine.rustc);
    let _ = writeln!(
        w,
        "| builds per server | {runs} (wall and CPU time: the median) |"
    );
    let _ = writeln!(w, "| resolved | {} |", resolved.join("; "));

    let _ = writeln!(
        w,
        "\nC and C++ compiled (object files left in the build scripts' output directories):\n"
    );
    for m in measured {
        let compiled = listed(
            m.c_objects
                .iter()
                .map(|(package, objects)| format!("{package} ({objects} objects)")),
            "none",
        );
        let _ = writeln!(w, "- {}: {compiled}", m.label);
    }

    let _ = writeln!(
        w,
        "\nSlowest units (cargo's `--timings`, seconds, the last build; units overlap on {} \
         cores):\n",
        machine.cores
    );
    for m in measured {
        let units = listed(
            m.slowest
                .iter()
                .map(|(unit, seconds)| format!("{unit} {}", number(Some(*seconds), 1))),
            "n/a",
        );
        let _ = writeln!(w, "- {}: {units}", m.label);
    }

    if let Some(plain) = plain {
        for m in measured.iter().filter(|m| m.key != "plain") {
            // The servers' own packages aside: each build has one.
            let added: Vec<String> = m
                .packages
                .difference(&plain.packages)
                .filter(|(name, _)| !name.starts_with("build-cost-"))
                .map(|(name, version)| format!("{name} {version}"))
                .collect();
            let _ = writeln!(
                w,
                "\n<details><summary>The {} crates {} compiles that plain rmcp does not\
                 </summary>\n\n{}\n\n</details>",
                added.len(),
                m.label,
                added.join(", ")
            );
        }
    }

    let _ = writeln!(
        w,
        "\nHow measured: crates are the unique packages among the `compiler-artifact` messages \
         of `cargo build --release --message-format=json-render-diagnostics` (the server's own \
         package included; a build script or proc macro counts with its package; two versions \
         of a crate count twice). Wall time is the clean build's; CPU time is user + system of \
         cargo and everything it ran (`getrusage(RUSAGE_CHILDREN)` around the build): on a \
         loaded machine the wall time stretches more than the CPU time, hence the 1-minute load \
         average at each build's start (the previous build's own load counts in it). The \
         binary is `target/release/<server>` as cargo leaves it (its default release profile \
         strips debug info and keeps symbols); stripped: a copy through `strip`. MB: 10⁶ \
         bytes. Each project starts from a copy of \
         the workspace's `Cargo.lock`: the crates it shares with the workspace are at the \
         workspace's versions, the others at the newest that fit."
    );
    let _ = writeln!(w, "{END}");
    md
}

/// Where the build-cost section of `page` is, markers included, if it has one.
fn section_range(page: &str) -> Option<Range<usize>> {
    let start = page.find(START)?;
    let end = start + page[start..].find(END)? + END.len();
    Some(start..end)
}

/// The build-cost section of `page`, markers included, if it has one.
pub fn section_of(page: &str) -> Option<&str> {
    section_range(page).map(|range| &page[range])
}

/// `page` with its build-cost section replaced by `section` (markers included), or with
/// `section` appended when it has none.
pub fn splice(page: &str, section: &str) -> String {
    let section = section.trim_end_matches('\n');
    if let Some(range) = section_range(page) {
        return format!("{}{section}{}", &page[..range.start], &page[range.end..]);
    }
    let page = page.trim_end_matches('\n');
    if page.is_empty() {
        format!("{section}\n")
    } else {
        format!("{page}\n\n{section}\n")
    }
}

/// `items` separated by commas, or `empty` when there are none.
fn listed(items: impl Iterator<Item = String>, empty: &str) -> String {
    let items: Vec<String> = items.collect();
    if items.is_empty() {
        empty.to_owned()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(id: &str, executable: Option<&str>) -> String {
        serde_json::json!({
            "reason": "compiler-artifact", "package_id": id,
            "target": {"kind": ["lib"], "name": "x"}, "executable": executable, "fresh": false,
        })
        .to_string()
    }

    #[test]
    fn package_ids_read_in_both_forms() {
        assert_eq!(
            package_of("registry+https://github.com/rust-lang/crates.io-index#rmcp@3.11.0"),
            Some(("rmcp".into(), "3.11.0".into()))
        );
        assert_eq!(
            package_of("path+file:///tmp/x/build-cost-plain#0.1.0"),
            Some(("build-cost-plain".into(), "0.1.0".into()))
        );
        assert_eq!(
            package_of("path+file:///tmp/x/plain#build-cost-plain@0.1.0"),
            Some(("build-cost-plain".into(), "0.1.0".into()))
        );
        assert_eq!(package_of("no fragment"), None);
    }

    #[test]
    fn crates_are_counted_once_per_package_from_artifacts_only() {
        let registry = "registry+https://github.com/rust-lang/crates.io-index";
        let stdout = [
            artifact(&format!("{registry}#serde@1.0.228"), None),
            // The same package again: its build script, then its library.
            artifact(&format!("{registry}#serde@1.0.228"), None),
            artifact(&format!("{registry}#getrandom@0.2.16"), None),
            // Two versions of a crate are two crates.
            artifact(&format!("{registry}#getrandom@0.3.4"), None),
            artifact(
                "path+file:///tmp/t/plain#build-cost-plain@0.1.0",
                Some("/tmp/t/plain/target/release/build-cost-plain"),
            ),
            serde_json::json!({"reason": "build-script-executed",
                "package_id": format!("{registry}#ring@0.17.14"), "out_dir": "/tmp/out"})
            .to_string(),
            r#"{"reason":"build-finished","success":true}"#.to_owned(),
            "   Compiling not json".to_owned(),
        ]
        .join("\n");
        let packages = artifact_packages(&stdout);
        assert_eq!(packages.len(), 4, "{packages:?}");
        assert!(packages.contains(&("getrandom".into(), "0.3.4".into())));
        assert!(!packages.iter().any(|(name, _)| name == "ring"));
        assert_eq!(
            executable(&stdout, "build-cost-plain"),
            Some(PathBuf::from(
                "/tmp/t/plain/target/release/build-cost-plain"
            ))
        );
        assert_eq!(executable(&stdout, "serde"), None);
        assert_eq!(
            build_script_out_dirs(&stdout),
            [("ring".to_owned(), PathBuf::from("/tmp/out"))]
        );
    }

    #[test]
    fn slowest_units_come_from_the_timing_reports_data() {
        let html = r#"<script>
DURATION = 90;
const UNIT_DATA = [
  {"i": 0, "name": "aws-lc-sys", "version": "0.47.0", "mode": "run-custom-build",
   "target": " build script", "start": 1.0, "duration": 40.5},
  {"i": 1, "name": "aws-lc-sys", "version": "0.47.0", "mode": "todo",
   "target": " build script", "start": 0.5, "duration": 2.0},
  {"i": 2, "name": "rmcp", "version": "3.11.0", "mode": "todo", "target": "",
   "start": 3.0, "duration": 20.25}
];
const CONCURRENCY_DATA = [];
</script>"#;
        assert_eq!(
            slowest_units(html, 2),
            [
                ("aws-lc-sys (build script, run)".to_owned(), 40.5),
                ("rmcp".to_owned(), 20.25)
            ]
        );
        assert_eq!(
            slowest_units(html, 5)[2],
            ("aws-lc-sys (build script, compiled)".to_owned(), 2.0)
        );
        assert!(slowest_units("<html>no data</html>", 5).is_empty());
    }

    #[test]
    fn options_select_servers_in_table_order() {
        let options = parse_args(&["--only", "posthog,plain", "--no-write"]).unwrap();
        let keys: Vec<&str> = options.servers.iter().map(|s| s.key).collect();
        assert_eq!(keys, ["plain", "posthog"]);
        assert!(!options.write);
        assert_eq!(options.runs, 1);
        assert_eq!(parse_args(&["--runs", "3"]).unwrap().runs, 3);
        assert!(parse_args(&["--only", "plain,tracing"]).is_err());
        assert!(parse_args(&["--runs", "0"]).is_err());
        assert!(parse_args(&["--only"]).is_err());
        assert!(parse_args(&["--fast"]).is_err());
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    fn machine() -> Machine {
        Machine {
            cpu: "AMD EPYC".into(),
            cores: 2,
            memory: "24 GiB".into(),
            kernel: "6.0".into(),
            rustc: "rustc 1.95.0".into(),
            date: "2026-12-02 12:00 UTC".into(),
            commit: "abc1234".into(),
        }
    }

    fn measured(key: &'static str, label: &'static str, crates: &[&str], wall: f64) -> Measured {
        Measured {
            label,
            key,
            packages: crates
                .iter()
                .map(|name| ((*name).to_owned(), "1.0.0".to_owned()))
                .collect(),
            wall: vec![wall],
            cpu: vec![Some(wall * 1.5)],
            load: vec![Some(2.0)],
            binary_bytes: 4_000_000,
            stripped_bytes: Some(3_100_000),
            c_objects: BTreeMap::new(),
            slowest: vec![("rmcp".into(), 20.0)],
        }
    }

    #[test]
    fn the_section_shows_each_server_against_plain() {
        let plain = measured(
            "plain",
            "plain rmcp",
            &["build-cost-plain", "rmcp", "tokio"],
            90.0,
        );
        let mut analytics = measured(
            "analytics",
            "+ mcp-analytics (`rmcp`)",
            &[
                "build-cost-analytics",
                "rmcp",
                "tokio",
                "reqwest",
                "aws-lc-sys",
            ],
            176.0,
        );
        analytics.stripped_bytes = Some(9_100_000);
        analytics.c_objects.insert("aws-lc-sys".into(), 300);
        let md = render(&machine(), 1, &[plain, analytics]);
        assert!(
            md.starts_with(START) && md.trim_end().ends_with(END),
            "{md}"
        );
        assert!(
            md.contains("| plain rmcp | 3 |  | 90.0 |  | 135.0 |  | 4.00 | 3.10 |  | 2.00 |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| + mcp-analytics (`rmcp`) | 5 | +2 | 176.0 | +86.0 | 264.0 | +129.0 | 4.00 | \
                 9.10 | +6.00 | 2.00 |"
            ),
            "{md}"
        );
        assert!(md.contains("aws-lc-sys (300 objects)"), "{md}");
        assert!(md.contains("- plain rmcp: none"), "{md}");
        assert!(
            md.contains("The 2 crates + mcp-analytics (`rmcp`) compiles"),
            "{md}"
        );
        assert!(md.contains("aws-lc-sys 1.0.0, reqwest 1.0.0"), "{md}");
        assert!(md.contains("| commit | abc1234 |"), "{md}");
        assert!(md.contains("analytics: rmcp 1.0.0, reqwest 1.0.0"), "{md}");
    }

    #[test]
    fn without_plain_there_are_no_differences() {
        let analytics = measured("analytics", "+ mcp-analytics", &["rmcp"], 100.0);
        let md = render(&machine(), 1, &[analytics]);
        assert!(
            md.contains("| + mcp-analytics | 1 | — | 100.0 | — |"),
            "{md}"
        );
        assert!(!md.contains("<details>"), "{md}");
    }

    #[test]
    fn the_section_replaces_the_previous_one_or_is_appended() {
        let section = format!("{START}\n## Build cost\nnew\n{END}\n");
        let page = format!("# Benchmarks\n\ntext\n\n{START}\nold\n{END}\n\n## After\n");
        assert_eq!(
            splice(&page, &section),
            format!("# Benchmarks\n\ntext\n\n{START}\n## Build cost\nnew\n{END}\n\n## After\n")
        );
        // Idempotent.
        let once = splice(&page, &section);
        assert_eq!(splice(&once, &section), once);
        assert_eq!(
            splice("# Benchmarks\n\ntext\n", &section),
            format!("# Benchmarks\n\ntext\n\n{section}")
        );
        assert_eq!(splice("", &section), section);
        // An end marker alone is no section: appended.
        let broken = format!("# B\n{END}\n");
        assert_eq!(
            splice(&broken, &section),
            format!("# B\n{END}\n\n{section}")
        );
        assert_eq!(section_of(&page), Some(&*format!("{START}\nold\n{END}")));
        assert_eq!(section_of("# B\n"), None);
    }

    #[test]
    fn manifests_depend_on_the_workspace_crate_by_path() {
        let root = Path::new("/work/repo");
        let analytics = manifest(root, &SERVERS[1]);
        assert!(
            analytics.contains("name = \"build-cost-analytics\""),
            "{analytics}"
        );
        assert!(
            analytics.contains(
                "mcp-analytics = { path = \"/work/repo/mcp-analytics\", features = [\"rmcp\"] }"
            ),
            "{analytics}"
        );
        assert!(analytics.contains("\n[workspace]\n"), "{analytics}");
        assert!(!manifest(root, &SERVERS[0]).contains("mcp-analytics"));
        assert!(manifest(root, &SERVERS[2]).contains("posthog-rs = { version = \"0.30\""));
    }

    /// The servers use the rmcp the runtime crate is built against.
    #[test]
    fn the_rmcp_requirement_is_the_runtime_crates() {
        let runtime = include_str!("../../mcp-analytics/Cargo.toml");
        let requirement = |text: &str| {
            text.lines()
                .find(|line| line.starts_with("rmcp = { version = "))
                .and_then(|line| line.split('"').nth(1))
                .map(str::to_owned)
        };
        assert_eq!(requirement(COMMON_DEPENDENCIES), requirement(runtime));
        assert!(requirement(runtime).is_some());
    }
}
