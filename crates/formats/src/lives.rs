//! `starts.jsonl` and the lives it records: one [`StartLine`] per start of a server in
//! its folder of a run, and the earlier lives lost (killed before their final account).
//! The server's `lives` module writes them at each start; the report reads them to say
//! which instance's money cannot be reconciled.

use serde::{Deserialize, Serialize};

/// `starts.jsonl`: one [`StartLine`] per start of a server in its folder.
pub const STARTS_FILE: &str = "starts.jsonl";

/// Where an earlier life's clean final account is kept: `server-summary.life-N.json`.
pub fn kept_summary_name(life: u32) -> String {
    format!("server-summary.life-{life}.json")
}

/// The life number of a file named like [`kept_summary_name`]'s, if it is one.
pub fn parse_kept_summary_name(name: &str) -> Option<u32> {
    name.strip_prefix("server-summary.life-")?
        .strip_suffix(".json")?
        .parse()
        .ok()
        .filter(|n| *n > 0)
}

/// How the life before a start ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Previous {
    /// No earlier life in this folder.
    #[default]
    None,
    /// It wrote its final account (kept as `server-summary.life-N.json`).
    Clean,
    /// It left per-second lines but no final account: killed (SIGKILL, OOM, power).
    Lost,
    /// It left neither a line nor an account: it never served (a port taken, say).
    NotStarted,
}

/// One line of `starts.jsonl`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StartLine {
    /// Unix seconds of the start.
    pub t: f64,
    pub pid: u32,
    /// This life's number in the folder, 1 for the first.
    pub life: u32,
    /// How the life before it ended.
    pub previous: Previous,
    /// The `t` of the earlier lives' last readable `server.jsonl` line (unix s): when
    /// the killed life was last seen; absent when there was none.
    pub previous_last_t: Option<f64>,
}

/// An earlier life that ended without its final account.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LostLife {
    /// Its life number in the folder.
    pub life: u32,
    /// Its last per-second line (unix s): when it was last seen alive; 0 if unknown.
    pub last_seen: f64,
    /// When the next life started (unix s).
    pub restarted: f64,
}

/// The lost lives recorded in a `starts.jsonl`'s lines.
pub fn lost_lives(starts: &[StartLine]) -> Vec<LostLife> {
    starts
        .iter()
        .filter(|s| s.previous == Previous::Lost)
        .map(|s| LostLife {
            life: s.life.saturating_sub(1),
            last_seen: s.previous_last_t.unwrap_or(0.0),
            restarted: s.t,
        })
        .collect()
}
