//! What report.html and report.md share: their sections, in one order, and what both
//! show beyond the verdict and the tables (the lead charts, the hosts' tuning, the
//! commands).
//!
//! [`write`] walks the sections once; a [`Page`] says how each is written, so the two
//! pages cannot drift apart in what they say or in what order. [`super::html`] and
//! [`super::markdown`] are the two pages.

use std::collections::{HashMap, HashSet};

use super::analyze::Analysis;
use super::charts::Drawn;
use super::footprint::{footprints, Footprint};
use super::load::Run;
use super::table::{host_tables, phase_table, Table};
use super::verdict::{preamble, verdict};

/// The charts that matter most, shown right under the verdict; the rest follow the
/// tables.
pub const FIRST_CHARTS: [&str; 2] = ["qps", "latency"];

/// One page's markup: how each section is written. Every string from the data reaches a
/// page through these methods, and each page escapes it in its own way.
pub trait Page {
    /// The page's title: `Red packet run <id>`.
    fn title(&mut self, run_id: &str);
    /// The verdict's lines, the first one the verdict itself.
    fn verdict(&mut self, lines: &[String]);
    /// What is missing or damaged (never empty).
    fn problems(&mut self, problems: &[String]);
    /// The section of the charts that matter most, under the verdict.
    fn lead_charts(&mut self, charts: &[&Drawn]);
    fn phase_table(&mut self, table: &Table);
    /// Every phase's per-host table with its title (not called when there is none).
    fn host_tables(&mut self, tables: &[(String, Table)]);
    fn capacity(&mut self, sentence: &str);
    fn footprint(&mut self, f: &Footprint);
    /// The other charts (never empty).
    fn more_charts(&mut self, charts: &[&Drawn]);
    /// The run's own lines (commit, hosts, ledgers, money), its id left out.
    fn run_lines(&mut self, lines: &[String]);
    fn tuning(&mut self, table: &Table);
    /// The run's command lines (never empty).
    fn commands(&mut self, commands: &[String]);
    /// The page's text, closed.
    fn finish(self) -> String;
}

/// The page: the verdict, what is missing, the rate and latency charts, the phase table
/// and the host tables, the capacity line, the footprints, the other charts, then the
/// run's details.
pub fn write<P: Page>(mut page: P, run: &Run, a: &Analysis, charts: &[Drawn]) -> String {
    page.title(&run.id);
    page.verdict(&verdict(run, a));
    if !run.problems.is_empty() {
        page.problems(&run.problems);
    }
    let (first, rest): (Vec<&Drawn>, Vec<&Drawn>) =
        charts.iter().partition(|c| FIRST_CHARTS.contains(&c.name));
    page.lead_charts(&first);
    page.phase_table(&phase_table(a));
    let hosts = host_tables(a);
    if !hosts.is_empty() {
        page.host_tables(&hosts);
    }
    if let Some(c) = &a.capacity {
        page.capacity(&c.sentence());
    }
    for f in footprints(run) {
        page.footprint(&f);
    }
    if !rest.is_empty() {
        page.more_charts(&rest);
    }
    page.run_lines(&preamble(run)[1..]);
    if let Some(t) = tuning_table(run) {
        page.tuning(&t);
    }
    let cmds = commands(run);
    if !cmds.is_empty() {
        page.commands(&cmds);
    }
    page.finish()
}

/// Every host's tuning values in one table, hosts across.
fn tuning_table(run: &Run) -> Option<Table> {
    let hosts: Vec<_> = run.hosts.iter().filter(|h| !h.tuning.is_empty()).collect();
    if hosts.is_empty() {
        return None;
    }
    // Keys in the order hosts first give them; looked up by hash (a host's file can
    // hold many keys: no pass over the keys per key).
    let mut keys: Vec<&str> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    let values: Vec<HashMap<&str, &str>> = hosts
        .iter()
        .map(|h| {
            let mut m = HashMap::new();
            for (k, v) in &h.tuning {
                if seen.insert(k) {
                    keys.push(k);
                }
                m.entry(k.as_str()).or_insert(v.as_str());
            }
            m
        })
        .collect();
    let mut header = vec!["setting".to_string()];
    header.extend(hosts.iter().map(|h| h.name.clone()));
    let rows = keys
        .iter()
        .map(|k| {
            let mut r = vec![k.to_string()];
            r.extend(values.iter().map(|m| m.get(k).unwrap_or(&"-").to_string()));
            r
        })
        .collect();
    Some(Table { header, rows })
}

/// The run's command lines as `run.json` lists them (`host: command` where it names the
/// host).
fn commands(run: &Run) -> Vec<String> {
    run.meta
        .commands
        .iter()
        .map(|c| match c {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Object(o) => {
                let host = o.get("host").and_then(|v| v.as_str()).unwrap_or("?");
                let cmd = o.get("command").and_then(|v| v.as_str()).unwrap_or("?");
                format!("{host}: {cmd}")
            }
            other => other.to_string(),
        })
        .collect()
}
