//! Reading a run folder, tolerating the ways real runs break.
//!
//! A host can die mid-run, a file can be cut mid-line by a full disk or a kill, a copy
//! can be missing. None of that should hide what was collected: every such finding goes
//! into [`Run::problems`] in words, and the report prints them first. Only a folder that
//! holds no run at all is an error.
//!
//! Hosts are not trusted either: every file is opened through [`safe_fs`] (regular files
//! only, never through a link, each kind under its cap, the whole run under one budget),
//! a host name must be one plain folder name, and a host folder that is a link is not
//! entered. What is refused is named among the problems and counted in
//! [`Run::refused`], which fails the verdict.
//!
//! Reading is all this does: the figures are judged above it (`sanity`, run by the
//! library's `load` once the folder is read), so the run's types need nothing but the
//! file formats and the safe way to open files.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use serde::de::DeserializeOwned;

use super::numbers::when;
use super::safe_fs::{
    self, Budget, HISTOGRAMS_CAP, LINE_CAP, PER_SECOND_CAP, RUN_HEAP_CAP, RUN_JSON_CAP,
    RUN_READ_CAP, SUMMARY_CAP, TUNING_CAP,
};
use redpacket_formats::lives;
use redpacket_formats::tuning;
use redpacket_formats::{
    self as formats, histograms, HistogramsFile, LoadgenLine, LoadgenSummary, LostLife, NetLine,
    RunMeta, ServerLine, ServerSummary, StartLine, SCHEMA, STARTS_FILE,
};

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
    /// Files and host names refused as unsafe (links, FIFOs, over their caps, names that
    /// are paths, histograms that claim too much): each is among the problems too, and
    /// any fails the verdict.
    pub refused: usize,
    /// Figures no run can produce: empty as `load::read` leaves it; [`crate::load`] fills
    /// it from the `sanity` checks and adds them to the problems, and any fails the verdict.
    pub implausible: Vec<String>,
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

/// A host folder's server instances: `(number, folder)`, in instance order (links to
/// folders are not instances: not entered).
fn instance_dirs(dir: &Path) -> Vec<(u32, PathBuf)> {
    let mut v: Vec<(u32, PathBuf)> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
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

/// Whether `path` names anything, a link included (without following it).
fn present(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Whether `dir` holds any file of a host (or of one of its server instances).
fn is_host_dir(dir: &Path) -> bool {
    HOST_FILES.iter().any(|f| present(&dir.join(f)))
        || instance_dirs(dir)
            .iter()
            .any(|(_, d)| HOST_FILES.iter().any(|f| present(&d.join(f))))
}

/// The files the report itself writes into a run folder (a link there is replaced).
const OUTPUTS: &[&str] = &["report.html", "report.md", "report.json", "charts"];

/// A name from the data, shown in a problem: quoted, escapes visible, cut to 64 chars.
fn shown(name: &str) -> String {
    let q = format!("{name:?}");
    match q.char_indices().nth(64) {
        Some((i, _)) => format!("{}...\"", &q[..i]),
        None => q,
    }
}

/// Reads a run folder, as its files say, without judging the figures (that is
/// [`super::sanity`], run by [`crate::load`]). Fails only when `dir` is not a run (no
/// `run.json` and no host folder with any known file).
pub fn read(dir: &Path) -> Result<Run, NotARun> {
    if !dir.is_dir() {
        return Err(NotARun(format!(
            "{}: not a run folder (no such directory)",
            dir.display()
        )));
    }
    let mut problems = Vec::new();
    let budget = Budget::default();
    let meta_path = dir.join("run.json");
    let (meta, has_meta) = read_meta(&meta_path, &budget, &mut problems);
    let mut hosts = find_hosts(dir, &meta, has_meta, &budget, &mut problems);
    if !has_meta && hosts.is_empty() {
        let why = match problems.first() {
            Some(p) if present(&meta_path) => p.clone(),
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
        read_host(dir, h, meta.started, &budget, &mut problems);
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
        refused: budget.refused(),
        implausible: Vec::new(),
    })
}

/// `run.json`, and whether it was read as a run (an absent or unreadable one gives the
/// defaults: no phases, no hosts listed).
fn read_meta(path: &Path, budget: &Budget, problems: &mut Vec<String>) -> (RunMeta, bool) {
    let mut has_meta = false;
    let meta = match safe_fs::read(path, RUN_JSON_CAP, budget) {
        Ok(text) => match serde_json::from_slice::<RunMeta>(&text) {
            Ok(m) => {
                has_meta = true;
                m
            }
            Err(e) => {
                problems.push(format!("run.json cannot be read as a run ({e})"));
                RunMeta::default()
            }
        },
        Err(r) if r.is_absent() => RunMeta::default(),
        Err(r) => {
            problems.push(format!("run.json {r}"));
            RunMeta::default()
        }
    };
    if has_meta && meta.schema != SCHEMA {
        problems.push(format!(
            "run.json has schema {}, this report reads schema {SCHEMA}; numbers may be off",
            meta.schema
        ));
    }
    (meta, has_meta)
}

/// The names of the run's hosts as they are admitted: each once, and only a plain
/// folder name.
struct HostNames<'b> {
    seen: HashSet<String>,
    budget: &'b Budget,
}

impl HostNames<'_> {
    /// Whether `name` is a new plain folder name; one that is not a plain name is
    /// refused and named, never joined to a path.
    fn admit(&mut self, name: &str, problems: &mut Vec<String>) -> bool {
        match safe_fs::plain_name(name) {
            _ if name.is_empty() => false,
            Ok(()) => self.seen.insert(name.to_string()),
            Err(why) => {
                self.budget.refuse();
                problems.push(format!(
                    "host name {} {why}: not a folder of the run, skipped",
                    shown(name)
                ));
                false
            }
        }
    }
}

/// The run's hosts: those run.json names (its failed hosts too), then any other folder
/// holding host files, each named among the problems when run.json exists.
fn find_hosts(
    dir: &Path,
    meta: &RunMeta,
    has_meta: bool,
    budget: &Budget,
    problems: &mut Vec<String>,
) -> Vec<HostData> {
    let mut names = HostNames {
        seen: HashSet::new(),
        budget,
    };
    let mut hosts = listed_hosts(meta, &mut names, problems);
    for name in host_folders(dir, &names.seen, budget, problems) {
        if names.seen.contains(&name) || !names.admit(&name, problems) {
            continue;
        }
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
    hosts
}

/// The hosts `run.json` lists, then the failed hosts it does not list among them.
fn listed_hosts(
    meta: &RunMeta,
    names: &mut HostNames,
    problems: &mut Vec<String>,
) -> Vec<HostData> {
    let mut hosts: Vec<HostData> = Vec::new();
    for h in meta.hosts.iter().map(|h| h.info()) {
        if !names.admit(&h.name, problems) {
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
        if names.admit(name, problems) {
            hosts.push(HostData {
                name: name.clone(),
                failed: Some(why.clone()),
                ..Default::default()
            });
        }
    }
    hosts
}

/// The run folder's folders that hold host files, sorted. A link in the run folder is
/// not followed and is named, unless it is the run's own (`run.json`, an output) or a
/// host already `seen` (named with the host when it is read).
fn host_folders(
    dir: &Path,
    seen: &HashSet<String>,
    budget: &Budget,
    problems: &mut Vec<String>,
) -> Vec<String> {
    let mut extra: Vec<String> = Vec::new();
    for e in fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
    {
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        let Ok(t) = e.file_type() else { continue };
        let ours = OUTPUTS.contains(&name.as_str()) || name == "run.json";
        if t.is_symlink() && !ours && !seen.contains(&name) {
            // A listed host's folder that is a link is named with the host, run.json
            // when it is read, an output when it is replaced.
            budget.refuse();
            problems.push(format!(
                "{} in the run folder is a symbolic link: not followed",
                shown(&name)
            ));
        } else if t.is_dir() && is_host_dir(&e.path()) {
            extra.push(name);
        }
    }
    extra.sort();
    extra
}

/// `(run.json failed_hosts: REASON)`, or nothing for a host that did not fail.
fn failed_note(h: &HostData) -> String {
    match h.failed.as_deref() {
        Some("") => " (run.json lists it in failed_hosts)".into(),
        Some(why) => format!(" (run.json failed_hosts: {why})"),
        None => String::new(),
    }
}

/// One host's folder: its own server's files, the load generator's and the sampler's,
/// each server instance's, then what is missing from it. A folder that is a link is not
/// entered.
fn read_host(
    run_dir: &Path,
    h: &mut HostData,
    started: f64,
    budget: &Budget,
    problems: &mut Vec<String>,
) {
    let dir = run_dir.join(&h.name);
    if fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_symlink()) {
        budget.refuse();
        problems.push(format!(
            "host {}: its folder is a symbolic link: not followed, nothing of it is read",
            h.name
        ));
        return;
    }
    if !safe_fs::real_dir(&dir) {
        problems.push(format!(
            "host {}: no folder (the host died or its logs were not collected){}",
            h.name,
            failed_note(h)
        ));
        return;
    }
    let name = h.name.clone();
    let mut p = |s: String| problems.push(format!("host {name}: {s}"));
    let own = read_host_files(&dir, h, budget, &mut p);
    if !own.lines.is_empty() || own.summary.is_some() {
        server_lives(&own, started, &mut p);
        h.servers.push(own);
    }
    refuse_linked_instances(&dir, &h.name, budget, problems);
    read_instances(&dir, h, started, budget, problems);
    name_missing_files(&dir, h, started, problems);
}

/// The files in the host's own folder: the load generator's (lines, summary,
/// histograms), the sampler's, the tuning, and the server's that writes straight into
/// the folder (returned, empty when there is none).
fn read_host_files(
    dir: &Path,
    h: &mut HostData,
    budget: &Budget,
    p: &mut impl FnMut(String),
) -> ServerLog {
    let mut own = read_server(dir, None, budget, p);
    h.loadgen = read_jsonl(&dir.join("loadgen.jsonl"), budget, p);
    h.net = read_jsonl(&dir.join("net.jsonl"), budget, p);
    if let Some(text) = read_file(&dir.join("summary.json"), SUMMARY_CAP, budget, p) {
        match serde_json::from_slice::<serde_json::Value>(&text) {
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
    h.histograms =
        read_json::<HistogramsFile>(&dir.join(histograms::FILE), HISTOGRAMS_CAP, budget, p)
            .and_then(|f| decode_histograms(&f, budget, p));
    if let Some(text) = read_file(&dir.join("tuning.txt"), TUNING_CAP, budget, p) {
        h.tuning = tuning::parse(&String::from_utf8_lossy(&text));
    }
    own
}

/// An instance folder that is a link is not entered (`instance_dirs` skips it): named.
fn refuse_linked_instances(dir: &Path, host: &str, budget: &Budget, problems: &mut Vec<String>) {
    for e in fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let link = e.file_type().is_ok_and(|t| t.is_symlink());
        if link && formats::parse_instance_dir(&name).is_some() {
            budget.refuse();
            problems.push(format!(
                "host {host}: {name} is a symbolic link: not followed"
            ));
        }
    }
}

/// Each server instance's folder (`instance-I/`), in instance order, with what is
/// missing from it.
fn read_instances(
    dir: &Path,
    h: &mut HostData,
    started: f64,
    budget: &Budget,
    problems: &mut Vec<String>,
) {
    let name = h.name.clone();
    for (i, idir) in instance_dirs(dir) {
        let inst = formats::instance_dir(i);
        let mut p = |s: String| problems.push(format!("host {name}: {inst}: {s}"));
        let log = read_server(&idir, Some(i), budget, &mut p);
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
}

/// What the host's folder lacks for its role: one sentence for a load generator that
/// stopped before its end, else each expected file that is missing, and the failure
/// `run.json` records.
fn name_missing_files(dir: &Path, h: &HostData, started: f64, problems: &mut Vec<String>) {
    let name = &h.name;
    let failed = failed_note(h);
    let mut p = |s: String| problems.push(format!("host {name}: {s}"));
    if h.loadgen_cut_short() && !h.loadgen.is_empty() {
        // One sentence for what a killed load generator leaves, instead of a line per
        // missing file.
        let last = h.loadgen.last().map(|l| (l.t, l.phase.clone()));
        let (t, phase) = last.unwrap_or_default();
        let absent: Vec<&str> = ["summary.json", histograms::FILE, "net.jsonl", "tuning.txt"]
            .into_iter()
            .filter(|f| !present(&dir.join(f)))
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
        // With instances, each instance's folder holds its server.jsonl (see `read_instances`).
        Role::Server if h.has_instances() => &["net.jsonl", "tuning.txt"],
        Role::Server => &["server.jsonl", "net.jsonl", "tuning.txt"],
        Role::Loadgen => &["loadgen.jsonl", "summary.json", "net.jsonl", "tuning.txt"],
        Role::Unknown => &["server.jsonl or loadgen.jsonl"],
    };
    for f in expected {
        if f.contains(" or ") || !present(&dir.join(f)) {
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
fn read_server(
    dir: &Path,
    instance: Option<u32>,
    budget: &Budget,
    p: &mut impl FnMut(String),
) -> ServerLog {
    let mut earlier: Vec<(u32, ServerSummary)> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let n = lives::parse_kept_summary_name(&e.file_name().into_string().ok()?)?;
                    Some((n, read_json(&e.path(), SUMMARY_CAP, budget, p)?))
                })
                .collect()
        })
        .unwrap_or_default();
    earlier.sort_by_key(|(n, _)| *n);
    ServerLog {
        instance,
        lines: read_jsonl(&dir.join("server.jsonl"), budget, p),
        summary: read_json(&dir.join("server-summary.json"), SUMMARY_CAP, budget, p),
        starts: read_jsonl(&dir.join(STARTS_FILE), budget, p),
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
///
/// Each decoded histogram's counts are taken from the run's budget (the header checks in
/// [`histograms::decode`] keep one under 300 KB, the budget keeps them all bounded). A
/// file that cannot be used counts as refused: a real writer never makes one.
fn decode_histograms(
    f: &HistogramsFile,
    budget: &Budget,
    problem: &mut impl FnMut(String),
) -> Option<BTreeMap<String, Histogram<u64>>> {
    let decoded = f.check().and_then(|()| {
        f.phases
            .iter()
            .map(|p| {
                let h = p.histogram()?;
                if !budget.take(8 * h.distinct_values() as u64) {
                    return Err(format!(
                        "past what the report reads from one run ({RUN_READ_CAP} bytes)"
                    ));
                }
                Ok((p.name.clone(), h))
            })
            .collect::<Result<BTreeMap<_, _>, String>>()
    });
    decoded
        .map_err(|e| {
            budget.refuse();
            problem(format!("{} is not usable: {e}", histograms::FILE))
        })
        .ok()
}

/// A whole run-folder file ([`safe_fs::read`]); absent is `None` without a word, refused
/// is a problem.
fn read_file(
    path: &Path,
    cap: u64,
    budget: &Budget,
    problem: &mut impl FnMut(String),
) -> Option<Vec<u8>> {
    let file = path.file_name().unwrap_or_default().to_string_lossy();
    match safe_fs::read(path, cap, budget) {
        Ok(bytes) => Some(bytes),
        Err(r) if r.is_absent() => None,
        Err(r) => {
            problem(format!("{file} {r}"));
            None
        }
    }
}

/// Reads one JSON file; absent is `None` without a word, unreadable is a problem.
fn read_json<T: DeserializeOwned>(
    path: &Path,
    cap: u64,
    budget: &Budget,
    problem: &mut impl FnMut(String),
) -> Option<T> {
    let text = read_file(path, cap, budget, problem)?;
    let file = path.file_name().unwrap_or_default().to_string_lossy();
    serde_json::from_slice(&text)
        .map_err(|e| problem(format!("{file} cannot be read ({e})")))
        .ok()
}

/// Reads JSON Lines, keeping every line that parses. A last line without its newline
/// that does not parse is a cut file; other bad lines are counted, lines over
/// [`LINE_CAP`] too (skipped without being held). The file is read a line at a time
/// ([`PER_SECOND_CAP`] at most); each line kept takes its record's size from the run's
/// budget, and when that is spent the rest of the file is left out and named.
pub(crate) fn read_jsonl<T: DeserializeOwned>(
    path: &Path,
    budget: &Budget,
    problem: &mut impl FnMut(String),
) -> Vec<T> {
    let file = path.file_name().unwrap_or_default().to_string_lossy();
    let mut r = match safe_fs::open(path, PER_SECOND_CAP, budget) {
        Ok(f) => BufReader::new(f),
        Err(e) if e.is_absent() => return Vec::new(),
        Err(e) => {
            problem(format!("{file} {e}"));
            return Vec::new();
        }
    };
    let record = std::mem::size_of::<T>() as u64;
    let mut out = Vec::new();
    let mut bad = 0usize;
    let mut first_bad = None;
    let mut buf = Vec::new();
    for i in 1usize.. {
        let line = match next_line(&mut r, &mut buf) {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(e) => {
                problem(format!("{file} cannot be read past line {i} ({e})"));
                break;
            }
        };
        let Some(text) = line else {
            bad += 1;
            first_bad.get_or_insert((i, format!("longer than {LINE_CAP} bytes")));
            continue;
        };
        if text.trim_ascii().is_empty() {
            continue;
        }
        match serde_json::from_slice::<T>(text) {
            Ok(v) => {
                if !budget.take(record) {
                    budget.refuse();
                    problem(format!(
                        "{file}: the lines from line {i} on are left out: the report keeps at \
                         most {RUN_READ_CAP} bytes of files and {RUN_HEAP_CAP} bytes of memory \
                         from one run"
                    ));
                    break;
                }
                out.push(v);
            }
            Err(_) if !text.ends_with(b"\n") => problem(format!(
                "{file} is cut mid-line at line {i} (the writer stopped)"
            )),
            Err(e) => {
                bad += 1;
                first_bad.get_or_insert((i, e.to_string()));
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

/// The next line of `r` in `buf`, its newline kept: `Some(None)` for a line over
/// [`LINE_CAP`], skipped without being held; `None` at the end.
fn next_line<'b>(
    r: &mut impl BufRead,
    buf: &'b mut Vec<u8>,
) -> io::Result<Option<Option<&'b [u8]>>> {
    buf.clear();
    let n = r
        .by_ref()
        .take(LINE_CAP as u64 + 1)
        .read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.len() <= LINE_CAP || buf.ends_with(b"\n") {
        return Ok(Some(Some(buf)));
    }
    buf.clear();
    loop {
        let chunk = r.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => {
                r.consume(i + 1);
                break;
            }
            None => {
                let n = chunk.len();
                r.consume(n);
            }
        }
    }
    Ok(Some(None))
}
