//! The end of a run: its phases' figures, the verdict (thresholds, money, users still
//! in, interruption) and `summary.json` with `histograms.json`. No clock and no
//! workers: what the coordinator measured goes in, the summary comes out.

use crate::metrics::Tally;
use crate::output;
use crate::run_config::RunConfig;
use redpacket_formats::{LoadgenSummary, Money, PhaseSummary, Verdict};
use std::path::Path;

/// One phase as it ran.
pub struct PhaseRun {
    pub name: String,
    /// The plan's rate, shakes/s.
    pub planned_qps: f64,
    /// The rate at the phase's end (`/qps` may have changed it).
    pub qps: f64,
    /// Unix seconds.
    pub start: f64,
    pub end: f64,
}

/// How the run began and ended, beside its phases.
pub struct Ends {
    /// How long the connect ramp lasted, seconds.
    pub connect_s: f64,
    pub not_connected_at_start: u64,
    pub connected_at_end: u64,
    pub interrupted: bool,
    /// Children's per-second records that missed their line.
    pub late_child_records: u64,
}

/// The run's summary: its phases (`tallies[i]` is `runs[i]`'s), connections, money
/// and verdict.
pub fn summarize(
    cfg: &RunConfig,
    ends: Ends,
    runs: &[PhaseRun],
    tallies: &[Tally],
    totals: &Tally,
    money: Money,
) -> LoadgenSummary {
    let phases: Vec<PhaseSummary> = runs
        .iter()
        .zip(tallies)
        .map(|(r, t)| output::phase_summary(&r.name, r.qps, r.start, r.end, t))
        .collect();
    let verdict = verdict(cfg, &ends, &phases, &money);
    LoadgenSummary {
        users: cfg.users.to_string(),
        phases,
        connections: output::connections(&totals.counts, ends.connected_at_end),
        connect_s: output::round2(ends.connect_s),
        start_at: cfg.start_at,
        users_not_connected_at_start: ends.not_connected_at_start,
        late_child_records: ends.late_child_records,
        money,
        verdict,
    }
}

/// The thresholds' verdict, failed also by money that does not reconcile, users
/// missing at the end (when a minimum is asked) or an interruption.
fn verdict(cfg: &RunConfig, ends: &Ends, phases: &[PhaseSummary], money: &Money) -> Verdict {
    let mut verdict = output::judge(phases, cfg.max_p99_ms, cfg.max_error_rate);
    let mut fail = |why: String| {
        verdict.passed = false;
        verdict.failures.push(why);
    };
    if cfg.money_check && money.reconciled == Some(false) {
        fail(format!("money: {}", money.note));
    }
    if let Some(min) = cfg.min_connected.filter(|m| ends.connected_at_end < *m) {
        fail(format!(
            "users: {} of {min} logged in at the end",
            ends.connected_at_end
        ));
    }
    if ends.interrupted {
        fail("interrupted".into());
    }
    verdict
}

/// Writes `summary.json` and `histograms.json` into `dir`.
pub fn write(
    dir: &Path,
    summary: &LoadgenSummary,
    runs: &[PhaseRun],
    tallies: &[Tally],
) -> Result<(), String> {
    output::write_summary(dir, summary)?;
    let hist: Vec<(String, f64, f64, &Tally)> = runs
        .iter()
        .zip(tallies)
        .map(|(r, t)| (r.name.clone(), r.start, r.end, t))
        .collect();
    output::write_histograms(dir, &hist)
}
