//! `run.json`: the plan and the facts of one run, written by whatever drives it (the
//! demo, the fleet's playbooks) and read by the report.
//!
//! Every field has a default: the writers are other programs, possibly older or newer
//! than this reader, and a missing optional field must not cost the whole report.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    pub commands: Vec<Value>,
    pub git_commit: String,
    /// Hosts that failed during the run, with the reason in words (`{host: reason}`; a
    /// list of names is read with empty reasons). Their folders may be absent or partial.
    #[serde(
        deserialize_with = "names_with_reasons",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub failed_hosts: BTreeMap<String, String>,
    /// What a phase must stay under to pass, for every phase that does not give its own.
    #[serde(skip_serializing_if = "Thresholds::is_empty")]
    pub thresholds: Thresholds,
    /// Anything else a writer records (the demo: users, plan, versions); kept as read.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
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
    /// This phase's own thresholds, over the run's.
    #[serde(skip_serializing_if = "Thresholds::is_empty")]
    pub thresholds: Thresholds,
}

/// Limits a phase is judged against; `None`: the report's default for that limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Thresholds {
    /// The highest p99 latency, milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_p99_ms: Option<f64>,
    /// The highest p99.9 latency, milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_p999_ms: Option<f64>,
    /// How far below its target a phase's achieved rate may fall, percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_tolerance_pct: Option<f64>,
    /// The most errors plus timeouts a phase may have, as a fraction of what was due.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<f64>,
}

impl Thresholds {
    pub fn is_empty(&self) -> bool {
        *self == Thresholds::default()
    }

    /// `self`, with each limit it does not set taken from `under`.
    pub fn over(self, under: Thresholds) -> Thresholds {
        Thresholds {
            max_p99_ms: self.max_p99_ms.or(under.max_p99_ms),
            max_p999_ms: self.max_p999_ms.or(under.max_p999_ms),
            rate_tolerance_pct: self.rate_tolerance_pct.or(under.rate_tolerance_pct),
            max_error_rate: self.max_error_rate.or(under.max_error_rate),
        }
    }
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
    /// The host's clock minus the controller's, milliseconds, measured when the run
    /// began (from a round trip to the host: its reading against the midpoint).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_offset_ms: Option<f64>,
    /// That round trip, milliseconds: the offset is known to within half of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_rtt_ms: Option<f64>,
}

/// `{name: reason}`, or a list of names (reasons empty), or null.
fn names_with_reasons<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Object(m) => m
            .into_iter()
            .map(|(k, v)| {
                let why = match v {
                    Value::String(s) => s,
                    Value::Null => String::new(),
                    v => v.to_string(),
                };
                (k, why)
            })
            .collect(),
        Value::Array(v) => v
            .into_iter()
            .filter_map(|n| n.as_str().map(|n| (n.to_string(), String::new())))
            .collect(),
        _ => BTreeMap::new(),
    })
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
        assert_eq!(m.extra["more"], Value::Bool(true));
        let back: RunMeta = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back.extra, m.extra);
        assert_eq!(back.phases, m.phases);
        assert!(m.failed_hosts.is_empty());
    }

    #[test]
    fn failed_hosts_are_a_map_of_reasons_or_a_list_of_names() {
        let m: RunMeta =
            serde_json::from_str(r#"{"failed_hosts":{"c2":"killed","c3":null}}"#).unwrap();
        assert_eq!(m.failed_hosts["c2"], "killed");
        assert_eq!(m.failed_hosts["c3"], "");
        assert!(!m.extra.contains_key("failed_hosts"));
        let m: RunMeta = serde_json::from_str(r#"{"failed_hosts":["c2"]}"#).unwrap();
        assert_eq!(m.failed_hosts["c2"], "");
    }
}
