//! What every view of a run says first: the verdict, and the run's own lines (its id,
//! hosts, ledgers and money).
//!
//! The verdict weighs everything the lower layers found: the load generators'
//! thresholds, what [`super::sanity`] calls implausible, what was refused as unsafe, and
//! the money as [`super::money`] reconciles it. The terminal, report.md and report.html
//! print these same lines, each in its own markup.

use super::analyze::Analysis;
use super::load::{HostData, Role, Run};
use super::money::{self, Reconciliation};
use super::numbers::{fmt_num, MANY};
use super::sanity;
use redpacket_formats::{LoadgenSummary, PhaseSummary};

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

/// What a reader wants first: passed or failed (the load generators' thresholds, every
/// ledger, client against server money; `INCOMPLETE` when nothing failed but money
/// cannot be reconciled or the clients' total lacks a host), users, the highest rate held without an error
/// or timeout, the p99 of each phase (the report's own figure, as in the table) and the
/// money line. The first line starts `Verdict: `.
pub fn verdict(run: &Run, a: &Analysis) -> Vec<String> {
    let sums: Vec<&LoadgenSummary> = run
        .hosts
        .iter()
        .filter_map(|h| h.summary.as_ref())
        .collect();
    let money = money::reconcile(run);
    let mut fails = failures(run, &sums);
    let gaps = match &money {
        Some(m) => {
            money_failures(m, &mut fails);
            m.gaps()
        }
        None => Vec::new(),
    };
    let mut v = vec![if sums.is_empty() && money.is_none() && fails.is_empty() {
        "Verdict: none (no load generator summary and no server account)".to_string()
    } else if fails.is_empty() && gaps.is_empty() {
        "Verdict: PASSED".to_string()
    } else if fails.is_empty() {
        format!("Verdict: INCOMPLETE: {}", gaps.join("; "))
    } else {
        fails.extend(gaps);
        format!("Verdict: FAILED: {}", fails.join("; "))
    }];
    if !sums.is_empty() {
        let without = without_cut_short(run);
        let users = sums
            .iter()
            .fold(0u64, |n, s| n.saturating_add(s.connections.connected));
        v.push(format!("users connected at the end: {users}{without}"));
        v.push(match highest_clean_rate(run, a, &sums) {
            Some((n, r)) => format!(
                "highest rate held without an error or timeout: {} shakes/s (phase {n}){without}",
                fmt_num(r, 0)
            ),
            None => "no phase ran without an error or timeout".into(),
        });
    }
    v.extend(p99_line(a));
    if let Some(m) = &money {
        v.push(m.sentence());
    }
    v
}

/// What fails the run before its money is looked at: the load generators' own
/// failures, untrusted input the report refused, figures no run produces (never a
/// pass), and a load generator that did not pass without saying why.
fn failures(run: &Run, sums: &[&LoadgenSummary]) -> Vec<String> {
    let mut fails: Vec<String> = sums
        .iter()
        .flat_map(|s| s.verdict.failures.iter().cloned())
        .collect();
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
    if fails.is_empty() && sums.iter().any(|s| !s.verdict.passed) {
        fails.push("a load generator did not pass".into());
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

/// The phase with the highest rate the load generators held without an error or a
/// timeout (a rate no run can produce does not count), and that rate.
fn highest_clean_rate(run: &Run, a: &Analysis, sums: &[&LoadgenSummary]) -> Option<(String, f64)> {
    let mut best: Option<(String, f64)> = None;
    let limit = sanity::rate_limit(run);
    for p in &a.phases {
        let mine: Vec<&PhaseSummary> = sums
            .iter()
            .filter_map(|s| s.phases.iter().find(|q| q.name == p.name))
            .collect();
        let clean = mine.iter().all(|q| q.errors == 0 && q.timeouts == 0);
        let rate: f64 = mine.iter().map(|q| q.achieved_qps).sum();
        let plausible = sanity::plausible_rate(rate, limit);
        if !mine.is_empty() && clean && plausible && best.as_ref().is_none_or(|b| rate > b.1) {
            best = Some((p.name.clone(), rate));
        }
    }
    best
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
