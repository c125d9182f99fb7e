//! The workspace's own automation (the `cargo xtask` pattern: plain Rust, no extra tool).
//!
//! `cargo xtask bench` runs every benchmark (`hot_path_live`, `hot_path`, `rmcp_server`,
//! `sustained`, `pipeline`, `outage`, `spool`) in one run and writes `BENCHMARKS.md` at the workspace root: the machine, the date, every figure
//! as a median, the ratios to the baseline and to each peer from that same run, and each target
//! met or missed.
//!
//! `cargo xtask msrv` checks that no dependency of a published crate needs a newer Rust than the
//! workspace's `rust-version` (see `msrv.rs`); `cargo xtask public-api` compares the public API of
//! `mcp-analytics` with its snapshot, `mcp-analytics/public-api.txt`, and `--bless` rewrites the
//! snapshot (see `public_api.rs`). CI runs both.
//!
//! `cargo xtask build-cost` builds three minimal rmcp stdio servers clean, one at a time, in a
//! temporary directory (plain, with mcp-analytics, with posthog-rs's `mcp` feature) and writes
//! what each compiles, how long it takes and how big its binary is into a section of
//! `BENCHMARKS.md` of its own, which `cargo xtask bench` keeps (see `build_cost.rs`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::{env, fs};

use serde_json::Value;

mod build_cost;
mod msrv;
mod public_api;

type Result<T, E = String> = std::result::Result<T, E>;

const USAGE: &str = "usage: cargo xtask <task>

  bench                 run every benchmark (about seven minutes) and write BENCHMARKS.md
                        (its build-cost section kept as it is)
  build-cost [--only plain,analytics,posthog] [--runs N] [--no-write]
                        build a minimal rmcp stdio server clean three ways (plain, with
                        mcp-analytics, with posthog-rs's `mcp` feature), one at a time, in a
                        temporary directory; print the crates compiled, wall and CPU time and
                        binary size of each, and write them into BENCHMARKS.md's build-cost
                        section (unless --no-write). --only measures a subset; --runs N (default
                        1) builds each N times and takes the median. Minutes per build
  msrv                  fail if a dependency of a published crate (all features) declares a
                        rust-version above the workspace's
  public-api [--bless]  compare the public API of mcp-analytics (all features) with
                        mcp-analytics/public-api.txt; --bless rewrites the file";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let outcome = match args.as_slice() {
        ["bench"] => bench(),
        ["build-cost", rest @ ..] => build_cost::run(&workspace_root(), rest),
        ["msrv"] => msrv(),
        ["public-api"] => public_api::run(&workspace_root(), false),
        ["public-api", "--bless"] => public_api::run(&workspace_root(), true),
        ["-h" | "--help"] => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(USAGE.to_owned()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Where the workspace is: this crate's parent folder.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

/// `cargo metadata --format-version 1` with `args`, run in the workspace, parsed.
fn cargo_metadata(args: &[&str]) -> Result<Value> {
    let output = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(workspace_root())
        .args(["metadata", "--format-version", "1"])
        .args(args)
        .output()
        .map_err(|error| format!("cannot run cargo metadata: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|error| format!("cargo metadata: {error}"))
}

/// `cargo xtask msrv`: reads `cargo metadata` (all features, every target) and checks every
/// published crate's dependencies against its `rust-version`.
fn msrv() -> Result<()> {
    let metadata = cargo_metadata(&["--all-features", "--locked"])?;
    let (text, passed) = msrv::render(&msrv::check(&metadata)?);
    print!("{text}");
    if passed {
        Ok(())
    } else {
        Err(
            "a dependency needs a newer Rust than the workspace's rust-version: \
             raise `rust-version` in Cargo.toml (and the README's MSRV section), or keep that \
             dependency at a version that supports ours"
                .to_owned(),
        )
    }
}

fn bench() -> Result<()> {
    let root = workspace_root();
    let out = root.join("target/benchmarks");
    // Fresh results only: a figure left over from an earlier run must not pass as this run's.
    if out.exists() {
        fs::remove_dir_all(&out).map_err(|error| format!("cannot clear {out:?}: {error}"))?;
    }
    fs::create_dir_all(&out).map_err(|error| format!("cannot create {out:?}: {error}"))?;

    let machine = Machine::read(&root);
    let status = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(&root)
        .args(["bench", "--locked"])
        .args(BENCHES.iter().flat_map(|bench| ["--bench", bench]))
        .env("CRITERION_HOME", out.join("criterion"))
        .env("MCP_ANALYTICS_BENCH_OUT", &out)
        .status()
        .map_err(|error| format!("cannot run cargo bench: {error}"))?;
    if !status.success() {
        return Err(format!("cargo bench failed ({status})"));
    }

    let results = Results::read(&out)?;
    let mut markdown = render(&machine, &results);
    let path = root.join("BENCHMARKS.md");
    // The build-cost section is `cargo xtask build-cost`'s: kept as the page had it.
    if let Some(build_cost) = fs::read_to_string(&path)
        .ok()
        .as_deref()
        .and_then(build_cost::section_of)
    {
        markdown = build_cost::splice(&markdown, build_cost);
    }
    fs::write(&path, markdown).map_err(|error| format!("cannot write {path:?}: {error}"))?;
    println!("\nwrote {}", path.display());
    for target in results.targets() {
        let verdict = if target.met { "met" } else { "MISSED" };
        println!("  {verdict:<6} {}", target.name);
    }
    Ok(())
}

const BENCHES: [&str; 7] = [
    "hot_path_live",
    "hot_path",
    "rmcp_server",
    "sustained",
    "pipeline",
    "outage",
    "spool",
];

/// What the figures were measured on.
struct Machine {
    cpu: String,
    cores: usize,
    memory: String,
    kernel: String,
    rustc: String,
    date: String,
    commit: String,
}

impl Machine {
    fn read(root: &Path) -> Machine {
        let proc_field = |file: &str, key: &str| {
            fs::read_to_string(file)
                .ok()
                .and_then(|text| {
                    text.lines()
                        .find(|line| line.starts_with(key))
                        .and_then(|line| line.split_once(':'))
                        .map(|(_, value)| value.trim().to_owned())
                })
                .unwrap_or_else(|| "unknown".to_owned())
        };
        let memory = proc_field("/proc/meminfo", "MemTotal")
            .trim_end_matches(" kB")
            .parse::<f64>()
            .map_or_else(
                |_| "unknown".to_owned(),
                |kib| format!("{:.0} GiB", kib / 1024.0 / 1024.0),
            );
        // The page being rewritten does not make the tree dirty.
        let dirty = output(
            root,
            "git",
            &["status", "--porcelain", "--", ".", ":!BENCHMARKS.md"],
        )
        .is_some_and(|status| !status.is_empty());
        let commit = output(root, "git", &["rev-parse", "--short", "HEAD"])
            .map(|commit| {
                if dirty {
                    format!("{commit} with uncommitted changes")
                } else {
                    commit
                }
            })
            .unwrap_or_else(|| "unknown".to_owned());
        Machine {
            cpu: proc_field("/proc/cpuinfo", "model name"),
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            memory,
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "unknown".to_owned(), |text| text.trim().to_owned()),
            rustc: output(root, "rustc", &["--version"]).unwrap_or_else(|| "unknown".to_owned()),
            date: output(root, "date", &["-u", "+%Y-%m-%d %H:%M UTC"])
                .unwrap_or_else(|| "unknown".to_owned()),
            commit,
        }
    }
}

/// A command's trimmed stdout, if it ran and succeeded.
fn output(dir: &Path, program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The hot path's subjects and layouts, in table order.
const SUBJECTS: [(&str, &str); 5] = [
    ("baseline", "uninstrumented (baseline)"),
    ("mcp_tool", "`#[mcp_tool]`"),
    (
        "mcp_tool_fields",
        "`#[mcp_tool(fields(..))]`, two fields (sync only)",
    ),
    (
        "tracing",
        "tracing `#[instrument]` + registry + recording layer",
    ),
    (
        "fastrace",
        "fastrace `#[trace]` + collector + discarding reporter",
    ),
];
/// The `rmcp_server` benchmark's subjects, each against the unrecorded request.
const RMCP_SUBJECTS: [(&str, &str); 3] = [
    ("mcp_tool", "`#[mcp_tool]` on `call_tool`"),
    ("wrapper", "`instrument!(server)`"),
    (
        "wrapper_and_mcp_tool",
        "both (one row: the attribute joins the wrapper's)",
    ),
];

/// The `hot_path_live` benchmark's subjects, each against the uninstrumented twin.
const LIVE_SUBJECTS: [(&str, &str); 3] = [
    ("mcp_tool", "`#[mcp_tool]`"),
    (
        "tracing",
        "tracing `#[instrument]` + registry + a layer counting closes",
    ),
    (
        "fastrace",
        "fastrace `#[trace]` + collector + discarding reporter",
    ),
];

const COLUMNS: [(&str, &str, &str); 4] = [
    ("one_thread", "sync", "1 thread, sync"),
    ("one_thread", "async", "1 thread, async"),
    ("two_threads", "sync", "2 threads, sync"),
    ("two_threads", "async", "2 threads, async"),
];

/// One hot-path benchmark's median, named `group/variant/subject` by criterion (e.g.
/// `one_thread/sync/mcp_tool`).
#[derive(Debug, PartialEq)]
struct Median {
    group: String,
    variant: String,
    subject: String,
    ns: f64,
}

/// Every figure of one run.
struct Results {
    hot_path: Vec<Median>,
    hot_path_live: Value,
    rmcp: Value,
    sustained: Value,
    pipeline: Value,
    outage: Value,
    spool: Value,
}

impl Results {
    fn read(out: &Path) -> Result<Results> {
        let json = |name: &str| -> Result<Value> {
            let path = out.join(format!("{name}.json"));
            let text = fs::read_to_string(&path)
                .map_err(|error| format!("no {name} results at {path:?}: {error}"))?;
            serde_json::from_str(&text).map_err(|error| format!("{path:?}: {error}"))
        };
        Ok(Results {
            hot_path: criterion_medians(&out.join("criterion"))?,
            hot_path_live: json("hot_path_live")?,
            rmcp: json("rmcp_server")?,
            sustained: json("sustained")?,
            pipeline: json("pipeline")?,
            outage: json("outage")?,
            spool: json("spool")?,
        })
    }

    fn ns(&self, group: &str, variant: &str, subject: &str) -> Option<f64> {
        self.hot_path
            .iter()
            .find(|m| m.group == group && m.variant == variant && m.subject == subject)
            .map(|m| m.ns)
    }

    /// Added ns per call over the baseline of the same column.
    fn added(&self, group: &str, variant: &str, subject: &str) -> Option<f64> {
        Some(self.ns(group, variant, subject)? - self.ns(group, variant, "baseline")?)
    }

    fn pipeline(&self, path: &str) -> Option<f64> {
        self.pipeline.pointer(path).and_then(Value::as_f64)
    }

    fn spool(&self, path: &str) -> Option<f64> {
        self.spool.pointer(path).and_then(Value::as_f64)
    }

    /// A figure of the live hot path: `subject` is `sync/mcp_tool` and the like.
    fn live(&self, subject: &str, key: &str) -> Option<f64> {
        self.hot_path_live["subjects"][subject][key].as_f64()
    }

    /// A figure of the rmcp benchmark (worker live): `subject` is `wrapper` and the like.
    fn rmcp(&self, subject: &str, key: &str) -> Option<f64> {
        self.rmcp["subjects"][subject][key].as_f64()
    }

    /// The sustained-rate run of `threads` threads at `rate` events/s each.
    fn sustained(&self, threads: u64, rate: u64) -> Option<&Value> {
        self.sustained["configurations"]
            .as_array()?
            .iter()
            .find(|c| c["threads"] == threads && c["rate_per_thread"] == rate)
    }

    fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        let ours = |variant: &str| self.live(&format!("{variant}/mcp_tool"), "added_ns");
        let sync = ours("sync");
        let dropped = self.hot_path_live["dropped"].as_u64();
        targets.push(Target::new(
            "G1: a sync `#[mcp_tool]` call adds at most 25 ns (median), the worker live and \
             shipping",
            format!(
                "{} ns (p10 {}, p90 {}); dropped meanwhile: {}",
                number(sync, 1),
                number(self.live("sync/mcp_tool", "added_ns_p10"), 1),
                number(self.live("sync/mcp_tool", "added_ns_p90"), 1),
                number(dropped.map(|d| d as f64), 0)
            ),
            sync.is_some_and(|ns| ns <= 25.0),
        ));
        for (peer, label, bound) in [
            (
                "fastrace",
                "G1: at most 0.3× fastrace `#[trace]`'s added cost, same run",
                0.3,
            ),
            (
                "tracing",
                "G1: at most 0.2× tracing `#[instrument]`'s added cost (a layer counting \
                 closes), same run",
                0.2,
            ),
        ] {
            let ratios: Vec<(&str, Option<f64>)> = ["sync", "async"]
                .into_iter()
                .map(|variant| {
                    let theirs = self.live(&format!("{variant}/{peer}"), "added_ns");
                    (variant, ours(variant).zip(theirs).map(|(o, t)| o / t))
                })
                .collect();
            targets.push(Target::new(
                label,
                format!(
                    "ours ÷ theirs: {}",
                    ratios
                        .iter()
                        .map(|(variant, r)| format!("{variant} {}", number(*r, 2)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                ratios.iter().all(|(_, r)| r.is_some_and(|r| r <= bound)),
            ));
        }
        let async_gap = ours("async").zip(sync).map(|(a, s)| a - s);
        let plain = self.rmcp("sync_call", "added_ns");
        let wrapper = self.rmcp("wrapper", "added_ns");
        let wrapper_gap = wrapper.zip(plain).map(|(w, p)| w - p);
        targets.push(Target::new(
            "G1: the async call, and a `tools/call` through the rmcp wrapper, each within 10 ns \
             of the sync call's added cost",
            format!(
                "async {} ns ({} ns over sync); wrapper {} ns against a sync call's {} ns in \
                 the same run ({} ns over)",
                number(ours("async"), 1),
                number(async_gap, 1),
                number(wrapper, 1),
                number(plain, 1),
                number(wrapper_gap, 1)
            ),
            async_gap.is_some_and(|gap| gap.abs() <= 10.0)
                && wrapper_gap.is_some_and(|gap| gap.abs() <= 10.0),
        ));
        let field = |run: Option<&Value>, key: &str| run.and_then(|run| run[key].as_f64());
        let single = self.sustained(1, 600_000);
        let (dropped, rate, cores) = (
            field(single, "dropped"),
            field(single, "delivered_per_second"),
            field(single, "worker_cores"),
        );
        targets.push(Target::new(
            "G2: 1,000,000 events at 600,000 events/s from one thread: none dropped, at least \
             500,000 events/s delivered end to end, the worker using at most one core",
            format!(
                "{} dropped, {} events/s delivered, worker {} cores",
                number(dropped, 0),
                number(rate, 0),
                number(cores, 2)
            ),
            dropped == Some(0.0)
                && rate.is_some_and(|r| r >= 500_000.0)
                && cores.is_some_and(|c| c <= 1.0),
        ));
        let two = self.sustained(2, 150_000);
        let dropped = field(two, "dropped");
        targets.push(Target::new(
            "G2: 300,000 events/s from two threads at once (2 × 150,000): none dropped",
            format!(
                "{} dropped, {} events/s delivered",
                number(dropped, 0),
                number(field(two, "delivered_per_second"), 0)
            ),
            dropped == Some(0.0),
        ));
        let two_threads: Vec<(&str, Option<f64>)> = ["sync", "async"]
            .into_iter()
            .map(|variant| (variant, self.added("two_threads", variant, "mcp_tool")))
            .collect();
        targets.push(Target::new(
            "no worker: `#[mcp_tool]` adds at most 100 ns per call with two threads contending",
            format!(
                "added ns: {}",
                two_threads
                    .iter()
                    .map(|(variant, ns)| format!("{variant} {}", number(*ns, 1)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            two_threads
                .iter()
                .all(|(_, ns)| ns.is_some_and(|ns| ns <= 100.0)),
        ));
        let slot = self.pipeline("/memory/slot_bytes");
        targets.push(Target::new(
            "a queued event takes at most 256 bytes",
            format!("{} bytes", number(slot, 1)),
            slot.is_some_and(|bytes| bytes <= 256.0),
        ));
        targets
    }
}

/// One of the issue's targets, as measured.
struct Target {
    name: &'static str,
    figures: String,
    met: bool,
}

impl Target {
    fn new(name: &'static str, figures: String, met: bool) -> Target {
        Target { name, figures, met }
    }
}

/// Criterion's median per benchmark (`new/estimates.json`), named by `new/benchmark.json`.
fn criterion_medians(folder: &Path) -> Result<Vec<Median>> {
    let mut medians = Vec::new();
    let mut pending = vec![folder.to_owned()];
    while let Some(dir) = pending.pop() {
        let entries = fs::read_dir(&dir).map_err(|error| format!("{dir:?}: {error}"))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if !(path.ends_with("new/benchmark.json")) {
                continue;
            }
            let read = |path: &Path| -> Option<Value> {
                serde_json::from_str(&fs::read_to_string(path).ok()?).ok()
            };
            let (Some(id), Some(estimates)) =
                (read(&path), read(&path.with_file_name("estimates.json")))
            else {
                continue;
            };
            let (Some(group), Some(function), Some(median)) = (
                id["group_id"].as_str(),
                id["function_id"].as_str(),
                estimates
                    .pointer("/median/point_estimate")
                    .and_then(Value::as_f64),
            ) else {
                continue;
            };
            if let Some((variant, subject)) = function.split_once('/') {
                medians.push(Median {
                    group: group.into(),
                    variant: variant.into(),
                    subject: subject.into(),
                    ns: median,
                });
            }
        }
    }
    if medians.is_empty() {
        return Err(format!("no criterion results under {folder:?}"));
    }
    Ok(medians)
}

/// A figure with `decimals` decimals and thousands separators, or "n/a".
fn number(value: Option<f64>, decimals: usize) -> String {
    let Some(value) = value.filter(|v| v.is_finite()) else {
        return "n/a".to_owned();
    };
    let text = format!("{value:.decimals$}");
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let (sign, digits) = whole
        .strip_prefix('-')
        .map_or(("", whole), |digits| ("-", digits));
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if fraction.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{fraction}")
    }
}

fn render(machine: &Machine, results: &Results) -> String {
    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(w, "# Benchmarks\n");
    let _ = writeln!(
        w,
        "Written by `cargo xtask bench`, which runs every benchmark in one run (`cargo bench {}`) \
         and reads the figures back. Every figure below comes from that one run: compare \
         figures within this page, not across runs or machines.\n",
        BENCHES.map(|bench| format!("--bench {bench}")).join(" ")
    );
    let _ = writeln!(w, "| machine | |\n| --- | --- |");
    let _ = writeln!(w, "| date | {} |", machine.date);
    let _ = writeln!(w, "| commit | {} |", machine.commit);
    let _ = writeln!(w, "| CPU | {} |", machine.cpu);
    let _ = writeln!(w, "| cores | {} |", machine.cores);
    let _ = writeln!(w, "| memory | {} |", machine.memory);
    let _ = writeln!(w, "| kernel | Linux {} |", machine.kernel);
    let _ = writeln!(w, "| compiler | {} |\n", machine.rustc);

    let _ = writeln!(w, "## Goals\n");
    let _ = writeln!(w, "| goal | this run | met |\n| --- | --- | --- |");
    for target in results.targets() {
        let verdict = if target.met { "yes" } else { "**no**" };
        let _ = writeln!(w, "| {} | {} | {verdict} |", target.name, target.figures);
    }

    render_live(w, results);

    let _ = writeln!(
        w,
        "\n## Hot path, no worker: ns per call (criterion median)\n\nThe queue emptied \
         between runs of calls, no worker running (see how each figure is measured).\n"
    );
    let header: Vec<&str> = COLUMNS.iter().map(|(_, _, label)| *label).collect();
    let _ = writeln!(
        w,
        "| | {} |\n| --- |{}",
        header.join(" | "),
        " ---: |".repeat(COLUMNS.len())
    );
    for (subject, label) in SUBJECTS {
        let cells: Vec<String> = COLUMNS
            .iter()
            .map(|(group, variant, _)| number(results.ns(group, variant, subject), 2))
            .collect();
        let _ = writeln!(w, "| {label} | {} |", cells.join(" | "));
    }

    let _ = writeln!(
        w,
        "\n## Hot path, no worker: added over the baseline, and ratios\n\nns added per call over the \
         uninstrumented function in the same column; for the peers, in brackets, how many times \
         `#[mcp_tool]`'s added cost theirs is.\n"
    );
    let _ = writeln!(
        w,
        "| | {} |\n| --- |{}",
        header.join(" | "),
        " ---: |".repeat(COLUMNS.len())
    );
    for (subject, label) in &SUBJECTS[1..] {
        let cells: Vec<String> = COLUMNS
            .iter()
            .map(|(group, variant, _)| {
                let added = results.added(group, variant, subject);
                let ours = results.added(group, variant, "mcp_tool");
                match (*subject, added, ours) {
                    ("mcp_tool", added, _) => number(added, 1),
                    (_, Some(added), Some(ours)) => {
                        format!(
                            "{} ({}×)",
                            number(Some(added), 1),
                            number(Some(added / ours), 1)
                        )
                    }
                    (_, added, _) => number(added, 1),
                }
            })
            .collect();
        let _ = writeln!(w, "| {label} | {} |", cells.join(" | "));
    }
    let per_call_ratio: Vec<String> = COLUMNS
        .iter()
        .map(|(group, variant, _)| {
            let ratio = results
                .ns(group, variant, "mcp_tool")
                .zip(results.ns(group, variant, "baseline"))
                .map(|(ours, baseline)| ours / baseline);
            format!("{}×", number(ratio, 1))
        })
        .collect();
    let _ = writeln!(
        w,
        "| `#[mcp_tool]` ÷ baseline, whole call | {} |",
        per_call_ratio.join(" | ")
    );

    render_rmcp(w, results);
    render_sustained(w, results);

    let p = |path: &str, decimals| number(results.pipeline(path), decimals);
    let _ = writeln!(
        w,
        "\n## Pipeline: emit to acknowledged, the emitter waiting while the queue is nearly full \
         (median of {} samples)\n",
        p("/gzip/samples", 0)
    );
    let _ = writeln!(w, "| | gzip | no compression |\n| --- | ---: | ---: |");
    for (label, key, decimals) in [
        ("delivered events/s", "events_per_second", 0),
        (
            "worker CPU ms per million events",
            "worker_cpu_ms_per_million",
            0,
        ),
        ("worker cores busy (CPU time ÷ elapsed)", "worker_cores", 2),
        (
            "worker capacity (events per worker CPU second)",
            "worker_capacity_events_per_second",
            0,
        ),
        (
            "receiver cores busy (the loopback Events API)",
            "receiver_cores",
            2,
        ),
        ("bytes on the wire per event", "wire_bytes_per_event", 1),
    ] {
        let _ = writeln!(
            w,
            "| {label} | {} | {} |",
            p(&format!("/gzip/{key}"), decimals),
            p(&format!("/identity/{key}"), decimals)
        );
    }

    let _ = writeln!(w, "\n## Memory per queued event\n");
    let _ = writeln!(w, "| | bytes |\n| --- | ---: |");
    let _ = writeln!(
        w,
        "| a queue slot (preallocated: every queued event) | {} |",
        p("/memory/slot_bytes", 1)
    );
    let _ = writeln!(
        w,
        "| besides, a failed call's event with a {}-byte error text | {} |",
        results
            .pipeline
            .pointer("/memory/error_text")
            .and_then(Value::as_str)
            .map_or(0, str::len),
        p("/memory/error_event_extra_bytes", 1)
    );

    let _ = writeln!(
        w,
        "\n## Endpoint up, hanging or down: ns per sync call (median)\n"
    );
    let _ = writeln!(w, "| up | hanging | down |\n| ---: | ---: | ---: |");
    let outage = |key: &str| number(results.outage[key].as_f64(), 2);
    let _ = writeln!(
        w,
        "| {} | {} | {} |",
        outage("up"),
        outage("hanging"),
        outage("down")
    );

    render_spool(w, results);

    w.push_str(NOTES);
    md
}

/// The hot path with the worker live: per subject and variant, ns per call, the twin's, the
/// added ns (median, p10, p90 over rounds) and how ours compares.
fn render_live(w: &mut String, results: &Results) {
    let live = &results.hot_path_live;
    let _ = writeln!(
        w,
        "\n## Hot path, worker live: ns per call (rounds of {} calls, median of {})\n",
        number(live["round_calls"].as_f64(), 0),
        number(live["rounds"].as_f64(), 0)
    );
    let _ = writeln!(
        w,
        "The worker shipping to the loopback Events API meanwhile; each round against a round of \
         the uninstrumented twin. Added: (round - twin's round) ÷ calls, median and 10th / 90th \
         percentiles over rounds; ours ÷ theirs: `#[mcp_tool]`'s added median over the peer's. \
         Events dropped meanwhile: {}; sent: {}.\n",
        number(live["dropped"].as_f64(), 0),
        number(live["sent"].as_f64(), 0)
    );
    let _ = writeln!(
        w,
        "| | ns per call | twin | added | p10 | p90 | ours ÷ theirs |\n| --- | ---: | ---: | \
         ---: | ---: | ---: | ---: |"
    );
    for variant in ["sync", "async"] {
        for (subject, label) in LIVE_SUBJECTS {
            let name = format!("{variant}/{subject}");
            let f = |key: &str, decimals| number(results.live(&name, key), decimals);
            let ratio = if subject == "mcp_tool" {
                String::new()
            } else {
                let ours = results.live(&format!("{variant}/mcp_tool"), "added_ns");
                let theirs = results.live(&name, "added_ns");
                format!("{}×", number(ours.zip(theirs).map(|(o, t)| o / t), 2))
            };
            let _ = writeln!(
                w,
                "| {label}, {variant} | {} | {} | {} | {} | {} | {ratio} |",
                f("ns_per_call", 1),
                f("twin_ns_per_call", 1),
                f("added_ns", 1),
                f("added_ns_p10", 1),
                f("added_ns_p90", 1)
            );
        }
    }
}

/// A whole `tools/call` through rmcp, the worker live, and a plain sync call measured beside it.
fn render_rmcp(w: &mut String, results: &Results) {
    let _ = writeln!(
        w,
        "\n## Through rmcp, worker live: ns per `tools/call` (median of {} rounds)\n\nA whole \
         request on rmcp's server side (routing, the tool, the answer), recorded three ways, \
         each round against a round of the unrecorded request; the sync `#[mcp_tool]` call of \
         the hot path measured the same way in the same run, for comparison. Events dropped \
         meanwhile: {}.\n",
        number(results.rmcp["rounds"].as_f64(), 0),
        number(results.rmcp["dropped"].as_f64(), 0)
    );
    let _ = writeln!(
        w,
        "| | ns per request | unrecorded | added | p10 | p90 |\n| --- | ---: | ---: | ---: | \
         ---: | ---: |"
    );
    let rows = RMCP_SUBJECTS
        .iter()
        .copied()
        .chain([("sync_call", "a sync `#[mcp_tool]` call (not a request)")]);
    for (subject, label) in rows {
        let f = |key: &str| number(results.rmcp(subject, key), 1);
        let _ = writeln!(
            w,
            "| {label} | {} | {} | {} | {} | {} |",
            f("ns_per_call"),
            f("twin_ns_per_call"),
            f("added_ns"),
            f("added_ns_p10"),
            f("added_ns_p90")
        );
    }
}

/// Sustained delivery at fixed rates: one row per configuration, its median run.
fn render_sustained(w: &mut String, results: &Results) {
    let sustained = &results.sustained;
    let _ = writeln!(
        w,
        "\n## Sustained delivery at a fixed rate (median of {} runs)\n\n{} events per run, the \
         default configuration, recorded at a fixed rate with nothing holding the handlers back \
         (what the queue cannot take is dropped); delivered: counted by the receiver; events/s: \
         delivered ÷ the time from the first event to `flush()` returning; requests/s: the \
         requests the receiver answered over that time (the worker sends at most 50 a second by \
         default); cores: CPU time ÷ that time.\n",
        number(sustained["repeats"].as_f64(), 0),
        number(sustained["events"].as_f64(), 0)
    );
    let _ = writeln!(
        w,
        "| threads × events/s | dropped | delivered | delivered % | delivered events/s | \
         requests/s | rows per request | worker cores | receiver cores |\n| --- | ---: | ---: | \
         ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for run in sustained["configurations"].as_array().into_iter().flatten() {
        let f = |key: &str, decimals| number(run[key].as_f64(), decimals);
        let _ = writeln!(
            w,
            "| {} × {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            f("threads", 0),
            f("rate_per_thread", 0),
            f("dropped", 0),
            f("delivered", 0),
            f("delivered_percent", 1),
            f("delivered_per_second", 0),
            f("requests_per_second", 1),
            f("rows_per_request", 0),
            f("worker_cores", 2),
            f("receiver_cores", 2)
        );
    }
}

/// The disk spool's section: spooling and replay rates against live delivery in the same run,
/// bytes on disk per event, and how quickly a shutdown secures what waits.
fn render_spool(w: &mut String, results: &Results) {
    let s = |path: &str, decimals| number(results.spool(path), decimals);
    let _ = writeln!(
        w,
        "\n## Disk spool: spooling, replay and shutdown (median of {} samples)\n",
        s("/samples", 0)
    );
    let _ = writeln!(
        w,
        "{} events per sample, recorded as fast as the queue takes them, with the worker running \
         and the spool in a directory on {}.\n",
        s("/events", 0),
        results.spool["file_system"]
            .as_str()
            .unwrap_or("an unknown file system")
    );
    let _ = writeln!(
        w,
        "| | events/s | ÷ live delivery | worker CPU ms per million events |\n| --- | ---: | \
         ---: | ---: |"
    );
    let _ = writeln!(
        w,
        "| live delivery, endpoint up (the baseline; the spool on, empty) | {} | 1.00 | {} |",
        s("/live/events_per_second", 0),
        s("/live/worker_cpu_ms_per_million", 0)
    );
    let _ = writeln!(
        w,
        "| spooling, endpoint down (first event to all counted spooled, `shutdown()` \
         included) | {} | {} | {} |",
        s("/spooling/events_per_second", 0),
        s("/spooling/ratio_to_live", 2),
        s("/spooling/worker_cpu_ms_per_million", 0)
    );
    let _ = writeln!(
        w,
        "| replay by the next run, endpoint up (`try_init` to all replayed, spool empty) | {} \
         | {} | {} |",
        s("/replay/events_per_second", 0),
        s("/replay/ratio_to_live", 2),
        s("/replay/worker_cpu_ms_per_million", 0)
    );

    let _ = writeln!(w, "\n| on disk | bytes per event |\n| --- | ---: |");
    let _ = writeln!(
        w,
        "| spooled files (gzip'd NDJSON: the request bodies; {} files) | {} |",
        s("/disk/files", 0),
        s("/disk/gzip_bytes_per_event", 1)
    );
    let _ = writeln!(
        w,
        "| the same, decompressed | {} |",
        s("/disk/ndjson_bytes_per_event", 1)
    );

    let _ = writeln!(
        w,
        "\n| `shutdown()` (timeout {} ms) | ms |\n| --- | ---: |",
        s("/shutdown_timeout_ms", 0)
    );
    let _ = writeln!(
        w,
        "| endpoint hanging, {} events waiting: until `stats().spooled` counts them | {} |",
        s("/shutdown_events", 0),
        s("/shutdown/counted_ms", 1)
    );
    let _ = writeln!(
        w,
        "| ... until they, and the copy of the batch held unanswered, are on disk | {} |",
        s("/shutdown/on_disk_ms", 1)
    );
    let _ = writeln!(
        w,
        "| ... until `shutdown()` returns (it goes on delivering until its deadline) | {} |",
        s("/shutdown/shutdown_ms", 0)
    );
    let _ = writeln!(
        w,
        "| endpoint down, after spooling: until `shutdown()` returns (the same) | {} |",
        s("/spooling/shutdown_ms", 0)
    );
}

/// How each figure is measured, and what limits it: the same on every run.
const NOTES: &str = include_str!("notes.md");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_thousands_separators_and_fixed_decimals() {
        assert_eq!(number(Some(579_155.248), 0), "579,155");
        assert_eq!(number(Some(1_234.5), 2), "1,234.50");
        assert_eq!(number(Some(-1_000.0), 1), "-1,000.0");
        assert_eq!(number(Some(38.52), 1), "38.5");
        assert_eq!(number(Some(f64::NAN), 1), "n/a");
        assert_eq!(number(None, 1), "n/a");
    }

    #[test]
    fn the_spool_section_shows_every_figure_of_spool_json() {
        // The shape `benches/spool.rs` writes.
        let spool = serde_json::json!({
            "samples": 5, "events": 200000, "shutdown_events": 10000,
            "shutdown_timeout_ms": 1500.0, "file_system": "ext4 (/dev/vda)",
            "live": { "events_per_second": 400000.0, "worker_cpu_ms_per_million": 1000.0 },
            "spooling": { "events_per_second": 300000.0, "ratio_to_live": 0.75,
                          "worker_cpu_ms_per_million": 1200.0, "shutdown_ms": 1300.0 },
            "replay": { "events_per_second": 350000.0, "ratio_to_live": 0.875,
                        "worker_cpu_ms_per_million": 300.0, "init_ms": 20.0 },
            "disk": { "gzip_bytes_per_event": 14.2, "ndjson_bytes_per_event": 330.5, "files": 17.0 },
            "shutdown": { "counted_ms": 12.5, "on_disk_ms": 14.0, "shutdown_ms": 1300.0,
                          "queued_at_shutdown": 0.0 },
        });
        let results = Results {
            hot_path: Vec::new(),
            hot_path_live: Value::Null,
            rmcp: Value::Null,
            sustained: Value::Null,
            pipeline: Value::Null,
            outage: Value::Null,
            spool,
        };
        let mut md = String::new();
        render_spool(&mut md, &results);
        assert!(!md.contains("n/a"), "{md}");
        for figure in [
            "300,000 | 0.75 | 1,200",
            "350,000 | 0.88 | 300",
            "14.2",
            "330.5",
            "12.5 |",
            "14.0 |",
        ] {
            assert!(md.contains(figure), "{figure} in {md}");
        }
        assert!(md.contains("ext4 (/dev/vda)"), "{md}");
    }

    /// The shapes `benches/hot_path_live.rs`, `rmcp_server.rs` and `sustained.rs` write.
    fn live_results(sync_added: f64, dropped_at_600k: u64) -> Results {
        let subject = |added: f64| {
            serde_json::json!({ "rounds": 2000, "added_ns": added, "added_ns_p10": added - 5.0,
                                "added_ns_p90": added + 9.0, "ns_per_call": added + 1.5,
                                "twin_ns_per_call": 1.5, "rounds_with_drops": 0 })
        };
        let run = |threads: u64, rate: u64, dropped: u64, per_second: f64| {
            serde_json::json!({ "threads": threads, "rate_per_thread": rate, "emitted": 1000000,
                                "dropped": dropped, "delivered": 1000000 - dropped,
                                "delivered_percent": 100.0 - dropped as f64 / 1e4,
                                "delivered_per_second": per_second, "worker_cores": 0.4,
                                "requests_per_second": 45.5, "rows_per_request": 11_627.0,
                                "receiver_cores": 0.12 })
        };
        Results {
            hot_path: Vec::new(),
            hot_path_live: serde_json::json!({
                "round_calls": 500, "rounds": 2000, "dropped": 0, "sent": 12600000,
                "subjects": {
                    "sync/mcp_tool": subject(sync_added), "async/mcp_tool": subject(sync_added + 8.0),
                    "sync/tracing": subject(150.0), "async/tracing": subject(200.0),
                    "sync/fastrace": subject(100.0), "async/fastrace": subject(120.0),
                },
            }),
            rmcp: serde_json::json!({
                "rounds": 1500, "dropped": 0,
                "subjects": {
                    "mcp_tool": subject(400.0), "wrapper": subject(sync_added + 3.0),
                    "wrapper_and_mcp_tool": subject(500.0), "sync_call": subject(sync_added),
                },
            }),
            sustained: serde_json::json!({
                "events": 1000000, "repeats": 3,
                "configurations": [
                    run(1, 600_000, dropped_at_600k, 590_000.0),
                    run(2, 150_000, 0, 299_000.0),
                    run(2, 300_000, 56_804, 546_430.0),
                ],
            }),
            pipeline: Value::Null,
            outage: Value::Null,
            spool: Value::Null,
        }
    }

    #[test]
    fn goals_are_met_or_missed_by_the_live_and_sustained_figures() {
        let verdicts = |results: &Results| -> Vec<(String, bool)> {
            results
                .targets()
                .into_iter()
                .filter(|target| target.name.starts_with('G'))
                .map(|target| (target.figures, target.met))
                .collect()
        };
        let met = verdicts(&live_results(20.0, 0));
        assert_eq!(met.len(), 6, "{met:?}");
        assert!(met.iter().all(|(_, met)| *met), "{met:?}");
        assert!(
            met[0].0.starts_with("20.0 ns (p10 15.0, p90 29.0)"),
            "{met:?}"
        );
        assert!(met[1].0.contains("sync 0.20, async 0.23"), "{met:?}");

        // 30 ns: over 25 ns; the async 38 ns over 0.3× fastrace's 120 ns, while tracing's sync
        // 150 ns is exactly 0.2× (met); and 600,000 events/s dropping events.
        let missed = verdicts(&live_results(30.0, 121_361));
        let met: Vec<bool> = missed.iter().map(|(_, met)| *met).collect();
        assert_eq!(met, [false, false, true, true, false, true], "{missed:?}");
        assert!(
            missed[4].0.starts_with("121,361 dropped, 590,000 events/s"),
            "{missed:?}"
        );
    }

    #[test]
    fn the_live_rmcp_and_sustained_sections_show_every_figure() {
        let results = live_results(20.0, 0);
        let mut md = String::new();
        render_live(&mut md, &results);
        render_rmcp(&mut md, &results);
        render_sustained(&mut md, &results);
        assert!(!md.contains("n/a"), "{md}");
        for figure in [
            "| `#[mcp_tool]`, sync | 21.5 | 1.5 | 20.0 | 15.0 | 29.0 |  |",
            "fastrace `#[trace]` + collector + discarding reporter, async | 121.5 | 1.5 | 120.0 \
             | 115.0 | 129.0 | 0.23× |",
            "| `instrument!(server)` | 24.5 | 1.5 | 23.0 |",
            "| 2 × 300,000 | 56,804 | 943,196 | 94.3 | 546,430 | 45.5 | 11,627 | 0.40 | 0.12 |",
        ] {
            assert!(md.contains(figure), "{figure} in {md}");
        }
    }

    #[test]
    fn criterion_medians_are_read_by_benchmark_id() {
        let folder = env::temp_dir().join(format!("xtask-test-{}", std::process::id()));
        let write = |run: &str, median: f64| {
            let dir = folder.join("one_thread/sync_mcp_tool").join(run);
            fs::create_dir_all(&dir).unwrap();
            let id = r#"{"group_id":"one_thread","function_id":"sync/mcp_tool"}"#;
            fs::write(dir.join("benchmark.json"), id).unwrap();
            let estimates = format!(r#"{{"median":{{"point_estimate":{median}}}}}"#);
            fs::write(dir.join("estimates.json"), estimates).unwrap();
        };
        write("new", 38.5);
        // criterion's `base` copy of an earlier run is not this run's figure.
        write("base", 99.0);

        let medians = criterion_medians(&folder).unwrap();
        fs::remove_dir_all(&folder).unwrap();
        assert_eq!(
            medians,
            [Median {
                group: "one_thread".into(),
                variant: "sync".into(),
                subject: "mcp_tool".into(),
                ns: 38.5
            }]
        );
    }
}
