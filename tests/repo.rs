//! The repository holds sources and the committed example runs, never a run's output: a
//! run folder under `results/` (other than `results/examples/`), the old `loadgen-out/`,
//! `target/`, a report made in the root, the files a demo or `run` writes (their names
//! are in `results/README.md`), or Python's byte code from the fleet's unit tests. The
//! first test reads `git ls-files`; the second asks git whether `.gitignore` ignores a
//! path of each such kind, so a fresh run cannot be added by `git add -A`.
//!
//! Without git, or outside a git checkout of this workspace, both follow the kit's prereq
//! rule.

use redpacket_testkit::prereq;
use std::path::Path;
use std::process::Command;

/// The files a run writes into its folder (`results/README.md`): tracked only under
/// `results/examples/`.
const RUN_FILES: [&str; 15] = [
    "run.json",
    "loadgen.jsonl",
    "summary.json",
    "histograms.json",
    "net.jsonl",
    "tuning.txt",
    "server.jsonl",
    "server-summary.json",
    "starts.jsonl",
    "footprint.jsonl",
    "server.log",
    "report.html",
    "report.md",
    "report.json",
    "live.jsonl",
];

/// `git -C <workspace root> ARGS`, or why git cannot answer here.
fn git(args: &[&str]) -> Result<std::process::Output, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))
}

/// The files git tracks in the workspace, relative to its root; or why there are none
/// to check (no git, not a checkout of this workspace).
fn tracked() -> Result<Vec<String>, String> {
    let out = git(&["ls-files", "-z"])?;
    if !out.status.success() {
        return Err(format!(
            "not a git checkout: git ls-files: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let files: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split('\0')
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect();
    if !files.iter().any(|f| f == "Cargo.toml") {
        return Err("git tracks no Cargo.toml here: not a checkout of this workspace".into());
    }
    Ok(files)
}

/// Why `path` (tracked) is a run's output, or `None` when it may be tracked.
fn run_output(path: &str) -> Option<&'static str> {
    let parts: Vec<&str> = path.split('/').collect();
    let (dirs, name) = parts.split_at(parts.len() - 1);
    let name = name[0];
    if dirs.first() == Some(&"target") {
        return Some("the build's target/");
    }
    if dirs.contains(&"loadgen-out") {
        return Some("a load generator's output folder (loadgen-out/)");
    }
    if dirs.contains(&"__pycache__") || name.ends_with(".pyc") {
        return Some("Python byte code");
    }
    if dirs.first() == Some(&"results") {
        return match (dirs.get(1), name) {
            (Some(&"examples"), _) => None,
            (None, "README.md") => None,
            (None, _) => Some("a file in results/ beside the runs"),
            (Some(_), _) => Some("a run folder in results/ (only results/examples/ is kept)"),
        };
    }
    if dirs.is_empty() && (name.starts_with("report.") || name == "charts") {
        return Some("a report made in the repository's root");
    }
    if dirs.first() == Some(&"charts") {
        return Some("a report's charts made in the repository's root");
    }
    let life = name
        .strip_prefix("server-summary.life-")
        .and_then(|n| n.strip_suffix(".json"))
        .is_some_and(|n| n.parse::<u32>().is_ok());
    if RUN_FILES.contains(&name) || life {
        return Some("a file a run writes, outside results/examples/");
    }
    None
}

#[test]
fn no_run_output_is_tracked() {
    let Some(files) = prereq::require("no_run_output_is_tracked", tracked()) else {
        return;
    };
    let bad: Vec<String> = files
        .iter()
        .filter_map(|f| run_output(f).map(|why| format!("{f}: {why}")))
        .collect();
    assert!(
        bad.is_empty(),
        "a run's output is tracked (remove it with `git rm -r --cached PATH`):\n{}",
        bad.join("\n")
    );
}

#[test]
fn gitignore_covers_what_runs_write() {
    let test = "gitignore_covers_what_runs_write";
    if prereq::require(test, tracked()).is_none() {
        return;
    }
    // One path of each kind a run, a report, a build or a test writes here.
    let written = [
        "target/debug/redpacket-server",
        "loadgen-out/summary.json",
        "results/20261126-134356-demo/run.json",
        "results/20261126-134356-run/vm/loadgen.jsonl",
        "results/20261126-134356-demo/charts/qps.svg",
        "report.html",
        "report.md",
        "charts/qps.svg",
        "ansible/tests/__pycache__/test_unpack.cpython-312.pyc",
    ];
    // What must stay addable: the examples and the folder's README.
    let kept = [
        "results/README.md",
        "results/examples/20261126-134356-demo/run.json",
    ];
    let ignored = |path: &str| -> bool {
        let out =
            git(&["check-ignore", "--no-index", "-q", path]).unwrap_or_else(|e| panic!("{e}"));
        match out.status.code() {
            Some(0) => true,
            Some(1) => false,
            _ => panic!(
                "git check-ignore {path}: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    };
    let not_ignored: Vec<&str> = written.into_iter().filter(|p| !ignored(p)).collect();
    assert!(
        not_ignored.is_empty(),
        ".gitignore does not cover {not_ignored:?}"
    );
    let wrongly: Vec<&str> = kept.into_iter().filter(|p| ignored(p)).collect();
    assert!(wrongly.is_empty(), ".gitignore hides {wrongly:?}");
}

#[test]
fn run_outputs_are_told_apart_from_sources() {
    for ok in [
        "Cargo.toml",
        "results/README.md",
        "results/examples/20261126-134356-demo/vm/summary.json",
        "crates/sys/fixtures/proc/net_dev.txt",
        "loadgen/src/output.rs",
    ] {
        assert_eq!(run_output(ok), None, "{ok}");
    }
    for bad in [
        "target/debug/redpacket-server",
        "loadgen-out/summary.json",
        "results/20261203-000000-demo/run.json",
        "results/notes.txt",
        "report.html",
        "charts/qps.svg",
        "vm/server-summary.life-2.json",
        "some/where/net.jsonl",
        "some/where/live.jsonl",
        "some/where/report.json",
        "ansible/tests/__pycache__/x.pyc",
    ] {
        assert!(run_output(bad).is_some(), "{bad}");
    }
}
