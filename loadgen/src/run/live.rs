//! What `GET /metrics` serves: a cumulative record of the run, which the coordinator
//! adds each second's tally to (the same tally its per-second line is written from; a
//! `--procs` parent's already holds its children's), and the metric families rendered
//! from it with [`crate::prometheus`].
//!
//! The handler only reads the record, under a lock held for the rendering; no worker
//! ever takes that lock. Counters are therefore at most a second behind the workers.
//! The sections shared with the file format (answers, errors) are labelled by their
//! own field names, read through serde, so that a counter added there shows here
//! without a second list.

use crate::metrics::{Counts, Tally};
use crate::prometheus::{Buckets, Exposition};
use serde::Serialize;

/// Every metric's name begins so.
const PREFIX: &str = "redpacket_loadgen_";

/// The run so far, as `/metrics` shows it.
#[derive(Clone, Debug, Default)]
pub struct Live {
    /// Everything counted since the run began.
    pub counts: Counts,
    /// Latency of the shakes answered in time, since the run began.
    pub latency: Buckets,
    /// The phase running.
    pub phase: String,
    /// This process tree's target shakes per second.
    pub target_qps: f64,
}

impl Live {
    /// Adds a second's tally; `phase` and `target_qps` are those of the moment.
    pub fn add(&mut self, t: &Tally, phase: &str, target_qps: f64) {
        self.counts.add(&t.counts);
        self.latency.add_us_histogram(&t.latency);
        phase.clone_into(&mut self.phase);
        self.target_qps = target_qps;
    }

    /// The exposition, with the live gauges `connected` and `inflight`.
    pub fn render(&self, connected: u64, inflight: u64) -> String {
        let c = &self.counts;
        let p = &c.packets;
        let n = |s: &str| format!("{PREFIX}{s}");
        let mut e = Exposition::new();
        e.counter_by(
            &n("requests_total"),
            "Requests written to a socket since the run began, by kind: shake, grab, send (client-created packet).",
            "kind",
            &[("shake", c.sent), ("grab", p.grabs), ("send", p.sends)],
        );
        e.counter(
            &n("scheduled_total"),
            "Shakes due by the schedule since the run began (sent or not).",
            c.scheduled,
        );
        let answers = fields(&c.results);
        e.counter_by(
            &n("shake_answers_total"),
            "Shake answers since the run began, by result: got (a packet won), none (none left), overloaded (shed by the server), late ones included.",
            "result",
            &pairs(&answers),
        );
        let errors = fields(&c.error_kinds);
        e.counter_by(
            &n("errors_total"),
            "Requests that went wrong since the run began, other than by timing out, by kind.",
            "kind",
            &pairs(&errors),
        );
        e.counter(
            &n("timeouts_total"),
            "Shakes unanswered after --timeout since the run began.",
            c.timeouts,
        );
        e.counter(
            &n("connects_total"),
            "Logins completed since the run began.",
            c.connects,
        );
        e.counter(
            &n("disconnects_total"),
            "Connections lost after login since the run began.",
            c.disconnects,
        );
        e.counter_by(
            &n("connect_failures_total"),
            "Failed connect or login attempts since the run began, by reason.",
            "reason",
            &c.failures(),
        );
        e.counter(
            &n("won_cents_total"),
            "Cents won by shakes since the run began, as clients saw them.",
            p.won_cents,
        );
        e.counter(
            &n("grabbed_cents_total"),
            "Cents granted to grabs since the run began, as clients saw them.",
            p.grabbed_cents,
        );
        e.gauge(
            &n("users_connected"),
            "Users logged in now.",
            connected as f64,
        );
        e.gauge(
            &n("inflight"),
            "Shakes, grabs and sends awaiting an answer now, and grabs waiting to be sent.",
            inflight as f64,
        );
        e.gauge(
            &n("target_qps"),
            "Target shakes per second of this load generator (all its processes) now.",
            self.target_qps,
        );
        e.gauge_by(
            &n("phase_info"),
            "The phase running now (connect, a phase of the plan, drain), as the label of a sample of 1.",
            "phase",
            &[(&self.phase, 1.0)],
        );
        e.histogram(
            &n("shake_latency_seconds"),
            "Latency of shakes answered in time, from their scheduled send to their answer, seconds; the same bucket bounds on every load generator, so buckets add up across processes and hosts.",
            &self.latency,
        );
        e.finish()
    }
}

/// A section's counters by field name (its `total`, if any, left out).
fn fields<T: Serialize>(section: &T) -> Vec<(String, u64)> {
    match serde_json::to_value(section) {
        Ok(serde_json::Value::Object(m)) => m
            .into_iter()
            .filter(|(k, _)| k != "total")
            .filter_map(|(k, v)| Some((k, v.as_u64()?)))
            .collect(),
        _ => Vec::new(),
    }
}

fn pairs(v: &[(String, u64)]) -> Vec<(&str, u64)> {
    v.iter().map(|(k, n)| (k.as_str(), *n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Failure;
    use crate::prometheus::tests::{check_histogram, parse, value};

    #[test]
    fn every_family_renders_and_reads_back() {
        let mut t = Tally::default();
        t.counts.sent = 10;
        t.counts.scheduled = 11;
        t.counts.results.got = 3;
        t.counts.results.none = 5;
        t.counts.error_kinds.dropped = 2;
        t.counts.packets.grabs = 4;
        t.counts.fail(Failure::Refused);
        for us in [80, 900, 12_000] {
            t.record_us(us);
        }
        let mut live = Live::default();
        live.add(&t, "warm \"up\"", 100.0);
        live.add(&t, "warm \"up\"", 200.0);
        let s = parse(&live.render(7, 3));
        let get = |name: &str, label: &str, v: &str| {
            s.iter()
                .find(|x| {
                    x.0 == format!("{PREFIX}{name}")
                        && x.1.get(label).map(|l| l.as_str()) == Some(v)
                })
                .unwrap_or_else(|| panic!("{name}{{{label}={v}}}"))
                .2
        };
        assert_eq!(get("requests_total", "kind", "shake"), 20.0);
        assert_eq!(get("requests_total", "kind", "grab"), 8.0);
        assert_eq!(get("requests_total", "kind", "send"), 0.0);
        assert_eq!(get("shake_answers_total", "result", "got"), 6.0);
        assert_eq!(get("shake_answers_total", "result", "overloaded"), 0.0);
        assert_eq!(get("errors_total", "kind", "dropped"), 4.0);
        assert_eq!(get("errors_total", "kind", "write_failed"), 0.0);
        assert_eq!(get("connect_failures_total", "reason", "refused"), 2.0);
        assert_eq!(get("phase_info", "phase", "warm \"up\""), 1.0);
        assert_eq!(value(&s, &format!("{PREFIX}scheduled_total")), 22.0);
        assert_eq!(value(&s, &format!("{PREFIX}users_connected")), 7.0);
        assert_eq!(value(&s, &format!("{PREFIX}inflight")), 3.0);
        assert_eq!(value(&s, &format!("{PREFIX}target_qps")), 200.0);
        let h = format!("{PREFIX}shake_latency_seconds");
        check_histogram(&s, &h);
        assert_eq!(value(&s, &format!("{h}_count")), 6.0);
        let errors = s.iter().filter(|x| x.0 == format!("{PREFIX}errors_total"));
        assert_eq!(errors.count(), 4, "one sample per kind, no total");
        assert!(s.iter().all(|x| x.0.starts_with(PREFIX)));
    }

    /// Every metric family an exposition declares (`# TYPE`), a histogram's as the
    /// names its samples take.
    fn families(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("# TYPE ") else {
                continue;
            };
            let mut words = rest.split_whitespace();
            let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                continue;
            };
            if kind == "histogram" {
                out.extend(["_bucket", "_sum", "_count"].map(|s| format!("{name}{s}")));
            } else {
                out.push(name.to_string());
            }
        }
        out
    }

    /// The fleet's Grafana dashboard (ansible/roles/monitor) is valid JSON, and every
    /// metric its queries name is one the server's control port, the load generator's
    /// `--control` or node-exporter exposes: a renamed counter fails here, not on a
    /// blank panel.
    #[test]
    fn the_dashboard_names_only_exposed_metrics() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../ansible/roles/monitor/files/grafana-redpacket.json"
        );
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let dash: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut known = families(&redpacket_control::prometheus_text(
            &redpacket_formats::server::Snapshot::default(),
        ));
        known.extend(families(&Live::default().render(0, 0)));
        // node-exporter's (Debian's prometheus-node-exporter), and Prometheus's own.
        known.extend(["node_cpu_seconds_total", "up"].map(String::from));
        let mut named = 0;
        let panels = dash["panels"].as_array().expect("panels");
        assert!(panels.len() >= 5, "{path}: too few panels");
        for panel in panels {
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{}: no query", panel["title"]);
            for t in targets {
                let expr = t["expr"].as_str().expect("expr");
                let words = expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
                for w in words.filter(|w| w.starts_with("redpacket_") || w.starts_with("node_")) {
                    assert!(
                        known.iter().any(|k| k == w),
                        "{}: {w} is exposed by nothing",
                        panel["title"]
                    );
                    named += 1;
                }
                if expr.contains("histogram_quantile") {
                    assert!(expr.contains("by (le)"), "{expr}: sum the buckets by le");
                }
            }
        }
        assert!(named >= 10, "only {named} metric names in {path}");
    }
}
