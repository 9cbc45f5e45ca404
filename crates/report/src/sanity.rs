//! Figures no run can produce, named as problems that fail the verdict.
//!
//! A host's files can claim anything: a rate of 1e308 (which would become a 300-digit
//! "highest rate held"), money of `u64::MAX` on both sides (which would "agree"), phases
//! that run backwards or overlap. Each figure is held against what the run itself
//! allows rather than against what is typical, so a real run at any scale passes: a
//! rate against the run's own targets ([`RATE_FACTOR`] times the highest, never less
//! than [`RATE_FLOOR`]), money against what the servers issued and created and against
//! [`MONEY_CAP_CENTS`], phase times against each other. Each finding is one sentence;
//! [`crate::load`] lists them with the problems and the verdict fails on any.

use std::collections::BTreeMap;

use super::load::{HostData, Run, ServerLog};
use super::numbers::fmt_num;
use redpacket_formats::{Latency, LoadgenSummary};

/// How far beyond the run's highest target a rate may go before no run could have
/// produced it: two orders of magnitude (a load generator sends its target, a server
/// answers what it is sent).
pub const RATE_FACTOR: f64 = 100.0;
/// Shakes per second below which no rate is called implausible, whatever the targets
/// (a run without targets, a connect phase).
pub const RATE_FLOOR: f64 = 100_000.0;
/// The highest target a run may ask, shakes per second: the old article's 10 billion
/// shakes in 5 minutes is 33 million a second; this is thirty times that.
pub const MAX_TARGET_QPS: f64 = 1e9;
/// Money no run hands out, cents: 100 billion yuan.
pub const MONEY_CAP_CENTS: u64 = 10_000_000_000_000;
/// Phases may touch; an overlap up to this many seconds is clock noise, not an overlap
/// (the report places lines to the second).
pub const OVERLAP_SLACK_S: f64 = 0.5;

/// The fastest rate, shakes per second, a run with these targets could produce: the
/// targets of `run.json`, or of the load generators' summaries when it has none.
pub fn rate_limit(run: &Run) -> f64 {
    let planned = run.meta.phases.iter().map(|p| p.target_qps);
    let summaries = run
        .hosts
        .iter()
        .filter_map(|h| h.summary.as_ref())
        .flat_map(|s| s.phases.iter().map(|p| p.target_qps));
    let targets: Vec<f64> = if run.meta.phases.is_empty() {
        summaries.collect()
    } else {
        planned.collect()
    };
    let top = targets
        .into_iter()
        .filter(|t| plausible_target(*t))
        .fold(0.0, f64::max);
    (RATE_FACTOR * top).max(RATE_FLOOR)
}

fn plausible_target(t: f64) -> bool {
    t.is_finite() && (0.0..=MAX_TARGET_QPS).contains(&t)
}

/// Whether a rate (shakes per second) could come from a run whose limit is `limit`.
pub fn plausible_rate(r: f64, limit: f64) -> bool {
    r.is_finite() && (0.0..=limit).contains(&r)
}

/// Every implausible figure of the run, one sentence each.
pub fn implausible(run: &Run) -> Vec<String> {
    let mut v = Vec::new();
    phases(run, &mut v);
    let limit = rate_limit(run);
    for h in &run.hosts {
        if let Some(s) = &h.summary {
            loadgen_summary(&h.name, s, limit, &mut v);
        }
        loadgen_lines(h, limit, &mut v);
        for log in &h.servers {
            let label = log.label(&h.name);
            server_lines(&label, log, limit, &mut v);
            server_accounts(&label, log, &mut v);
        }
    }
    clients_within_issued(run, &mut v);
    v
}

/// A load generator's `summary.json`: each phase's rate, length, counts and latency,
/// then its money.
fn loadgen_summary(host: &str, s: &LoadgenSummary, limit: f64, v: &mut Vec<String>) {
    for p in &s.phases {
        let what = format!("host {host}: summary.json, phase {}", p.name);
        if !plausible_rate(p.achieved_qps, limit) || !plausible_target(p.target_qps) {
            v.push(format!(
                "{what}: a rate of {:e} shakes/s (target {:e}) is beyond anything this \
                 run could produce (at most {} shakes/s)",
                p.achieved_qps,
                p.target_qps,
                fmt_num(limit, 0)
            ));
        }
        let secs = p.end - p.start;
        if !secs.is_finite() || secs < 0.0 {
            v.push(format!("{what}: runs backwards ({secs:.0} s long)"));
        } else {
            let most = limit * secs.max(1.0);
            let counts = [p.scheduled, p.sent, p.answered, p.errors, p.timeouts];
            if counts.iter().any(|c| *c as f64 > most) {
                v.push(format!(
                    "{what}: counts above {} (the limit of {} shakes/s over {secs:.0} \
                     s) are beyond anything this run could produce",
                    fmt_num(most, 0),
                    fmt_num(limit, 0)
                ));
            }
        }
        if !plausible_latency(&p.latency_ms) {
            v.push(format!("{what}: a latency below zero"));
        }
    }
    let m = &s.money;
    if [
        m.client_won_cents,
        m.client_grabbed_cents,
        m.client_sent_cents,
    ]
    .iter()
    .any(|c| *c > MONEY_CAP_CENTS)
    {
        v.push(format!(
            "host {host}: summary.json money above {MONEY_CAP_CENTS} cents (100 \
             billion yuan), more than any run hands out"
        ));
    }
}

/// The seconds a per-second line covers: its interval, or one when it has none.
fn interval(interval_s: f64) -> f64 {
    if interval_s > 0.0 {
        interval_s
    } else {
        1.0
    }
}

/// A load generator's per-second lines: one sentence for all the lines whose target,
/// rates or latency no run produces.
fn loadgen_lines(h: &HostData, limit: f64, v: &mut Vec<String>) {
    let odd = h
        .loadgen
        .iter()
        .filter(|l| {
            let dt = interval(l.interval_s);
            !plausible_target(l.target_qps)
                || [l.sent, l.answered, l.errors, l.timeouts]
                    .iter()
                    .any(|c| !plausible_rate(*c as f64 / dt, limit))
                || !plausible_latency(&l.latency_ms)
        })
        .count();
    if odd > 0 {
        v.push(format!(
            "host {}: loadgen.jsonl has {odd} line(s) with a rate beyond anything this \
             run could produce (at most {} shakes/s) or a latency below zero",
            h.name,
            fmt_num(limit, 0)
        ));
    }
}

/// A server's per-second lines: one sentence for all the lines with a shake rate no run
/// produces.
fn server_lines(label: &str, log: &ServerLog, limit: f64, v: &mut Vec<String>) {
    let odd = log
        .lines
        .iter()
        .filter(|l| {
            let dt = interval(l.interval_s);
            !plausible_rate(l.per_second.requests.shake as f64 / dt, limit)
        })
        .count();
    if odd > 0 {
        v.push(format!(
            "host {label}: server.jsonl has {odd} line(s) with a shake rate beyond \
             anything this run could produce (at most {} shakes/s)",
            fmt_num(limit, 0)
        ));
    }
}

/// A server's final accounts (its last life's and its earlier clean lives'): money
/// over the cap, or more handed out than there was.
fn server_accounts(label: &str, log: &ServerLog, v: &mut Vec<String>) {
    let accounts = log
        .summary
        .iter()
        .map(|a| ("server-summary.json".to_string(), a))
        .chain(
            log.earlier
                .iter()
                .map(|(n, a)| (format!("life {n}'s account"), a)),
        );
    for (what, a) in accounts {
        let (shake, send) = (&a.stats.shake, &a.stats.send);
        let over = [
            shake.issued_cents,
            shake.won_cents,
            send.created_cents,
            send.grabbed_cents,
        ]
        .iter()
        .any(|c| *c > MONEY_CAP_CENTS);
        if over {
            v.push(format!(
                "host {label}: {what}: money above {MONEY_CAP_CENTS} cents (100 billion \
                 yuan), more than any run hands out"
            ));
        }
        if shake.won_cents > shake.issued_cents || send.grabbed_cents > send.created_cents {
            v.push(format!(
                "host {label}: {what}: more money won or grabbed ({} and {} cents) than \
                 issued or created ({} and {})",
                shake.won_cents, send.grabbed_cents, shake.issued_cents, send.created_cents
            ));
        }
    }
}

fn plausible_latency(l: &Latency) -> bool {
    [l.p50, l.p90, l.p99, l.p999, l.max]
        .iter()
        .flatten()
        .all(|x| x.is_finite() && *x >= 0.0)
}

/// `run.json`'s phases: targets a run can ask, times forward, names once, no overlap.
fn phases(run: &Run, v: &mut Vec<String>) {
    let ps = &run.meta.phases;
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for p in ps {
        *names.entry(p.name.as_str()).or_default() += 1;
        if !plausible_target(p.target_qps) {
            v.push(format!(
                "run.json: phase {} asks {:e} shakes/s, beyond any run (at most {:e})",
                p.name, p.target_qps, MAX_TARGET_QPS
            ));
        }
        if !(p.end - p.start).is_finite() || p.end < p.start {
            v.push(format!(
                "run.json: phase {} runs backwards: it ends {:.1} s before it starts",
                p.name,
                p.start - p.end
            ));
        }
    }
    for (name, n) in names.into_iter().filter(|(_, n)| *n > 1) {
        v.push(format!(
            "run.json: phase name {name} is used by {n} phases: its figures cannot be told apart"
        ));
    }
    let mut forward: Vec<_> = ps.iter().filter(|p| p.end >= p.start).collect();
    forward.sort_by(|a, b| a.start.total_cmp(&b.start));
    for w in forward.windows(2) {
        let overlap = w[0].end - w[1].start;
        if overlap > OVERLAP_SLACK_S {
            v.push(format!(
                "run.json: phases {} and {} overlap by {overlap:.1} s: their counts would be \
                 counted twice",
                w[0].name, w[1].name
            ));
        }
    }
}

/// The load generators cannot have seen more won than the servers issued, nor more
/// grabbed than the servers' senders created.
fn clients_within_issued(run: &Run, v: &mut Vec<String>) {
    let accounts: Vec<_> = run
        .hosts
        .iter()
        .flat_map(|h| &h.servers)
        .flat_map(|log| log.summary.iter().chain(log.earlier.iter().map(|(_, a)| a)))
        .collect();
    let complete = run
        .hosts
        .iter()
        .flat_map(|h| &h.servers)
        .all(|log| log.summary.is_some() && log.lost_lives().is_empty());
    if accounts.is_empty() || !complete {
        return;
    }
    let sum = |f: &dyn Fn(&redpacket_formats::ServerSummary) -> u64| -> u128 {
        accounts.iter().map(|a| u128::from(f(a))).sum()
    };
    let issued = sum(&|a| a.stats.shake.issued_cents);
    let created = sum(&|a| a.stats.send.created_cents);
    let (won, grabbed): (u128, u128) =
        run.hosts
            .iter()
            .filter_map(|h| h.summary.as_ref())
            .fold((0, 0), |(w, g), s| {
                (
                    w + u128::from(s.money.client_won_cents),
                    g + u128::from(s.money.client_grabbed_cents),
                )
            });
    if won > issued || grabbed > created {
        v.push(format!(
            "the load generators saw {won} cents won and {grabbed} grabbed, more than every \
             server together issued ({issued}) and created ({created})"
        ));
    }
}
