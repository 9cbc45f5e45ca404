//! Reading a run folder, tolerating the ways real runs break.
//!
//! A host can die mid-run, a file can be cut mid-line by a full disk or a kill, a copy
//! can be missing. None of that should hide what was collected: every such finding goes
//! into [`Run::problems`] in words, and the report prints them first. Only a folder that
//! holds no run at all is an error.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use serde::de::DeserializeOwned;

use crate::formats::{
    self, histograms, HistogramsFile, LoadgenLine, LoadgenSummary, NetLine, RunMeta, ServerLine,
    ServerSummary, SCHEMA,
};
use crate::sysmon::tuning;

/// What a host did in the run, judged from its `run.json` entry or its files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Server,
    Loadgen,
    /// Neither log is there; only net/tuning files, or nothing.
    Unknown,
}

/// One server process of a host: the host's only one, or one of its instances
/// (`instance-I/` folders, from `redpacket-server --instance I`).
#[derive(Debug, Default)]
pub struct ServerLog {
    /// `None` for a server writing straight into the host folder.
    pub instance: Option<u32>,
    pub lines: Vec<ServerLine>,
    /// The final account (`server-summary.json`).
    pub summary: Option<ServerSummary>,
}

impl ServerLog {
    /// `host` or `host/instance-I`: how tables and problems name this server.
    pub fn label(&self, host: &str) -> String {
        match self.instance {
            Some(i) => format!("{host}/{}", formats::instance_dir(i)),
            None => host.to_string(),
        }
    }
}

#[derive(Debug, Default)]
pub struct HostData {
    pub name: String,
    pub address: String,
    /// The host's server processes: one, or one per instance, in instance order.
    pub servers: Vec<ServerLog>,
    pub loadgen: Vec<LoadgenLine>,
    pub net: Vec<NetLine>,
    pub summary: Option<LoadgenSummary>,
    /// The load generator's whole-phase latency histograms by phase name, decoded from
    /// `histograms.json`; `None` when the file is absent or unusable.
    pub histograms: Option<BTreeMap<String, Histogram<u64>>>,
    pub tuning: Vec<(String, String)>,
    role_hint: String,
}

impl HostData {
    pub fn role(&self) -> Role {
        match self.role_hint.as_str() {
            "server" => Role::Server,
            "loadgen" | "client" => Role::Loadgen,
            _ if self.has_server() => Role::Server,
            _ if !self.loadgen.is_empty() || self.summary.is_some() => Role::Loadgen,
            _ => Role::Unknown,
        }
    }

    /// Whether any server of this host left per-second lines.
    pub fn has_server(&self) -> bool {
        self.servers.iter().any(|s| !s.lines.is_empty())
    }

    /// Whether the host runs its servers as instances (`instance-I/` folders).
    pub fn has_instances(&self) -> bool {
        self.servers.iter().any(|s| s.instance.is_some())
    }
}

#[derive(Debug)]
pub struct Run {
    pub dir: PathBuf,
    pub id: String,
    pub meta: RunMeta,
    pub has_meta: bool,
    pub hosts: Vec<HostData>,
    /// What is missing or damaged, one sentence each.
    pub problems: Vec<String>,
}

/// The folder is not a run: nothing to report on.
#[derive(Debug)]
pub struct NotARun(pub String);

impl fmt::Display for NotARun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotARun {}

const HOST_FILES: &[&str] = &[
    "server.jsonl",
    "server-summary.json",
    "loadgen.jsonl",
    "net.jsonl",
    "summary.json",
    histograms::FILE,
    "tuning.txt",
];

/// A host folder's server instances: `(number, folder)`, in instance order.
fn instance_dirs(dir: &Path) -> Vec<(u32, PathBuf)> {
    let mut v: Vec<(u32, PathBuf)> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    Some((formats::parse_instance_dir(&name)?, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Whether `dir` holds any file of a host (or of one of its server instances).
fn is_host_dir(dir: &Path) -> bool {
    HOST_FILES.iter().any(|f| dir.join(f).exists())
        || instance_dirs(dir)
            .iter()
            .any(|(_, d)| HOST_FILES.iter().any(|f| d.join(f).exists()))
}

/// Reads a run folder. Fails only when `dir` is not a run (no `run.json` and no host
/// folder with any known file).
pub fn load(dir: &Path) -> Result<Run, NotARun> {
    if !dir.is_dir() {
        return Err(NotARun(format!(
            "{}: not a run folder (no such directory)",
            dir.display()
        )));
    }
    let mut problems = Vec::new();
    let meta_path = dir.join("run.json");
    let mut has_meta = false;
    let meta = match fs::read_to_string(&meta_path) {
        Ok(text) => match serde_json::from_str::<RunMeta>(&text) {
            Ok(m) => {
                has_meta = true;
                m
            }
            Err(e) => {
                problems.push(format!("run.json cannot be read as a run ({e})"));
                RunMeta::default()
            }
        },
        Err(_) => RunMeta::default(),
    };
    if has_meta && meta.schema != SCHEMA {
        problems.push(format!(
            "run.json has schema {}, this report reads schema {SCHEMA}; numbers may be off",
            meta.schema
        ));
    }

    // Hosts: those run.json names, then any other folder holding host files.
    let mut hosts: Vec<HostData> = Vec::new();
    for h in meta.hosts.iter().map(|h| h.info()) {
        if h.name.is_empty() || hosts.iter().any(|x| x.name == h.name) {
            continue;
        }
        hosts.push(HostData {
            name: h.name,
            address: h.address,
            role_hint: h.role,
            ..Default::default()
        });
    }
    let mut extra: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .filter(|e| is_host_dir(&e.path()))
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    extra.sort();
    for name in extra {
        if !hosts.iter().any(|h| h.name == name) {
            if has_meta {
                problems.push(format!(
                    "host {name}: has a folder but run.json does not list it"
                ));
            }
            hosts.push(HostData {
                name,
                ..Default::default()
            });
        }
    }
    if !has_meta && hosts.is_empty() {
        let why = match problems.first() {
            Some(p) if meta_path.exists() => p.clone(),
            _ => "no run.json and no host folders".into(),
        };
        return Err(NotARun(format!(
            "{}: not a run folder ({why})",
            dir.display()
        )));
    }
    if !has_meta && !problems.iter().any(|p| p.starts_with("run.json")) {
        problems.push("run.json is missing: no phases, one phase spans the whole run".into());
    }

    for h in &mut hosts {
        read_host(dir, h, &mut problems);
    }
    let id = if meta.run_id.is_empty() {
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        meta.run_id.clone()
    };
    Ok(Run {
        dir: dir.to_path_buf(),
        id,
        meta,
        has_meta,
        hosts,
        problems,
    })
}

fn read_host(run_dir: &Path, h: &mut HostData, problems: &mut Vec<String>) {
    let dir = run_dir.join(&h.name);
    if !dir.is_dir() {
        problems.push(format!(
            "host {}: no folder (the host died or its logs were not collected)",
            h.name
        ));
        return;
    }
    let name = h.name.clone();
    let mut p = |s: String| problems.push(format!("host {name}: {s}"));
    let mut own = ServerLog {
        instance: None,
        lines: read_jsonl(&dir.join("server.jsonl"), &mut p),
        summary: read_json(&dir.join("server-summary.json"), &mut p),
    };
    h.loadgen = read_jsonl(&dir.join("loadgen.jsonl"), &mut p);
    h.net = read_jsonl(&dir.join("net.jsonl"), &mut p);
    if let Ok(text) = fs::read_to_string(dir.join("summary.json")) {
        match serde_json::from_str::<serde_json::Value>(&text) {
            // A server's account written under the load generator's name: keep it apart.
            Ok(v) if v.get("shake_balanced").is_some() => match serde_json::from_value(v) {
                Ok(s) => {
                    own.summary.get_or_insert(s);
                }
                Err(e) => p(format!(
                    "summary.json (a server's account) cannot be read ({e})"
                )),
            },
            Ok(v) => match serde_json::from_value(v) {
                Ok(s) => h.summary = Some(s),
                Err(e) => p(format!("summary.json cannot be read ({e})")),
            },
            Err(e) => p(format!("summary.json cannot be read ({e})")),
        }
    }
    h.histograms = read_json::<HistogramsFile>(&dir.join(histograms::FILE), &mut p)
        .and_then(|f| decode_histograms(&f, &mut p));
    if let Ok(text) = fs::read_to_string(dir.join("tuning.txt")) {
        h.tuning = tuning::parse(&text);
    }
    if !own.lines.is_empty() || own.summary.is_some() {
        h.servers.push(own);
    }
    for (i, idir) in instance_dirs(&dir) {
        let inst = formats::instance_dir(i);
        let mut p = |s: String| problems.push(format!("host {name}: {inst}: {s}"));
        let log = ServerLog {
            instance: Some(i),
            lines: read_jsonl(&idir.join("server.jsonl"), &mut p),
            summary: read_json(&idir.join("server-summary.json"), &mut p),
        };
        if log.lines.is_empty() {
            p("server.jsonl is missing or empty".into());
        }
        h.servers.push(log);
    }
    let mut p = |s: String| problems.push(format!("host {name}: {s}"));
    let expected: &[&str] = match h.role() {
        // With instances, each instance's folder holds its server.jsonl (checked above).
        Role::Server if h.has_instances() => &["net.jsonl", "tuning.txt"],
        Role::Server => &["server.jsonl", "net.jsonl", "tuning.txt"],
        Role::Loadgen => &["loadgen.jsonl", "summary.json", "net.jsonl", "tuning.txt"],
        Role::Unknown => &["server.jsonl or loadgen.jsonl"],
    };
    for f in expected {
        if f.contains(" or ") || !dir.join(f).exists() {
            p(format!("{f} is missing"));
        }
    }
}

/// Every phase's histogram of a `histograms.json`; `None` (and a problem) if any
/// cannot be used, so a phase is never merged from part of a host's data.
fn decode_histograms(
    f: &HistogramsFile,
    problem: &mut impl FnMut(String),
) -> Option<BTreeMap<String, Histogram<u64>>> {
    let decoded = f.check().and_then(|()| {
        f.phases
            .iter()
            .map(|p| Ok((p.name.clone(), p.histogram()?)))
            .collect::<Result<BTreeMap<_, _>, String>>()
    });
    decoded
        .map_err(|e| problem(format!("{} is not usable: {e}", histograms::FILE)))
        .ok()
}

/// Reads one JSON file; absent is `None` without a word, unreadable is a problem.
fn read_json<T: DeserializeOwned>(path: &Path, problem: &mut impl FnMut(String)) -> Option<T> {
    let text = fs::read_to_string(path).ok()?;
    let file = path.file_name().unwrap_or_default().to_string_lossy();
    serde_json::from_str(&text)
        .map_err(|e| problem(format!("{file} cannot be read ({e})")))
        .ok()
}

/// Reads JSON Lines, keeping every line that parses. A last line without its newline
/// that does not parse is a cut file; other bad lines are counted.
fn read_jsonl<T: DeserializeOwned>(path: &Path, problem: &mut impl FnMut(String)) -> Vec<T> {
    let Ok(bytes) = fs::read(path) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let file = path.file_name().unwrap_or_default().to_string_lossy();
    let mut out = Vec::new();
    let mut bad = 0usize;
    let mut first_bad = None;
    let n_lines = text.lines().count();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<T>(line) {
            Ok(v) => out.push(v),
            Err(e) => {
                let last = i + 1 == n_lines && !text.ends_with('\n');
                if last {
                    problem(format!(
                        "{file} is cut mid-line at line {} (the writer stopped)",
                        i + 1
                    ));
                } else {
                    bad += 1;
                    first_bad.get_or_insert((i + 1, e.to_string()));
                }
            }
        }
    }
    if let Some((line, e)) = first_bad {
        problem(format!(
            "{file}: {bad} line(s) unreadable, first at line {line} ({e})"
        ));
    }
    out
}
