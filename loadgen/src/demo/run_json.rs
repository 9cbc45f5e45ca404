//! The demo's `run.json`: the run's description as the report reads it
//! (`results/README.md`, schema 1), plus its plan, versions and layout.
//!
//! One machine holds every process, so the host folder holds both the servers' and the
//! load generator's files, and its role is left for the report to guess from them.

use crate::instances::Layout;
use crate::plan::Phase;
use crate::run::{self, Outcome};
use redpacket_formats::run::Thresholds;
use redpacket_formats::{HostEntry, PhasePlan, RunMeta, SCHEMA};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};

/// What the demo knows of its run once it is over.
pub struct RunFacts<'a> {
    pub users: u32,
    pub run_id: &'a str,
    pub host: &'a str,
    /// Unix seconds when the demo began.
    pub started: f64,
    pub plan: &'a [Phase],
    pub layout: &'a Layout,
    /// Each server's command line.
    pub server_argvs: Vec<&'a [String]>,
    /// Each server's exit code (`None`: killed).
    pub server_codes: &'a [Option<i32>],
    pub outcome: &'a Outcome,
    /// The demo's `--max-p99-ms` and `--max-error-rate`, which the report judges the
    /// phases by.
    pub thresholds: Thresholds,
}

/// Writes `run_dir/run.json`.
pub fn write(run_dir: &Path, f: &RunFacts) -> Result<(), String> {
    let text = serde_json::to_string_pretty(&meta(f)).map_err(|e| e.to_string())?;
    std::fs::write(run_dir.join("run.json"), text + "\n")
        .map_err(|e| format!("cannot write run.json: {e}"))
}

fn meta(f: &RunFacts) -> RunMeta {
    let loadgen_cmd = command_line(std::env::args());
    let server_cmds = f
        .server_argvs
        .iter()
        .map(|argv| json!(command_line(argv.iter())));
    let (users, instances, procs) = (f.users, f.layout.instances, f.layout.procs);
    RunMeta {
        schema: SCHEMA,
        run_id: f.run_id.to_string(),
        started: f.started,
        ended: run::unix_f64(),
        description: if instances > 1 {
            format!(
                "demo: one machine, loopback, {users} users, {instances} server instances and {procs} load-generator processes"
            )
        } else {
            format!(
                "demo: one machine, loopback, {users} users, server and load generator in separate processes"
            )
        },
        phases: f
            .outcome
            .boundaries
            .iter()
            .map(|(n, q, s, e)| PhasePlan {
                name: n.clone(),
                target_qps: *q,
                start: *s,
                end: *e,
                thresholds: Default::default(),
            })
            .collect(),
        hosts: vec![HostEntry::Name(f.host.to_string())],
        commands: std::iter::once(json!(loadgen_cmd))
            .chain(server_cmds)
            .collect(),
        git_commit: git_commit().unwrap_or_default(),
        // One machine: a process that fails shows in its own files.
        failed_hosts: Default::default(),
        thresholds: f.thresholds,
        extra: extra(f)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    }
}

/// The fields beyond schema 1: the plan, versions, exit codes and the layout.
fn extra(f: &RunFacts) -> [(&'static str, Value); 7] {
    [
        ("users", json!(format!("0..{}", f.users))),
        ("plan", json!(f.plan)),
        (
            "versions",
            json!({"redpacket-loadgen": env!("CARGO_PKG_VERSION"), "redpacket": env!("CARGO_PKG_VERSION")}),
        ),
        (
            "server_exit_code",
            json!(f
                .server_codes
                .iter()
                .copied()
                .find(|c| *c != Some(0))
                .unwrap_or(Some(0))),
        ),
        ("server_instances", json!(f.layout.instances)),
        ("loadgen_procs", json!(f.layout.procs)),
        (
            "source_addrs",
            json!(f
                .layout
                .source_addrs
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()),
        ),
    ]
}

/// A command line as a shell would take it back.
fn command_line<S: AsRef<str>>(words: impl Iterator<Item = S>) -> String {
    words
        .map(|w| shell_word(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Quotes a command-line word for a shell when it needs it.
pub fn shell_word(w: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c);
    if !w.is_empty() && w.chars().all(plain) {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

/// The commit of the working directory's repository, else of the one this was built in.
fn git_commit() -> Option<String> {
    let at = |dir: &str| {
        let out = Command::new("git")
            .args(["-C", dir, "rev-parse", "HEAD"])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    at(".").or_else(|| at(env!("CARGO_MANIFEST_DIR")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_only_when_needed() {
        assert_eq!(shell_word("--users"), "--users");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word(""), "''");
        assert_eq!(command_line(["x", "a b"].iter()), "x 'a b'");
    }
}
