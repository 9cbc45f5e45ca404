//! What a run writes: one JSON line per second, the summary, the histograms, and the
//! table on stdout.
//!
//! The file formats are the `redpacket` crate's ([`redpacket_formats`]), the very
//! types the report reads; this module fills them from the load generator's counters.

use crate::metrics::{Counts, Tally};
use redpacket_formats::{
    histograms, ConnEvents, Connections, HistogramsFile, Latency, LoadgenLine, LoadgenSummary,
    Packets, PhaseHistogram, PhaseSummary, Verdict,
};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// Connection figures of a run: the gauge and the counters.
pub fn connections(c: &Counts, connected: u64) -> Connections {
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

/// One line of `loadgen.jsonl` from one second's tally.
#[allow(clippy::too_many_arguments)]
pub fn second_line(
    t: f64,
    interval_s: f64,
    phase: &str,
    target_qps: f64,
    tally: &Tally,
    connected: u64,
    inflight: u64,
    connections_by_addr: BTreeMap<String, u64>,
) -> LoadgenLine {
    let c = &tally.counts;
    let conn = connections(c, connected);
    LoadgenLine {
        t,
        interval_s,
        phase: phase.to_string(),
        target_qps,
        scheduled: c.scheduled,
        sent: c.sent,
        answered: c.answered(),
        got: c.results.got,
        none: c.results.none,
        overloaded: c.results.overloaded,
        errors: c.errors(),
        timeouts: c.timeouts,
        late: c.late,
        connections: connected,
        connections_by_addr,
        inflight,
        latency_ms: Latency::of(&tally.latency),
        // Empty when nothing was answered: nothing to merge.
        latency_hist: if tally.latency.is_empty() {
            String::new()
        } else {
            redpacket_formats::histograms::encode(&tally.latency).unwrap_or_default()
        },
        error_kinds: c.error_kinds(),
        packets: c.packets,
        conn_events: ConnEvents {
            connects: conn.connects,
            disconnects: conn.disconnects,
            failed: conn.failed,
        },
    }
}

/// Appends one line to `loadgen.jsonl` and flushes it (a reader may follow the file).
pub fn write_line(w: &mut impl Write, line: &LoadgenLine) -> std::io::Result<()> {
    let s = serde_json::to_string(line).map_err(std::io::Error::other)?;
    writeln!(w, "{s}")?;
    w.flush()
}

/// One phase of `summary.json` from the phase's tally.
pub fn phase_summary(name: &str, target_qps: f64, start: f64, end: f64, t: &Tally) -> PhaseSummary {
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
        results: c.answers(),
        error_kinds: c.error_kinds(),
        packets: c.packets,
        latency_ms: Latency::of(&t.latency),
    }
}

pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Writes `summary.json` into `dir`.
pub fn write_summary(dir: &Path, s: &LoadgenSummary) -> Result<(), String> {
    let text = serde_json::to_string_pretty(s).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("summary.json"), text + "\n")
        .map_err(|e| format!("cannot write summary.json: {e}"))
}

/// Writes `histograms.json` into `dir`: each phase's whole latency histogram, `(name,
/// start, end, tally)` in plan order.
pub fn write_histograms(dir: &Path, phases: &[(String, f64, f64, &Tally)]) -> Result<(), String> {
    let phases = phases
        .iter()
        .map(|(n, s, e, t)| PhaseHistogram::new(n, *s, *e, &t.latency))
        .collect::<Result<Vec<_>, _>>()?;
    let text =
        serde_json::to_string_pretty(&HistogramsFile::new(phases)).map_err(|e| e.to_string())?;
    std::fs::write(dir.join(histograms::FILE), text + "\n")
        .map_err(|e| format!("cannot write {}: {e}", histograms::FILE))
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

/// The summary as a table for people: a row per phase, then a line each for the
/// users, the money and the thresholds.
pub fn table(s: &LoadgenSummary) -> String {
    let mut o = phase_rows(&s.phases);
    o.push_str(&users_line(s));
    o.push_str(&money_line(s));
    if s.verdict.passed {
        o.push_str("thresholds: passed\n");
    } else {
        for f in &s.verdict.failures {
            o.push_str(&format!("threshold missed: {f}\n"));
        }
    }
    o
}

/// The header and a row per phase: rates, counts and latency percentiles.
fn phase_rows(phases: &[PhaseSummary]) -> String {
    let mut o = format!(
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
    );
    let ms = |x: Option<f64>| x.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
    for p in phases {
        let l = &p.latency_ms;
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
    o
}

/// Users: connected at the end, logins, losses, the ramp and failed attempts.
fn users_line(s: &LoadgenSummary) -> String {
    let c = &s.connections;
    let failed: Vec<String> = c
        .failed
        .iter()
        .filter(|(_, v)| **v > 0)
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let late = match s.users_not_connected_at_start {
        0 => String::new(),
        n => format!(" ({n} not yet connected when load began)"),
    };
    format!(
        "users {}: {} connected at the end, {} logins, {} lost, ramp {:.1} s{late}, failed attempts: {}\n",
        s.users,
        c.connected,
        c.connects,
        c.disconnects,
        s.connect_s,
        if failed.is_empty() { "none".to_string() } else { failed.join(", ") }
    )
}

/// Money: what clients won, grabbed and sent, and whether the servers agree.
fn money_line(s: &LoadgenSummary) -> String {
    let m = &s.money;
    let tot = s.phases.iter().fold(Packets::default(), |mut a, p| {
        a.notified += p.packets.notified;
        a.grab_won += p.packets.grab_won;
        a.send_ok += p.packets.send_ok;
        a
    });
    format!(
        "money (cents): won {} grabbed {} sent {} | notifications {} grabs won {} sends ok {} | {}\n",
        m.client_won_cents, m.client_grabbed_cents, m.client_sent_cents, tot.notified, tot.grab_won, tot.send_ok,
        match m.reconciled {
            Some(true) => "reconciled with the server: exact".to_string(),
            Some(false) => format!("NOT reconciled: {}", m.note),
            None => m.note.clone(),
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_fail_when_missed() {
        let mut t = Tally::default();
        t.counts.scheduled = 100;
        t.counts.sent = 100;
        t.counts.results.none = 98;
        t.counts.timeouts = 2;
        for _ in 0..98 {
            t.record_us(5_000);
        }
        let p = phase_summary("a", 100.0, 0.0, 1.0, &t);
        assert_eq!(p.achieved_qps, 100.0);
        assert!((p.error_rate - 0.02).abs() < 1e-9);
        assert!(judge(std::slice::from_ref(&p), Some(10.0), Some(0.05)).passed);
        let v = judge(std::slice::from_ref(&p), Some(1.0), Some(0.01));
        assert_eq!(v.failures.len(), 2, "{v:?}");
        assert!(!v.passed);
        assert!(judge(&[p], None, None).passed);
    }
}

/// The writer's path (these functions) into a run folder, the report's path out of it:
/// every field must come back as written, and every field of the committed example
/// run's files must still be written (a renamed or dropped field fails here).
#[cfg(test)]
mod format_tests {
    use super::*;
    use redpacket_formats::Money;
    use serde_json::Value;

    /// A tally whose counters are all different and non-zero.
    fn distinct_tally() -> Tally {
        /// Sets every number in `v` to a distinct value.
        fn number(v: &mut Value, i: &mut u64) {
            match v {
                Value::Object(m) => m.values_mut().for_each(|x| number(x, i)),
                Value::Array(a) => a.iter_mut().for_each(|x| number(x, i)),
                _ => {
                    *i += 1;
                    *v = Value::from(*i * 7 + 3);
                }
            }
        }
        let mut v = serde_json::to_value(Counts::default()).unwrap();
        number(&mut v, &mut 0);
        let mut t = Tally {
            counts: serde_json::from_value(v).unwrap(),
            ..Tally::default()
        };
        for us in [120, 450, 900, 15_000, 2_000_000] {
            t.record_us(us);
        }
        t
    }

    /// Every key path of a JSON value (`a.b.c`), map keys of free-form maps included.
    fn keys(v: &Value, prefix: &str, out: &mut Vec<String>) {
        if let Value::Object(m) = v {
            for (k, x) in m {
                let p = format!("{prefix}{k}");
                keys(x, &format!("{p}."), out);
                out.push(p);
            }
        }
        if let Value::Array(a) = v {
            if let Some(x) = a.first() {
                keys(x, &format!("{prefix}[]."), out);
            }
        }
    }

    #[test]
    fn written_files_read_back_field_for_field() {
        let run = redpacket_testkit::scratch::fresh_in(&std::env::temp_dir(), "loadgen", "formats");
        let dir = run.join("client1");
        std::fs::create_dir_all(&dir).unwrap();
        let t = distinct_tally();
        let by_addr: BTreeMap<String, u64> = [("127.0.0.2".into(), 11), ("127.0.0.3".into(), 12)]
            .into_iter()
            .collect();
        let line = second_line(1_795_000_001.0, 0.999, "p1", 1234.5, &t, 97, 5, by_addr);
        let mut f = std::fs::File::create(dir.join("loadgen.jsonl")).unwrap();
        write_line(&mut f, &line).unwrap();
        drop(f);
        let phase = phase_summary("p1", 1234.5, 1_795_000_000.0, 1_795_000_001.0, &t);
        let summary = LoadgenSummary {
            users: "0..100".into(),
            phases: vec![phase],
            connections: connections(&t.counts, 97),
            connect_s: 1.25,
            start_at: Some(1_795_000_000.0),
            users_not_connected_at_start: 3,
            late_child_records: 2,
            money: Money {
                client_won_cents: 1,
                client_grabbed_cents: 2,
                client_sent_cents: 3,
                server_won_cents: Some(1),
                server_grabbed_cents: Some(2),
                server_created_cents: Some(4),
                reconciled: Some(true),
                note: "n".into(),
            },
            verdict: judge(&[], Some(5.0), Some(0.5)),
        };
        write_summary(&dir, &summary).unwrap();
        write_histograms(&dir, &[("p1".into(), 1.0, 2.0, &t)]).unwrap();

        let back = redpacket_report::load(&run).unwrap();
        let h = &back.hosts[0];
        assert_eq!(h.loadgen, std::slice::from_ref(&line));
        assert_eq!(h.summary.as_ref(), Some(&summary));
        assert_eq!(h.histograms.as_ref().unwrap()["p1"], t.latency);
        // No field silently at its default: what was written was not zeros.
        let lv = serde_json::to_value(&line).unwrap();
        let mut lk = Vec::new();
        keys(&lv, "", &mut lk);
        assert!(lk.len() > 40, "{lk:?}");
        std::fs::remove_dir_all(&run).unwrap();

        // Every field of the committed example run is still written, under its name.
        let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../results/examples/20261126-141159-demo/vm");
        let old_line: Value = serde_json::from_str(
            std::fs::read_to_string(example.join("loadgen.jsonl"))
                .unwrap()
                .lines()
                .nth(5)
                .unwrap(),
        )
        .unwrap();
        let old_summary: Value =
            serde_json::from_str(&std::fs::read_to_string(example.join("summary.json")).unwrap())
                .unwrap();
        let sv = serde_json::to_value(&summary).unwrap();
        for (old, new, what) in [
            (&old_line, &lv, "loadgen.jsonl"),
            (&old_summary, &sv, "summary.json"),
        ] {
            let (mut o, mut n) = (Vec::new(), Vec::new());
            keys(old, "", &mut o);
            keys(new, "", &mut n);
            let lost: Vec<&String> = o.iter().filter(|k| !n.contains(k)).collect();
            assert!(
                lost.is_empty(),
                "{what}: fields no longer written: {lost:?}"
            );
        }
    }
}
