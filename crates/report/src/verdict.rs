//! What every view of a run says first: the verdict, and the run's own lines (its id,
//! hosts, ledgers and money).
//!
//! The verdict weighs everything the lower layers found: each loaded phase against its
//! thresholds (judged in [`super::analyze`]), what [`super::sanity`] calls implausible, what was refused as unsafe, and
//! the money as [`super::money`] reconciles it. The terminal, report.md and report.html
//! print these same lines, each in its own markup.

use super::analyze::{Analysis, PhaseStats};
use super::load::{HostData, Role, Run};
use super::money::{self, Reconciliation};
use super::numbers::{fmt_num, MANY};
use super::sanity;
use redpacket_formats::LoadgenSummary;

/// The run's header lines: id, commit, hosts, and what is missing.
pub fn preamble(run: &Run) -> Vec<String> {
    let m = &run.meta;
    let mut v = vec![format!("Run {}", run.id)];
    if !m.description.is_empty() {
        v.push(m.description.clone());
    }
    if !m.git_commit.is_empty() {
        v.push(format!("git commit {}", m.git_commit));
    }
    v.push(hosts_line(run));
    v.extend(super::clocks::skew_lines(m));
    for h in &run.hosts {
        v.extend(client_money_line(h));
        ledger_lines(h, &mut v);
    }
    // Over every server process, when there is more than one or clients to match; and
    // every server whose money cannot be reconciled, by name.
    if let Some(m) = money::reconcile(run) {
        v.extend(m.unreconciled.iter().cloned());
        if m.accounts + m.missing.len() > 1 || m.clients > 0 || !m.clients_missing.is_empty() {
            v.push(m.sentence());
        }
    }
    v
}

/// `hosts: NAME (ROLE, ADDRESS, N instances), ...`.
fn hosts_line(run: &Run) -> String {
    let hosts: Vec<String> = run
        .hosts
        .iter()
        .map(|h| {
            let role = match h.role() {
                Role::Server => "server",
                Role::Loadgen => "loadgen",
                Role::Unknown => "unknown role",
            };
            let mut what = vec![role.to_string()];
            if !h.address.is_empty() {
                what.push(h.address.clone());
            }
            if h.has_instances() {
                what.push(format!("{} instances", h.servers.len()));
            }
            format!("{} ({})", h.name, what.join(", "))
        })
        .collect();
    format!("hosts: {}", hosts.join(", "))
}

/// The money a load generator's summary recorded, every field as it wrote it.
fn client_money_line(h: &HostData) -> Option<String> {
    let m = h
        .summary
        .as_ref()
        .map(|s| &s.money)
        .filter(|m| !m.is_empty())?;
    let kv: Vec<String> = serde_json::to_value(m)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    Some(format!(
        "{} money (summary.json): {}",
        h.name,
        kv.join(", ")
    ))
}

/// Each server's final ledger, balanced or not. Past [`MANY`] instances: one line when
/// every ledger balances, else only the ones that do not (or whose server restarted).
fn ledger_lines(h: &HostData, v: &mut Vec<String>) {
    let sums: Vec<_> = h
        .servers
        .iter()
        .filter_map(|log| log.summary.as_ref().map(|s| (log, s)))
        .collect();
    let all_balanced = sums
        .iter()
        .all(|(_, s)| s.shake_balanced && s.send_balanced);
    if sums.len() > MANY && all_balanced {
        v.push(format!(
            "{} final ledgers of {} instances: shake packets balanced, user-to-user packets balanced",
            h.name,
            sums.len()
        ));
        return;
    }
    let many = sums.len() > MANY;
    for (log, sum) in sums {
        if many && sum.shake_balanced && sum.send_balanced && log.lost_lives().is_empty() {
            continue;
        }
        let word = |b: bool| if b { "balanced" } else { "NOT BALANCED" };
        // After a restart the account covers the last life only.
        let life = if sum.life > 1 {
            format!(" (life {} only)", sum.life)
        } else {
            String::new()
        };
        v.push(format!(
            "{} final ledger{life}: shake packets {}, user-to-user packets {}",
            log.label(&h.name),
            word(sum.shake_balanced),
            word(sum.send_balanced)
        ));
    }
}

/// The run's outcome as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Nothing to judge: no loaded phase and no server account.
    None,
    Passed,
    /// Nothing failed, but the money cannot be judged.
    Incomplete,
    Failed,
}

/// The run judged: every phase's failures and the run's own, in words.
pub struct RunVerdict<'a> {
    pub outcome: Outcome,
    /// The phases with a target, judged against their thresholds.
    pub loaded: Vec<&'a PhaseStats>,
    /// What failed, in words: each phase's failed thresholds first, then refused input,
    /// implausible figures, undecodable histograms, the money.
    pub failed: Vec<String>,
    /// What cannot be judged (money not reconcilable, a client's total missing).
    pub gaps: Vec<String>,
    /// The loaded phase with the highest target that passed every threshold.
    pub held: Option<&'a PhaseStats>,
    /// Users logged in at the end, the load generators' summaries added up; `None`
    /// without any summary.
    pub users: Option<u64>,
    pub money: Option<Reconciliation>,
}

/// Judges the run: its phases' thresholds (judged in `analyze`), what the report
/// refused or found implausible, and its money.
pub fn judge<'a>(run: &Run, a: &'a Analysis) -> RunVerdict<'a> {
    let money = money::reconcile(run);
    let loaded: Vec<&PhaseStats> = a.phases.iter().filter(|p| p.judged.is_some()).collect();
    let mut failed: Vec<String> = loaded
        .iter()
        .filter_map(|p| p.judged.as_ref())
        .flat_map(|j| j.failures.iter().map(|f| f.text.clone()))
        .collect();
    failed.extend(failures(run, a));
    let gaps = match &money {
        Some(m) => {
            money_failures(m, &mut failed);
            m.gaps()
        }
        None => Vec::new(),
    };
    let outcome = if loaded.is_empty() && money.is_none() && failed.is_empty() {
        Outcome::None
    } else if !failed.is_empty() {
        Outcome::Failed
    } else if !gaps.is_empty() {
        Outcome::Incomplete
    } else {
        Outcome::Passed
    };
    let sums: Vec<&LoadgenSummary> = run
        .hosts
        .iter()
        .filter_map(|h| h.summary.as_ref())
        .collect();
    let users = (!sums.is_empty()).then(|| {
        sums.iter()
            .fold(0u64, |n, s| n.saturating_add(s.connections.connected))
    });
    RunVerdict {
        outcome,
        users,
        held: highest_held(run, &loaded),
        loaded,
        failed,
        gaps,
        money,
    }
}

/// What a reader wants first: passed or failed (each loaded phase against its
/// thresholds, by name and by how much; every ledger; client against server money;
/// `INCOMPLETE` when nothing failed but money cannot be reconciled or the clients'
/// total lacks a host), users, the highest rate held under the thresholds, the p99 of
/// each phase (the report's own figure, as in the table), the thresholds in force and
/// where each came from, and the money line. The first line starts `Verdict: `.
///
/// This is the one place a run is judged: the load generators' own verdicts in their
/// summaries are not read; the limits they were given are one source of thresholds
/// (see `thresholds`), judged here like the others.
pub fn verdict(run: &Run, a: &Analysis) -> Vec<String> {
    let j = judge(run, a);
    let mut v = vec![match j.outcome {
        Outcome::None => "Verdict: none (no loaded phase and no server account)".to_string(),
        Outcome::Passed => "Verdict: PASSED".to_string(),
        Outcome::Incomplete => format!("Verdict: INCOMPLETE: {}", j.gaps.join("; ")),
        Outcome::Failed => {
            let all: Vec<&str> = j.failed.iter().chain(&j.gaps).map(|s| s.as_str()).collect();
            format!("Verdict: FAILED: {}", all.join("; "))
        }
    }];
    let loaded = j.loaded;
    let money = j.money;
    if let Some(users) = j.users {
        let without = without_cut_short(run);
        v.push(format!("users connected at the end: {users}{without}"));
    }
    if !loaded.is_empty() {
        v.push(match j.held {
            Some(p) => format!(
                "highest rate held under the thresholds: {} shakes/s (phase {})",
                fmt_num(p.target_qps, 0),
                p.name
            ),
            None => "no phase held its target under the thresholds".into(),
        });
    }
    v.extend(p99_line(a));
    if !loaded.is_empty() {
        v.extend(threshold_lines(a, &loaded));
    }
    if let Some(m) = &money {
        v.push(m.sentence());
    }
    v
}

/// `thresholds: p99 <= 50 ms (default), ...`, then a line per loaded phase whose
/// limits differ from the run's.
fn threshold_lines(a: &Analysis, loaded: &[&PhaseStats]) -> Vec<String> {
    let mut v = vec![format!("thresholds: {}", a.limits.describe())];
    for p in loaded.iter().filter(|p| p.limits != a.limits) {
        v.push(format!(
            "thresholds of phase {}: {}",
            p.name,
            p.limits.describe()
        ));
    }
    v
}

/// What fails the run beyond its phases' thresholds and its money: untrusted input
/// the report refused, figures no run produces (never a pass), latency histograms that
/// could not be decoded (no real writer makes one).
fn failures(run: &Run, a: &Analysis) -> Vec<String> {
    let mut fails = Vec::new();
    if run.refused > 0 {
        fails.push(format!(
            "{} file(s) or name(s) of the run folder refused as unsafe (see what is missing \
             or damaged)",
            run.refused
        ));
    }
    if !run.implausible.is_empty() {
        fails.push(format!(
            "{} figure(s) no run can produce (see what is missing or damaged)",
            run.implausible.len()
        ));
    }
    if a.series.latency_undecodable > 0 {
        fails.push(format!(
            "{} per-second latency histogram(s) of loadgen.jsonl cannot be decoded (those \
             seconds keep the worst line's figures)",
            a.series.latency_undecodable
        ));
    }
    fails
}

/// What fails the run in its money: a ledger that does not balance, no account at all,
/// clients and servers that differ. (What cannot be judged is [`Reconciliation::gaps`].)
fn money_failures(m: &Reconciliation, fails: &mut Vec<String>) {
    if !m.unbalanced.is_empty() {
        fails.push(format!(
            "ledger NOT BALANCED on {}",
            m.unbalanced.join(", ")
        ));
    } else if !m.servers_balanced && m.unreconciled.is_empty() {
        fails.push("no server left its final account".into());
    }
    if m.agree() == Some(false) {
        fails.push("client and server money DIFFER".into());
    }
}

/// Load generators without a summary (killed, or their host lost) are left out of the
/// totals that only a summary gives: ` (without HOST: ...)`, or nothing.
fn without_cut_short(run: &Run) -> String {
    let cut: Vec<&str> = run
        .hosts
        .iter()
        .filter(|h| h.loadgen_cut_short())
        .map(|h| h.name.as_str())
        .collect();
    if cut.is_empty() {
        String::new()
    } else {
        format!(
            " (without {}: no summary.json, see what is missing)",
            cut.join(", ")
        )
    }
}

/// The loaded phase with the highest target that passed every threshold, its
/// achieved rate plausible (a rate no run can produce does not count).
fn highest_held<'a>(run: &Run, loaded: &[&'a PhaseStats]) -> Option<&'a PhaseStats> {
    let limit = sanity::rate_limit(run);
    loaded
        .iter()
        .copied()
        .filter(|p| p.judged.as_ref().is_some_and(|j| j.passed()))
        .filter(|p| sanity::plausible_rate(p.target_qps, limit))
        .filter(|p| {
            p.achieved_qps()
                .is_some_and(|r| sanity::plausible_rate(r, limit))
        })
        .max_by(|a, b| a.target_qps.total_cmp(&b.target_qps))
}

/// `latency, p99 of each phase: ...`, from the phase table; a phase that asked nothing
/// (connect, idle) has no latency of its own.
fn p99_line(a: &Analysis) -> Option<String> {
    let p99: Vec<String> = a
        .phases
        .iter()
        .filter(|p| p.target_qps > 0.0)
        .filter_map(|p| {
            let (_, c) = p.rows.iter().find(|(l, _)| l == "p99")?;
            c.value.map(|x| format!("{} {} ms", p.name, fmt_num(x, 2)))
        })
        .collect();
    (!p99.is_empty()).then(|| format!("latency, p99 of each phase: {}", p99.join(", ")))
}
