//! The files of a run folder, as types. `results/README.md` documents them with units.
//!
//! Every field has a default: the writers are other programs, possibly older or newer
//! than this reader, and a missing optional field must not cost the whole report.
//! `server.jsonl` is [`crate::stats::SecondLine`] and `net.jsonl` is
//! [`crate::sysmon::NetLine`]; they are not repeated here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The schema version this reader writes about and understands.
pub const SCHEMA: u32 = 1;

/// `run.json`: the plan and the facts of one run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RunMeta {
    pub schema: u32,
    pub run_id: String,
    /// Unix seconds.
    pub started: f64,
    /// Unix seconds; 0 when unknown.
    pub ended: f64,
    pub description: String,
    pub phases: Vec<PhasePlan>,
    pub hosts: Vec<HostEntry>,
    /// Command lines as run, one string each (or `{"host", "command"}` objects).
    pub commands: Vec<serde_json::Value>,
    pub git_commit: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PhasePlan {
    pub name: String,
    /// Shake requests per second asked of the load generators, all hosts together.
    pub target_qps: f64,
    /// Unix seconds.
    pub start: f64,
    pub end: f64,
}

/// A host: either a bare name or an object with a role.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HostEntry {
    Name(String),
    Full(HostInfo),
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HostInfo {
    /// The folder name under the run folder.
    pub name: String,
    /// `server` or `loadgen`.
    pub role: String,
    pub address: String,
}

impl HostEntry {
    pub fn info(&self) -> HostInfo {
        match self {
            HostEntry::Name(n) => HostInfo {
                name: n.clone(),
                ..Default::default()
            },
            HostEntry::Full(h) => h.clone(),
        }
    }
}

/// Latency percentiles in milliseconds, measured from each request's scheduled time.
/// `None` when the interval had no answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Latency {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
    pub max: Option<f64>,
}

/// One line of `loadgen.jsonl`: what one load generator did in one second.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LoadgenLine {
    /// Unix seconds at the end of the interval.
    pub t: f64,
    /// Seconds covered by the counts (about 1); 0 or absent means 1.
    pub interval_s: f64,
    pub phase: String,
    pub target_qps: f64,
    /// Shake requests sent in the interval.
    pub sent: u64,
    /// Answers received in the interval (got + none + overloaded).
    pub answered: u64,
    pub got: u64,
    pub none: u64,
    pub overloaded: u64,
    pub errors: u64,
    pub timeouts: u64,
    /// Connections established now (gauge).
    pub connections: u64,
    /// Optional: established connections per local source address (gauge).
    pub connections_by_addr: BTreeMap<String, u64>,
    pub latency_ms: Latency,
}

/// `summary.json`, written by a load generator when it ends.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Summary {
    pub phases: Vec<SummaryPhase>,
    pub connections: serde_json::Value,
    pub money: serde_json::Value,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SummaryPhase {
    pub name: String,
    pub target_qps: f64,
    pub achieved_qps: f64,
    pub sent: u64,
    pub answered: u64,
    pub errors: u64,
    pub timeouts: u64,
    /// Whole-phase percentiles from the load generator's histogram.
    pub latency_ms: Latency,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_json_accepts_names_or_objects_and_extra_fields() {
        let j = r#"{"schema":1,"run_id":"r","started":10.5,
            "phases":[{"name":"30k","target_qps":30000,"start":11,"end":71}],
            "hosts":["a",{"name":"b","role":"server","extra":1}],
            "commands":["x --y", {"host":"a","command":"z"}],"git_commit":"abc","more":true}"#;
        let m: RunMeta = serde_json::from_str(j).unwrap();
        assert_eq!(m.phases[0].end, 71.0);
        assert_eq!(m.hosts[0].info().name, "a");
        assert_eq!(m.hosts[1].info().role, "server");
    }

    #[test]
    fn loadgen_line_tolerates_nulls_and_missing_fields() {
        let l: LoadgenLine =
            serde_json::from_str(r#"{"t":5,"sent":3,"latency_ms":{"p50":null,"p99":2.5}}"#)
                .unwrap();
        assert_eq!(l.sent, 3);
        assert_eq!(l.latency_ms.p50, None);
        assert_eq!(l.latency_ms.p99, Some(2.5));
    }
}
