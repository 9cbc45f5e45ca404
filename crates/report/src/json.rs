//! `report.json`: the report for programs (CI, the project's own tests), written from
//! the same analysis the pages print, never by reading the pages back.
//!
//! Every figure is taken from the [`Analysis`] (a phase's figures are the numbers of
//! its table's cells, unrounded) and the verdict from [`verdict::judge`], so the file
//! and the pages cannot disagree. Versioned by [`SCHEMA`]; `results/README.md`
//! documents every field. A number that is not finite is written `null`, as is a
//! figure that was not measured.

use serde::Serialize;

use super::analyze::{
    Analysis, PhaseStats, ROW_ANSWERED, ROW_CLIENT_CV, ROW_SENT, ROW_SERVER_SHAKE, ROW_USERS,
};
use super::footprint;
use super::load::Run;
use super::series::Series;
use super::thresholds::InForce;
use super::verdict::{self, Outcome};

/// The version of `report.json`'s layout; a change that renames or removes a field
/// raises it.
pub const SCHEMA: u32 = 1;

/// The file's name in the run folder.
pub const FILE: &str = "report.json";

#[derive(Serialize)]
pub struct ReportJson {
    pub schema: u32,
    pub run_id: String,
    pub verdict: VerdictJson,
    /// The run-wide limits in force; a phase's own are in its entry.
    pub thresholds: InForce,
    /// Users logged in at the end, the load generators' summaries added up; `null`
    /// without any summary.
    pub users_connected: Option<u64>,
    pub phases: Vec<PhaseJson>,
    /// The fleet second by second, as the charts draw it: every second any load
    /// generator or server wrote a record of. The live view's `live.jsonl` holds the
    /// same sums for the same seconds.
    pub seconds: Vec<SecondJson>,
}

/// One second of the fleet: the records of every host stamped with it, added up.
#[derive(Serialize)]
pub struct SecondJson {
    /// Unix seconds: the whole second the counts end on.
    pub t: i64,
    /// Client side: shake requests written, answered, failed, timed out; users logged in.
    pub sent: Option<f64>,
    pub answered: Option<f64>,
    pub errors: Option<f64>,
    pub timeouts: Option<f64>,
    pub users: Option<f64>,
    /// The second's latency percentiles (merged histograms when every record has one).
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    /// Server side: shake requests received, over every instance.
    pub server_shake: Option<f64>,
}

#[derive(Serialize)]
pub struct VerdictJson {
    /// `passed`, `failed`, `incomplete` (nothing failed, the money cannot be judged) or
    /// `none` (nothing to judge).
    pub outcome: Outcome,
    pub passed: bool,
    /// Every threshold a phase did not stay within.
    pub failures: Vec<FailureJson>,
    /// Everything that failed the run, in the words of the report's first line (the
    /// phases' failures, then refused input, implausible figures, the money).
    pub reasons: Vec<String>,
    /// What could not be judged, in words.
    pub gaps: Vec<String>,
    /// The loaded phase with the highest target that passed every threshold.
    pub highest_rate_held: Option<Held>,
}

#[derive(Serialize)]
pub struct Held {
    pub phase: String,
    pub target_qps: Option<f64>,
}

#[derive(Serialize)]
pub struct FailureJson {
    pub phase: String,
    pub threshold: &'static str,
    pub limit: Option<f64>,
    pub value: Option<f64>,
    pub text: String,
}

#[derive(Serialize)]
pub struct PhaseJson {
    pub name: String,
    /// Unix seconds.
    pub start: Option<f64>,
    pub end: Option<f64>,
    pub seconds: Option<f64>,
    pub target_qps: Option<f64>,
    pub client: ClientJson,
    pub server: ServerJson,
    /// Whether both ledgers add up at the phase's last server line; `null` unknown.
    pub money_balanced: Option<bool>,
    pub cpu_cores: PerSide,
    /// CPU microseconds per request answered (shakes, grabs and sends), each side: the
    /// footprint's CPU table, over every host measured; `null` where `cpu_cores` is, or
    /// nothing was answered.
    pub cpu_us_per_request: PerSide,
    /// Peak users logged in (the load generators' gauge, added up).
    pub users_connected: Option<f64>,
    pub thresholds: InForce,
    /// `null` for a phase without a target (not judged).
    pub passed: Option<bool>,
    pub failures: Vec<FailureJson>,
}

#[derive(Serialize)]
pub struct ClientJson {
    pub sent_qps: Option<f64>,
    pub answered_qps: Option<f64>,
    /// The summaries' whole-phase rate, else the lines' sent mean (what is judged).
    pub achieved_qps: Option<f64>,
    pub qps_cv_pct: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub latency_source: Option<String>,
    pub errors: Option<f64>,
    pub timeouts: Option<f64>,
    pub got: Option<f64>,
}

#[derive(Serialize)]
pub struct ServerJson {
    pub shake_qps: Option<f64>,
    pub served_qps: Option<f64>,
    pub qps_cv_pct: Option<f64>,
    pub won: Option<f64>,
    pub none: Option<f64>,
    pub overloaded: Option<f64>,
}

/// A figure of each side's processes together (cores busy on average, CPU per request),
/// where the run measured its own processes (`footprint.jsonl`); `null` elsewhere.
#[derive(Debug, PartialEq, Serialize)]
pub struct PerSide {
    pub server: Option<f64>,
    pub loadgen: Option<f64>,
}

/// A phase's CPU over every host that measured it: each side's cores busy, added up,
/// and its CPU microseconds per request, those cores over the hosts' request rates
/// added up (for one host, the footprint table's own figure).
fn phase_cpu(rows: &[&footprint::CpuRow]) -> (PerSide, PerSide) {
    let cores = |side: fn(&footprint::CpuRow) -> f64| {
        let each: Vec<f64> = rows
            .iter()
            .filter_map(|c| footprint::CpuRow::cores(side(c), c.seconds))
            .collect();
        fin((!each.is_empty()).then(|| each.iter().sum()))
    };
    let rate: f64 = rows.iter().filter_map(|c| c.request_rate()).sum();
    let per_request =
        |cores: Option<f64>| fin(cores.filter(|_| rate > 0.0).map(|c| c * 1e6 / rate));
    let (server, loadgen) = (cores(|c| c.server_cpu_s), cores(|c| c.loadgen_cpu_s));
    (
        PerSide { server, loadgen },
        PerSide {
            server: per_request(server),
            loadgen: per_request(loadgen),
        },
    )
}

/// A finite number, or `None`.
fn fin(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite())
}

fn failures(p: &PhaseStats) -> Vec<FailureJson> {
    p.judged
        .iter()
        .flat_map(|j| &j.failures)
        .map(|f| FailureJson {
            phase: p.name.clone(),
            threshold: f.threshold,
            limit: fin(Some(f.limit)),
            value: fin(f.value),
            text: f.text.clone(),
        })
        .collect()
}

/// The report of `run` as `report.json` holds it.
pub fn report_json(run: &Run, a: &Analysis) -> ReportJson {
    let j = verdict::judge(run, a);
    let feet = footprint::footprints(run);
    let phases = a.phases.iter().map(|p| phase(p, &feet)).collect();
    ReportJson {
        schema: SCHEMA,
        run_id: run.id.clone(),
        verdict: VerdictJson {
            outcome: j.outcome,
            passed: j.outcome == Outcome::Passed,
            failures: a.phases.iter().flat_map(failures).collect(),
            reasons: j.failed.clone(),
            gaps: j.gaps.clone(),
            highest_rate_held: j.held.map(|p| Held {
                phase: p.name.clone(),
                target_qps: fin(Some(p.target_qps)),
            }),
        },
        thresholds: a.limits,
        users_connected: j.users,
        phases,
        seconds: seconds(&a.series),
    }
}

/// Every second of the client and server series, in time order.
fn seconds(s: &Series) -> Vec<SecondJson> {
    const NAMES: [&str; 9] = [
        "client.sent",
        "client.answered",
        "client.errors",
        "client.timeouts",
        "client.connections",
        "client.lat.p50",
        "client.lat.p99",
        "client.lat.p999",
        "server.shake",
    ];
    let mut keys = std::collections::BTreeSet::new();
    for n in ["client.sent", "server.shake"] {
        keys.extend(s.get(n).into_iter().flat_map(|m| m.keys().copied()));
    }
    keys.into_iter()
        .map(|k| {
            let [sent, answered, errors, timeouts, users, p50, p99, p999, shake] =
                NAMES.map(|n| fin(s.get(n).and_then(|m| m.get(&k)).copied()));
            SecondJson {
                t: k,
                sent,
                answered,
                errors,
                timeouts,
                users,
                p50_ms: p50,
                p99_ms: p99,
                p999_ms: p999,
                server_shake: shake,
            }
        })
        .collect()
}

fn phase(p: &PhaseStats, feet: &[footprint::Footprint]) -> PhaseJson {
    let v = |label: &str| fin(p.value(label));
    let rows: Vec<&footprint::CpuRow> = feet
        .iter()
        .flat_map(|f| f.cpu.iter().filter(|c| c.phase == p.name))
        .collect();
    let (cpu_cores, cpu_us_per_request) = phase_cpu(&rows);
    let text = |label: &str| {
        p.rows
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, c)| c.text.clone())
            .filter(|t| t != "-")
    };
    PhaseJson {
        name: p.name.clone(),
        start: fin(Some(p.start)),
        end: fin(Some(p.end)),
        seconds: v("seconds"),
        target_qps: fin(Some(p.target_qps)),
        client: ClientJson {
            sent_qps: v(ROW_SENT),
            answered_qps: v(ROW_ANSWERED),
            achieved_qps: fin(p.achieved_qps()),
            qps_cv_pct: v(ROW_CLIENT_CV),
            p50_ms: v("p50"),
            p99_ms: v("p99"),
            p999_ms: v("p99.9"),
            max_ms: v("max"),
            latency_source: text("latency source"),
            errors: v("errors"),
            timeouts: v("timeouts"),
            got: v("client got (vs won)"),
        },
        server: ServerJson {
            shake_qps: v(ROW_SERVER_SHAKE),
            served_qps: v("server served QPS (mean)"),
            qps_cv_pct: v("server QPS CV % (inner seconds)"),
            won: v("shake won"),
            none: v("shake none"),
            overloaded: v("shake overloaded"),
        },
        money_balanced: text("money balance").map(|t| t == "balanced"),
        cpu_cores,
        cpu_us_per_request,
        users_connected: v(ROW_USERS),
        thresholds: p.limits,
        passed: p.judged.as_ref().map(|j| j.passed()),
        failures: failures(p),
    }
}

/// `report.json`'s text: pretty, one field a line.
pub fn to_text(r: &ReportJson) -> String {
    // Every field is a plain value: serialising cannot fail.
    let mut s = serde_json::to_string_pretty(r).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(requests: u64, server_cpu_s: f64, loadgen_cpu_s: f64) -> footprint::CpuRow {
        footprint::CpuRow {
            phase: "30k".into(),
            requests,
            seconds: 10.0,
            phase_seconds: 20.0,
            server_cpu_s,
            loadgen_cpu_s,
        }
    }

    #[test]
    fn a_phase_cpu_is_the_footprint_tables_and_adds_hosts_up() {
        // One host: 4 of 10 s busy is 0.4 cores; 200 000 requests in 20 s, 10 000/s.
        let one = row(200_000, 4.0, 3.0);
        let (cores, per) = phase_cpu(&[&one]);
        assert_eq!(
            cores,
            PerSide {
                server: Some(0.4),
                loadgen: Some(0.3)
            }
        );
        assert_eq!(per.server, one.per_request(one.server_cpu_s));
        assert!((per.server.unwrap() - 40.0).abs() < 1e-9, "{per:?}");
        assert!((per.loadgen.unwrap() - 30.0).abs() < 1e-9, "{per:?}");
        // Two hosts: cores and request rates both add up.
        let other = row(200_000, 2.0, 1.0);
        let (cores, per) = phase_cpu(&[&one, &other]);
        assert!((cores.server.unwrap() - 0.6).abs() < 1e-9, "{cores:?}");
        assert!((per.server.unwrap() - 30.0).abs() < 1e-9, "{per:?}");
        assert!((per.loadgen.unwrap() - 20.0).abs() < 1e-9, "{per:?}");
        // Nothing answered (idle): cores, but no per-request figure.
        let idle = row(0, 0.1, 0.2);
        let (cores, per) = phase_cpu(&[&idle]);
        assert!(cores.server.is_some());
        assert_eq!(
            per,
            PerSide {
                server: None,
                loadgen: None
            }
        );
        // Not measured: nothing.
        let (cores, per) = phase_cpu(&[]);
        assert_eq!(
            cores,
            PerSide {
                server: None,
                loadgen: None
            }
        );
        assert_eq!(
            per,
            PerSide {
                server: None,
                loadgen: None
            }
        );
    }
}
