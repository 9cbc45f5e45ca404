//! What a run writes: one JSON line per second, the summary, and the table on stdout.
//!
//! These structs *are* the file formats (documented in the README with their units);
//! the report tool reads them, so fields are only ever added, never renamed.

use crate::metrics::{Counts, Percentiles, Tally};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Shake answers by result.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Answered {
    pub total: u64,
    pub got: u64,
    pub none: u64,
    pub overloaded: u64,
}

/// Requests that went wrong, by kind (timeouts are counted apart).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Errors {
    pub total: u64,
    pub not_connected: u64,
    pub dropped: u64,
    pub bad_answer: u64,
    pub write_failed: u64,
}

/// Notifications, grabs and client sends.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Packets {
    pub notified: u64,
    pub grabs: u64,
    pub grab_won: u64,
    pub grab_denied: u64,
    pub sends: u64,
    pub send_ok: u64,
    pub send_refused: u64,
    pub won_cents: u64,
    pub grabbed_cents: u64,
    pub sent_cents: u64,
}

/// Connection figures: a gauge and counters.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Connections {
    /// Users logged in now (gauge).
    pub connected: u64,
    /// Logins completed, connections lost after login.
    pub connects: u64,
    pub disconnects: u64,
    /// Failed connect or login attempts by reason.
    pub failed: BTreeMap<String, u64>,
}

impl Connections {
    pub fn of(c: &Counts, connected: u64) -> Connections {
        Connections {
            connected,
            connects: c.connects,
            disconnects: c.disconnects,
            failed: c
                .failures()
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        }
    }
}

fn answered(c: &Counts) -> Answered {
    Answered {
        total: c.answered(),
        got: c.got,
        none: c.none,
        overloaded: c.overloaded,
    }
}

fn errors(c: &Counts) -> Errors {
    Errors {
        total: c.errors(),
        not_connected: c.not_connected,
        dropped: c.dropped,
        bad_answer: c.bad_answer,
        write_failed: c.write_failed,
    }
}

fn packets(c: &Counts) -> Packets {
    Packets {
        notified: c.notified,
        grabs: c.grabs,
        grab_won: c.grab_won,
        grab_denied: c.grab_denied,
        sends: c.sends,
        send_ok: c.send_ok,
        send_refused: c.send_refused,
        won_cents: c.won_cents,
        grabbed_cents: c.grabbed_cents,
        sent_cents: c.sent_cents,
    }
}

/// Connection events of one second (the gauge is `SecondLine::connections`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ConnEvents {
    pub connects: u64,
    pub disconnects: u64,
    pub failed: BTreeMap<String, u64>,
}

/// One line of `loadgen.jsonl`: what happened in one second. The flat fields are the
/// run-folder schema (`results/README.md`, schema 1); the objects after them add detail.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SecondLine {
    /// Unix time at the end of the interval, seconds.
    pub t: f64,
    /// Seconds the counts cover (about 1).
    pub interval_s: f64,
    pub phase: String,
    /// This process tree's target shakes per second at the end of the interval.
    pub target_qps: f64,
    pub scheduled: u64,
    pub sent: u64,
    /// got + none + overloaded.
    pub answered: u64,
    pub got: u64,
    pub none: u64,
    pub overloaded: u64,
    /// Failed requests (the kinds are in `error_kinds`), timeouts apart.
    pub errors: u64,
    pub timeouts: u64,
    pub late: u64,
    /// Users logged in now (gauge).
    pub connections: u64,
    /// Users logged in now by source address (gauge), with `--source-addrs`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub connections_by_addr: BTreeMap<String, u64>,
    /// Requests awaiting an answer plus grabs awaiting their think time (gauge).
    pub inflight: u64,
    /// Latency of the shakes answered in the interval, milliseconds.
    pub latency_ms: Percentiles,
    pub error_kinds: Errors,
    pub packets: Packets,
    pub conn_events: ConnEvents,
}

impl SecondLine {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        t: f64,
        interval_s: f64,
        phase: &str,
        target_qps: f64,
        tally: &Tally,
        connected: u64,
        inflight: u64,
    ) -> Self {
        let c = &tally.counts;
        let conn = Connections::of(c, connected);
        SecondLine {
            t,
            interval_s,
            phase: phase.to_string(),
            target_qps,
            scheduled: c.scheduled,
            sent: c.sent,
            answered: c.answered(),
            got: c.got,
            none: c.none,
            overloaded: c.overloaded,
            errors: c.errors(),
            timeouts: c.timeouts,
            late: c.late,
            connections: connected,
            connections_by_addr: BTreeMap::new(),
            inflight,
            latency_ms: Percentiles::of(&tally.latency),
            error_kinds: errors(c),
            packets: packets(c),
            conn_events: ConnEvents {
                connects: conn.connects,
                disconnects: conn.disconnects,
                failed: conn.failed,
            },
        }
    }
}

/// One phase in `summary.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PhaseSummary {
    pub name: String,
    pub target_qps: f64,
    /// Shakes sent per second of the phase's wall time.
    pub achieved_qps: f64,
    /// Unix times, seconds (fractional).
    pub start: f64,
    pub end: f64,
    pub scheduled: u64,
    pub sent: u64,
    pub answered: u64,
    pub errors: u64,
    pub timeouts: u64,
    /// (errors + timeouts) / scheduled.
    pub error_rate: f64,
    pub results: Answered,
    pub error_kinds: Errors,
    pub packets: Packets,
    pub latency_ms: Percentiles,
}

impl PhaseSummary {
    pub fn new(name: &str, target_qps: f64, start: f64, end: f64, t: &Tally) -> Self {
        let c = &t.counts;
        let secs = (end - start).max(1e-9);
        let bad = c.errors() + c.timeouts;
        PhaseSummary {
            name: name.to_string(),
            target_qps,
            achieved_qps: round2(c.sent as f64 / secs),
            start,
            end,
            scheduled: c.scheduled,
            sent: c.sent,
            answered: c.answered(),
            errors: c.errors(),
            timeouts: c.timeouts,
            error_rate: if c.scheduled == 0 {
                0.0
            } else {
                bad as f64 / c.scheduled as f64
            },
            results: answered(c),
            error_kinds: errors(c),
            packets: packets(c),
            latency_ms: Percentiles::of(&t.latency),
        }
    }
}

pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Cents seen on each side, and whether they agree.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Money {
    /// Cents won by shakes (result 14), as clients saw them.
    pub client_won_cents: u64,
    /// Cents granted to grabs, as clients saw them.
    pub client_grabbed_cents: u64,
    /// Cents of client sends the server accepted.
    pub client_sent_cents: u64,
    /// The same from the servers' `/stats` (summed), when `--server-control` was given.
    pub server_won_cents: Option<u64>,
    pub server_grabbed_cents: Option<u64>,
    pub server_created_cents: Option<u64>,
    /// Both sides agree on won and grabbed cents; `None` when not checked.
    pub reconciled: Option<bool>,
    pub note: String,
}

/// Thresholds and how the run fared against them.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Verdict {
    pub max_p99_ms: Option<f64>,
    pub max_error_rate: Option<f64>,
    pub passed: bool,
    pub failures: Vec<String>,
}

/// `summary.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    pub users: String,
    pub phases: Vec<PhaseSummary>,
    pub connections: Connections,
    /// Seconds from the first connect to the last login of the ramp.
    pub connect_s: f64,
    pub money: Money,
    pub verdict: Verdict,
}

/// Checks every phase against the thresholds.
pub fn judge(
    phases: &[PhaseSummary],
    max_p99_ms: Option<f64>,
    max_error_rate: Option<f64>,
) -> Verdict {
    let mut failures = Vec::new();
    for p in phases {
        if let Some(m) = max_p99_ms {
            let p99 = p.latency_ms.p99.unwrap_or(0.0);
            if p99 > m {
                failures.push(format!("phase {}: p99 {p99:.3} ms > {m} ms", p.name));
            }
        }
        if let Some(m) = max_error_rate {
            if p.error_rate > m {
                failures.push(format!(
                    "phase {}: error rate {:.5} > {m}",
                    p.name, p.error_rate
                ));
            }
        }
    }
    Verdict {
        max_p99_ms,
        max_error_rate,
        passed: failures.is_empty(),
        failures,
    }
}

/// The summary as a table for people.
pub fn table(s: &Summary) -> String {
    let mut o = String::new();
    o.push_str(&format!(
        "{:<10} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}\n",
        "phase",
        "target/s",
        "achieved/s",
        "sent",
        "answered",
        "errors",
        "timeouts",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p999 ms",
        "max ms"
    ));
    for p in &s.phases {
        let l = &p.latency_ms;
        let ms = |x: Option<f64>| x.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
        o.push_str(&format!(
            "{:<10} {:>10.0} {:>10.1} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}\n",
            p.name,
            p.target_qps,
            p.achieved_qps,
            p.sent,
            p.answered,
            p.errors,
            p.timeouts,
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.max)
        ));
    }
    let c = &s.connections;
    let failed: Vec<String> = c
        .failed
        .iter()
        .filter(|(_, v)| **v > 0)
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    o.push_str(&format!(
        "users {}: {} connected at the end, {} logins, {} lost, ramp {:.1} s, failed attempts: {}\n",
        s.users,
        c.connected,
        c.connects,
        c.disconnects,
        s.connect_s,
        if failed.is_empty() { "none".to_string() } else { failed.join(", ") }
    ));
    let m = &s.money;
    let tot = s.phases.iter().fold(Packets::default(), |mut a, p| {
        a.notified += p.packets.notified;
        a.grab_won += p.packets.grab_won;
        a.send_ok += p.packets.send_ok;
        a
    });
    o.push_str(&format!(
        "money (cents): won {} grabbed {} sent {} | notifications {} grabs won {} sends ok {} | {}\n",
        m.client_won_cents, m.client_grabbed_cents, m.client_sent_cents, tot.notified, tot.grab_won, tot.send_ok,
        match m.reconciled {
            Some(true) => "reconciled with the server: exact".to_string(),
            Some(false) => format!("NOT reconciled: {}", m.note),
            None => m.note.clone(),
        }
    ));
    if s.verdict.passed {
        o.push_str("thresholds: passed\n");
    } else {
        for f in &s.verdict.failures {
            o.push_str(&format!("threshold missed: {f}\n"));
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_fail_when_missed() {
        let mut t = Tally::default();
        t.counts.scheduled = 100;
        t.counts.sent = 100;
        t.counts.none = 98;
        t.counts.timeouts = 2;
        for _ in 0..98 {
            t.record_us(5_000);
        }
        let p = PhaseSummary::new("a", 100.0, 0.0, 1.0, &t);
        assert_eq!(p.achieved_qps, 100.0);
        assert!((p.error_rate - 0.02).abs() < 1e-9);
        assert!(judge(std::slice::from_ref(&p), Some(10.0), Some(0.05)).passed);
        let v = judge(std::slice::from_ref(&p), Some(1.0), Some(0.01));
        assert_eq!(v.failures.len(), 2, "{v:?}");
        assert!(!v.passed);
        assert!(judge(&[p], None, None).passed);
    }
}
