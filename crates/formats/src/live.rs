//! `live.jsonl`: the fleet as it ran, one line per second, written on the controller by
//! `redpacket-live` while the run goes (the demo and `run --procs` write it too).
//!
//! Each line is the sum of the per-second records every host wrote for that second
//! (`loadgen.jsonl`, `server.jsonl`), the very records the report reads afterwards, so
//! the live figures of a second equal the report's for the same second, except for a
//! host whose record came after the line was written (named in `late`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The file's name in a run folder.
pub const FILE: &str = "live.jsonl";

/// One second of the fleet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LiveLine {
    /// Unix seconds: the whole second the counts end on (as in `loadgen.jsonl`).
    pub t: i64,
    /// The phase the load generators were in (the most common among their lines).
    pub phase: String,
    /// Users logged in at the end of the second, over every load generator.
    pub users: u64,
    /// Shake requests written, answered, failed and timed out in the second.
    pub sent: u64,
    pub answered: u64,
    pub errors: u64,
    pub timeouts: u64,
    /// The fleet's target shakes per second at `t` (the sum of every load generator's).
    pub target: f64,
    /// Percentiles of the second's shake latency from every load generator's histogram
    /// of that second merged (exact); `None` when nothing was answered.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    /// Hosts with a record of this second when the line was written, and hosts in the run.
    pub hosts_reporting: usize,
    pub hosts_expected: usize,
    /// Each server host's shake requests received in the second (its instances added up).
    pub servers: BTreeMap<String, u64>,
    /// The host whose record of this second came last, and how long after the second's
    /// end (seconds): the one to look at when the line comes late.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slowest: Option<Slowest>,
    /// Hosts with no record of this second when it was written, each with the seconds
    /// since its last record (or since the view started, for a host never heard from).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub missing: BTreeMap<String, f64>,
}

/// A host and how late its record came.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Slowest {
    pub host: String,
    pub after_s: f64,
}
