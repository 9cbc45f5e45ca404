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
    self, histograms, HistogramsFile, LoadgenLine, LoadgenSummary, LostLife, NetLine, RunMeta,
    ServerLine, ServerSummary, StartLine, SCHEMA, STARTS_FILE,
};
use crate::lives;
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
    /// The final account (`server-summary.json`): the last life's, after a restart.
    pub summary: Option<ServerSummary>,
    /// Each start in the folder (`starts.jsonl`), when the server recorded them.
    pub starts: Vec<StartLine>,
    /// Earlier lives' clean final accounts (`server-summary.life-N.json`), by life.
    pub earlier: Vec<(u32, ServerSummary)>,
}

impl ServerLog {
    /// `host` or `host/instance-I`: how tables and problems name this server.
    pub fn label(&self, host: &str) -> String {
        match self.instance {
            Some(i) => format!("{host}/{}", formats::instance_dir(i)),
            None => host.to_string(),
        }
    }

    /// `host` or `host instance I`: how money sentences name this server.
    pub fn name(&self, host: &str) -> String {
        match self.instance {
            Some(i) => format!("{host} instance {i}"),
            None => host.to_string(),
        }
    }

    /// Earlier lives that ended without their final account (killed), from the starts
    /// the server recorded, or else from its last account.
    pub fn lost_lives(&self) -> Vec<LostLife> {
        let lost = lives::lost_lives(&self.starts);
        match &self.summary {
            Some(s) if lost.is_empty() => s.lost_lives.clone(),
            _ => lost,
        }
    }

    /// The `t` of its last per-second line.
    pub fn last_t(&self) -> Option<f64> {
        self.lines.last().map(|l| l.t)
    }
}

/// A unix time as a person reads it in a report: `HH:MM:SS UTC`, and how far into the
/// run when `started` is known.
pub fn when(t: f64, started: f64) -> String {
    let s = t.max(0.0).round() as u64 % 86_400;
    let clock = format!("{:02}:{:02}:{:02} UTC", s / 3600, s / 60 % 60, s % 60);
    if started > 0.0 && t >= started {
        format!("{clock} ({:.0} s into the run)", t - started)
    } else {
        clock
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
    /// Why the host failed during the run (`run.json` `failed_hosts`), if it did.
    pub failed: Option<String>,
    /// The role `run.json` gives the host (empty: guessed from its files).
    pub(crate) role_hint: String,
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

    /// A load generator that left per-second lines but no `summary.json`: it stopped
    /// (was killed) before its end. Its figures are partial and it has no totals.
    pub fn loadgen_cut_short(&self) -> bool {
        self.role() == Role::Loadgen && self.summary.is_none()
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
            failed: meta.failed_hosts.get(&h.name).cloned(),
            name: h.name,
            address: h.address,
            role_hint: h.role,
            ..Default::default()
        });
    }
    // A failed host run.json does not list among its hosts is still named.
    for (name, why) in &meta.failed_hosts {
        if !name.is_empty() && !hosts.iter().any(|h| &h.name == name) {
            hosts.push(HostData {
                name: name.clone(),
                failed: Some(why.clone()),
                ..Default::default()
            });
        }
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
        read_host(dir, h, meta.started, &mut problems);
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

/// `(run.json failed_hosts: REASON)`, or nothing for a host that did not fail.
fn failed_note(h: &HostData) -> String {
    match h.failed.as_deref() {
        Some("") => " (run.json lists it in failed_hosts)".into(),
        Some(why) => format!(" (run.json failed_hosts: {why})"),
        None => String::new(),
    }
}

fn read_host(run_dir: &Path, h: &mut HostData, started: f64, problems: &mut Vec<String>) {
    let dir = run_dir.join(&h.name);
    if !dir.is_dir() {
        problems.push(format!(
            "host {}: no folder (the host died or its logs were not collected){}",
            h.name,
            failed_note(h)
        ));
        return;
    }
    let name = h.name.clone();
    let mut p = |s: String| problems.push(format!("host {name}: {s}"));
    let mut own = read_server(&dir, None, &mut p);
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
        server_lives(&own, started, &mut p);
        h.servers.push(own);
    }
    for (i, idir) in instance_dirs(&dir) {
        let inst = formats::instance_dir(i);
        let mut p = |s: String| problems.push(format!("host {name}: {inst}: {s}"));
        let log = read_server(&idir, Some(i), &mut p);
        if log.lines.is_empty() {
            p("server.jsonl is missing or empty".into());
        } else if log.summary.is_none() {
            p(format!(
                "server-summary.json is missing: the server did not stop cleanly (killed \
                 and not restarted, or still running when collected); its lines run until {}",
                when(log.last_t().unwrap_or(0.0), started)
            ));
        }
        server_lives(&log, started, &mut p);
        h.servers.push(log);
    }
    let failed = failed_note(h);
    let mut p = |s: String| problems.push(format!("host {name}: {s}"));
    if h.loadgen_cut_short() && !h.loadgen.is_empty() {
        // One sentence for what a killed load generator leaves, instead of a line per
        // missing file.
        let last = h.loadgen.last().map(|l| (l.t, l.phase.clone()));
        let (t, phase) = last.unwrap_or_default();
        let absent: Vec<&str> = ["summary.json", histograms::FILE, "net.jsonl", "tuning.txt"]
            .into_iter()
            .filter(|f| !dir.join(f).exists())
            .collect();
        p(format!(
            "the load generator stopped before its end{failed}: {} missing; its per-second \
             records (loadgen.jsonl, {} lines) run until {}{}; it is left out of the totals \
             that need a summary (users at the end, rates held, client money)",
            list_files(&absent),
            h.loadgen.len(),
            when(t, started),
            if phase.is_empty() {
                String::new()
            } else {
                format!(", phase {phase}")
            }
        ));
        return;
    }
    if !failed.is_empty() {
        p(format!("failed during the run{failed}"));
    }
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

/// `a is`, `a and b are`, `a, b and c are`.
fn list_files(files: &[&str]) -> String {
    match files {
        [] => "no file is".into(),
        [one] => format!("{one} is"),
        [init @ .., last] => format!("{} and {last} are", init.join(", ")),
    }
}

/// One server's files in `dir`: its lines, its account, its starts and the accounts of
/// its earlier clean lives.
fn read_server(dir: &Path, instance: Option<u32>, p: &mut impl FnMut(String)) -> ServerLog {
    let mut earlier: Vec<(u32, ServerSummary)> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let n = lives::parse_kept_summary_name(&e.file_name().into_string().ok()?)?;
                    Some((n, read_json(&e.path(), p)?))
                })
                .collect()
        })
        .unwrap_or_default();
    earlier.sort_by_key(|(n, _)| *n);
    ServerLog {
        instance,
        lines: read_jsonl(&dir.join("server.jsonl"), p),
        summary: read_json(&dir.join("server-summary.json"), p),
        starts: read_jsonl(&dir.join(STARTS_FILE), p),
        earlier,
    }
}

/// A server's restarts, said once among what is missing: each lost life's ledger.
fn server_lives(log: &ServerLog, started: f64, p: &mut impl FnMut(String)) {
    for l in log.lost_lives() {
        p(format!(
            "life {} was killed (last line at {}) and restarted at {}: its final account \
             (server-summary.json) was never written",
            l.life,
            when(l.last_seen, started),
            when(l.restarted, started)
        ));
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
