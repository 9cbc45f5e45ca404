//! From aligned series to the numbers a person asks about, per phase.
//!
//! Each phase becomes a column of labelled cells; the terminal table, Markdown, HTML and
//! `--compare` all render the same cells, so the four never disagree. A cell keeps its
//! number beside its text so a comparison can subtract.

use super::load::{HostData, Role, Run};
use super::numbers::{fmt_num, MANY};
use super::series::{self, Series};
use super::thresholds::{self, InForce};
use redpacket_formats::run::Thresholds;
use redpacket_formats::{histograms, Latency, PhasePlan};

/// The old article's question: 10 billion shake requests.
pub const SHAKES_TOTAL: f64 = 1.0e10;
/// Servers in the 2015 fleet the old article sized against.
pub const FLEET_2015: f64 = 638.0;
/// The window the capacity line asks to finish in.
pub const TARGET_MINUTES: f64 = 5.0;

/// Distribution of one per-second series over a phase.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Dist {
    pub n: usize,
    pub mean: f64,
    pub min: f64,
    pub p5: f64,
    pub max: f64,
    /// Coefficient of variation: standard deviation / mean.
    pub cv: f64,
}

pub fn dist(values: &[f64]) -> Option<Dist> {
    if values.is_empty() {
        return None;
    }
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    // Nearest-rank percentile.
    let rank = ((0.05 * n as f64).ceil() as usize).clamp(1, n);
    Some(Dist {
        n,
        mean,
        min: sorted[0],
        p5: sorted[rank - 1],
        max: sorted[n - 1],
        cv: if mean > 0.0 { var.sqrt() / mean } else { 0.0 },
    })
}

#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    pub text: String,
    pub value: Option<f64>,
    /// Decimals the value is shown with (differences use the same).
    pub decimals: usize,
}

impl Cell {
    pub fn num(v: f64, decimals: usize) -> Cell {
        Cell {
            text: fmt_num(v, decimals),
            value: Some(v),
            decimals,
        }
    }
    pub fn text(s: impl Into<String>) -> Cell {
        Cell {
            text: s.into(),
            value: None,
            decimals: 0,
        }
    }
    pub fn none() -> Cell {
        Cell::text("-")
    }
}

#[derive(Clone, Debug)]
pub struct PhaseStats {
    pub name: String,
    pub target_qps: f64,
    pub start: f64,
    pub end: f64,
    pub client_qps: Option<Dist>,
    pub server_qps: Option<Dist>,
    /// Labelled cells in display order; a label may start with a `## ` section marker.
    pub rows: Vec<(String, Cell)>,
    /// The per-host table: the fleet's totals, then each host (and each server
    /// instance), with cells under [`HOST_COLUMNS`].
    pub hosts: Vec<HostRow>,
    /// The limits this phase is judged against.
    pub limits: InForce,
    /// The phase measured against them; `None` for a phase that asked no load.
    pub judged: Option<Judged>,
}

impl PhaseStats {
    /// The number of the phase table's row `label` (the figure the pages show).
    pub fn value(&self, label: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|(l, _)| l == label)
            .and_then(|(_, c)| c.value)
    }

    /// The rate the load generators achieved: their summaries' whole-phase figure,
    /// else the mean rate of their lines.
    pub fn achieved_qps(&self) -> Option<f64> {
        self.value(ROW_ACHIEVED).or_else(|| self.value(ROW_SENT))
    }
}

/// Phase-table labels the verdict and `report.json` read their figures from.
pub const ROW_SENT: &str = "client sent QPS (mean)";
pub const ROW_ACHIEVED: &str = "client achieved QPS (summary)";
pub const ROW_ANSWERED: &str = "client answered QPS (mean)";
pub const ROW_CLIENT_CV: &str = "client QPS CV % (inner seconds)";
pub const ROW_SERVER_SHAKE: &str = "server shake QPS (mean)";
pub const ROW_USERS: &str = "users logged in (load generators, loadgen.jsonl)";

/// A threshold a phase did not stay within.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// The threshold's name as in `run.json`: `max_p99_ms`, `max_p999_ms`,
    /// `rate_tolerance_pct`, `max_error_rate`.
    pub threshold: &'static str,
    /// The bound the value had to keep: ms for latency, the lowest rate accepted
    /// (shakes/s) for the rate, a fraction for errors.
    pub limit: f64,
    /// The phase's figure; `None` when it was not measured.
    pub value: Option<f64>,
    /// In words, with the phase's name: `20k: p99 301 ms > 50 ms`.
    pub text: String,
}

/// A loaded phase against its limits.
#[derive(Clone, Debug, PartialEq)]
pub struct Judged {
    pub failures: Vec<Failure>,
}

impl Judged {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The columns of the per-host table. CPU, drops and retransmits are the host's
/// `/proc` counters (every process of the host); connections are the run's own (users
/// logged in, or server connections open).
pub const HOST_COLUMNS: [&str; 11] = [
    "role",
    "rate/s (mean)",
    "errors",
    "timeouts",
    "p99 ms",
    "host CPU % (mean)",
    "host busiest core % (max)",
    "run's connections (peak)",
    "host drops",
    "host retransmits",
    "counts from",
];

/// What the per-host table's figures cover, printed under its title.
pub const HOST_NOTE: &str = "Each figure covers the phase between its own boundaries. A \
load generator's rate, errors and timeouts are its summary.json's per-phase totals (exact) \
when it has the phase; every other count is cut from the per-second lines at the phase's \
start and end (column \"counts from\": summary.json, or lines, cut). Peaks (busiest core, \
connections) are over the seconds wholly inside the phase. The host columns are host-wide: \
they count every process of the host. Connections are the run's own: users logged in \
(load generator) or connections open (server).";

/// One row of the per-host table. The rate is shakes sent for a load generator and
/// shakes served for a server; drops are listen drops and overflows plus interface
/// drops; CPU, drops and retransmits are the host's (its instances share them).
#[derive(Clone, Debug)]
pub struct HostRow {
    pub name: String,
    pub cells: Vec<Cell>,
}

/// The highest shake rate the servers served in a phase, what their hosts' CPU was
/// doing meanwhile, and whether the run showed that rate to be a limit. Only a limit
/// is sized up to 10 billion shakes: a rate the servers held with CPU to spare says
/// nothing about how many servers the old question needs.
#[derive(Clone, Debug)]
pub struct Capacity {
    pub phase: String,
    pub per_server_qps: f64,
    pub servers: usize,
    /// The server hosts' CPU over the phase, % of all cores (the mean of the hosts'
    /// means), where they sampled it.
    pub server_cpu_pct: Option<f64>,
    /// The busiest core of any server host in the phase, % of one core.
    pub busiest_core_pct: Option<f64>,
    /// The server process's own CPU, % of one core (the mean over server hosts), where
    /// each server host runs one server process and samples it.
    pub server_process_pct: Option<f64>,
    /// What showed the phase's rate to be a limit (`None`: nothing did).
    pub limit: Option<String>,
    pub server_seconds: f64,
    pub minutes_with_2015_fleet: f64,
    pub servers_for_target: f64,
}

/// Server CPU, % of all cores, from which a phase counts as saturating its host.
pub const CPU_SATURATED_PCT: f64 = 90.0;

impl Capacity {
    pub fn sentence(&self) -> String {
        let rate = format!(
            "{} shakes/s per server (phase {}, mean over {} server(s))",
            fmt_num(self.per_server_qps, 0),
            self.phase,
            self.servers,
        );
        let Some(limit) = &self.limit else {
            return format!(
                "Capacity not reached: the highest rate measured was {rate}, with the \
                 server host(s) at {}. No phase showed a limit (load shed, errors or \
                 timeouts, a rate short of its target, a latency threshold passed, CPU at \
                 {CPU_SATURATED_PCT:.0} % or more), so the run does not say how many servers \
                 10 billion shake requests need.",
                self.cpu_words(),
            );
        };
        format!(
            "Capacity: at {rate}, where the run reached a limit ({limit}), with the server \
             host(s) at {}, 10 billion shake requests take {} server-seconds: {} minutes on the {} \
             servers of 2015, or {} servers to finish in {} minutes.",
            self.cpu_words(),
            fmt_num(self.server_seconds, 0),
            fmt_num(self.minutes_with_2015_fleet, 1),
            FLEET_2015,
            fmt_num(self.servers_for_target.ceil(), 0),
            TARGET_MINUTES,
        )
    }

    /// The server hosts' CPU in words: all cores, and the busiest core.
    fn cpu_words(&self) -> String {
        let mut w = match (self.server_cpu_pct, self.busiest_core_pct) {
            (Some(c), Some(b)) => format!(
                "{} % CPU over all cores (host-wide), busiest core {} %",
                fmt_num(c, 0),
                fmt_num(b, 0)
            ),
            (Some(c), None) => format!("{} % CPU over all cores (host-wide)", fmt_num(c, 0)),
            _ => "CPU not sampled".to_string(),
        };
        if let Some(p) = self.server_process_pct {
            w.push_str(&format!(
                ", the server process at {} % of one core",
                fmt_num(p, 0)
            ));
        }
        w
    }
}

#[derive(Debug)]
pub struct Analysis {
    /// Unix seconds that charts count from.
    pub t0: f64,
    pub series: Series,
    pub phases: Vec<PhaseStats>,
    pub capacity: Option<Capacity>,
    /// The run-wide limits in force (each phase's own are in [`PhaseStats::limits`]).
    pub limits: InForce,
}

/// [`analyze_with`] without flags: the limits of `run.json` and the defaults.
pub fn analyze(run: &Run) -> Analysis {
    analyze_with(run, &Thresholds::default())
}

/// The run's figures, each loaded phase judged against `flags` over `run.json`'s
/// thresholds over the defaults (see `thresholds`).
pub fn analyze_with(run: &Run, flags: &Thresholds) -> Analysis {
    let series = series::build(run);
    let span = series.span();
    // Charts count from `started`, unless it is absent or a day away from the data.
    let t0 = match span {
        Some((lo, hi))
            if run.meta.started > lo as f64 - 86_400.0 && run.meta.started < hi as f64 =>
        {
            run.meta.started
        }
        Some((lo, _)) => lo as f64 - 1.0,
        None => run.meta.started,
    };
    let loadgen = thresholds::of_loadgens(
        run.hosts
            .iter()
            .filter_map(|h| h.summary.as_ref())
            .map(|s| &s.verdict),
    );
    let mut plans = run.meta.phases.clone();
    if plans.is_empty() {
        plans = loadgen_phases(run);
    }
    if plans.is_empty() {
        if let Some((lo, hi)) = span {
            plans.push(PhasePlan {
                name: "all".into(),
                target_qps: 0.0,
                start: lo as f64 - 1.0,
                end: hi as f64,
                thresholds: Default::default(),
            });
        }
    }
    let phases: Vec<PhaseStats> = plans
        .iter()
        .map(|p| {
            let limits = InForce::resolve(flags, &run.meta, Some(p), &loadgen);
            phase(run, &series, p, limits)
        })
        .collect();
    let capacity = capacity(run, &series, &plans, &phases);
    Analysis {
        t0,
        series,
        phases,
        capacity,
        limits: InForce::resolve(flags, &run.meta, None, &loadgen),
    }
}

/// The phase whose servers served the most shakes a second, and whether it was a limit.
fn capacity(
    run: &Run,
    series: &Series,
    plans: &[PhasePlan],
    judged: &[PhaseStats],
) -> Option<Capacity> {
    let server_hosts: Vec<&HostData> = run
        .hosts
        .iter()
        .filter(|h| h.role() == Role::Server && h.has_server())
        .collect();
    let servers = server_hosts.len();
    let (p, mean) = plans
        .iter()
        .filter_map(|p| Some((p, series.cut_rate("server.served", p.start, p.end)?)))
        .filter(|(_, m)| *m > 0.0)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .filter(|_| servers > 0)?;
    let w = Window {
        s: series,
        start: p.start,
        end: p.end,
    };
    let [server_cpu_pct, busiest_core_pct, ..] = group_cells(&w, &server_hosts).map(|c| c.value);
    // The sampling process is the server only where the host runs one.
    let procs: Vec<f64> = server_hosts
        .iter()
        .filter(|h| h.servers.len() <= 1)
        .filter_map(|h| w.mean(&format!("host.{}.proc_cpu", h.name)))
        .collect();
    let server_process_pct =
        (procs.len() == servers).then(|| procs.iter().sum::<f64>() / servers as f64);
    let per_server = mean / servers as f64;
    let server_seconds = SHAKES_TOTAL / per_server;
    Some(Capacity {
        phase: p.name.clone(),
        per_server_qps: per_server,
        servers,
        server_cpu_pct,
        busiest_core_pct,
        server_process_pct,
        limit: limit(
            run,
            &w,
            judged.iter().find(|j| j.name == p.name),
            server_cpu_pct,
        ),
        server_seconds,
        minutes_with_2015_fleet: server_seconds / FLEET_2015 / 60.0,
        servers_for_target: server_seconds / (TARGET_MINUTES * 60.0),
    })
}

/// What, if anything, showed a phase's rate to be the run's limit: the servers shed
/// load, the phase failed a threshold of the verdict (its rate, errors and timeouts,
/// latency: the same judgement, so the capacity line and the verdict never disagree),
/// or the server hosts' CPU stayed at [`CPU_SATURATED_PCT`] or more.
fn limit(
    run: &Run,
    w: &Window,
    judged: Option<&PhaseStats>,
    server_cpu: Option<f64>,
) -> Option<String> {
    let mut why = Vec::new();
    if let Some(n) = w.sum("server.overloaded").filter(|v| *v >= 0.5) {
        why.push(format!("{} shakes shed as overloaded", fmt_num(n, 0)));
    }
    if let Some(j) = judged.and_then(|p| p.judged.as_ref()) {
        // The text names the phase first ("20k: p99 301 ms > 50 ms"): the rest says why.
        why.extend(j.failures.iter().map(|f| {
            f.text
                .split_once(": ")
                .map_or(f.text.clone(), |(_, why)| why.to_string())
        }));
    }
    if let Some(c) = server_cpu.filter(|c| *c >= CPU_SATURATED_PCT) {
        let shared = run.hosts.iter().any(|h| is_server(h) && is_client(h));
        why.push(format!(
            "server host CPU saturated, {} %{}",
            fmt_num(c, 0),
            if shared {
                ", shared with the load generators on the same host"
            } else {
                ""
            }
        ));
    }
    (!why.is_empty()).then(|| why.join(", "))
}

/// The phases as the load generators ran them, for a run without a plan (a plain
/// `redpacket-loadgen run`, no `run.json`): from their summaries (name, the hosts'
/// targets added, the earliest start and latest end), else from their lines (each
/// phase's span of lines, the hosts' highest targets added). Empty when neither names
/// a phase.
fn loadgen_phases(run: &Run) -> Vec<PhasePlan> {
    let mut plans: Vec<PhasePlan> = Vec::new();
    let mut put = |name: &str, target: f64, start: f64, end: f64| {
        if name.is_empty() || !(start.is_finite() && end.is_finite() && end > start) {
            return;
        }
        match plans.iter_mut().find(|p| p.name == name) {
            Some(p) => {
                p.target_qps += target;
                p.start = p.start.min(start);
                p.end = p.end.max(end);
            }
            None => plans.push(PhasePlan {
                name: name.to_string(),
                target_qps: target,
                start,
                end,
                thresholds: Default::default(),
            }),
        }
    };
    let sums: Vec<_> = run
        .hosts
        .iter()
        .filter_map(|h| h.summary.as_ref())
        .collect();
    if !sums.is_empty() {
        for sp in sums.iter().flat_map(|s| s.phases.iter()) {
            put(&sp.name, sp.target_qps, sp.start, sp.end);
        }
    } else {
        for h in &run.hosts {
            // This host's phases: (name, highest target, first line's start, last t).
            let mut own: Vec<(&str, f64, f64, f64)> = Vec::new();
            for l in &h.loadgen {
                let dt = if l.interval_s > 0.0 {
                    l.interval_s
                } else {
                    1.0
                };
                match own.iter_mut().find(|o| o.0 == l.phase) {
                    Some(o) => {
                        o.1 = o.1.max(l.target_qps);
                        o.2 = o.2.min(l.t - dt);
                        o.3 = o.3.max(l.t);
                    }
                    None => own.push((&l.phase, l.target_qps, l.t - dt, l.t)),
                }
            }
            for (name, target, start, end) in own {
                put(name, target, start, end);
            }
        }
    }
    plans.retain(|p| p.target_qps.is_finite() && p.target_qps >= 0.0);
    plans.sort_by(|a, b| a.start.total_cmp(&b.start));
    plans
}

/// Per-second values of a phase for the stability figures: the first and last second
/// are dropped when the phase is long enough, as they straddle a change of rate.
fn steady(v: Vec<(i64, f64)>) -> Vec<f64> {
    let vals: Vec<f64> = v.into_iter().map(|(_, x)| x).collect();
    if vals.len() > 4 {
        vals[1..vals.len() - 1].to_vec()
    } else {
        vals
    }
}

/// One phase's view of the series.
///
/// Counts and means are cut at the phase's own boundaries, client and server alike (see
/// [`Series::cut`]); peaks use the seconds wholly inside the phase, the stability
/// figures the whole seconds whose centre the phase holds, and say so.
struct Window<'s> {
    s: &'s Series,
    start: f64,
    end: f64,
}

impl Window<'_> {
    /// The whole seconds whose centre the phase holds.
    fn seconds(&self, name: &str) -> Vec<(i64, f64)> {
        self.s.window(name, self.start, self.end)
    }

    /// A count over the phase.
    fn sum(&self, name: &str) -> Option<f64> {
        self.s.cut(name, self.start, self.end)
    }

    /// A count's mean rate over the phase (`name` without `/s`).
    fn rate(&self, name: &str) -> Option<f64> {
        self.s.cut_rate(name, self.start, self.end)
    }

    /// The mean over the phase: of a rate series (`name/s`) its count's rate, so it
    /// agrees with the counts; of any other series the mean of its seconds.
    fn mean(&self, name: &str) -> Option<f64> {
        match name.strip_suffix("/s") {
            Some(count) => self.rate(count),
            None => self.s.cut_mean(name, self.start, self.end),
        }
    }

    /// The peak of the seconds wholly inside the phase ([`Series::peak`]): a second
    /// across its edge holds another phase's load.
    fn max(&self, name: &str) -> Option<f64> {
        self.s.peak(name, self.start, self.end)
    }

    /// The last whole second's value.
    fn last(&self, name: &str) -> Option<f64> {
        self.seconds(name).last().map(|x| x.1)
    }
}

/// A figure with `decimals`, or `-` when there is none.
fn cell(v: Option<f64>, decimals: usize) -> Cell {
    v.map_or(Cell::none(), |v| Cell::num(v, decimals))
}

/// Two figures added up; either alone when the other is missing.
fn add(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    }
}

/// A phase's labelled cells, in the order they are added.
#[derive(Default)]
struct Rows(Vec<(String, Cell)>);

impl Rows {
    fn row(&mut self, label: &str, c: Cell) {
        self.0.push((label.to_string(), c));
    }

    /// A section title: a `## ` label over an empty cell.
    fn section(&mut self, title: &str) {
        self.row(&format!("## {title}"), Cell::text(""));
    }
}

/// One phase's figures: its table's sections in display order, then its per-host table.
fn phase(run: &Run, s: &Series, p: &PhasePlan, limits: InForce) -> PhaseStats {
    let w = Window {
        s,
        start: p.start,
        end: p.end,
    };
    let client_qps = dist(&steady(w.seconds("client.served/s")));
    let server_qps = dist(&steady(w.seconds("server.served/s")));
    let merged = phase_latency(run, &p.name);
    let mut rows = Rows::default();
    rate_rows(
        &mut rows,
        run,
        &w,
        p,
        [("client", client_qps), ("server", server_qps)],
    );
    latency_rows(&mut rows, &w, merged.as_ref());
    shake_and_send_rows(&mut rows, &w);
    money_rows(&mut rows, &w);
    connection_rows(&mut rows, run, &w);
    host_sections(&mut rows, run, &w);
    let mut stats = PhaseStats {
        name: p.name.clone(),
        target_qps: p.target_qps,
        start: p.start,
        end: p.end,
        client_qps,
        server_qps,
        rows: rows.0,
        hosts: host_rows(run, &w, &p.name, merged.map(|m| m.latency)),
        limits,
        judged: None,
    };
    stats.judged = judge(&stats);
    stats
}

/// A fraction as a percentage with up to 4 decimals, no trailing zeros.
fn pct(x: f64) -> String {
    let p = x * 100.0;
    if p != 0.0 && p.abs() < 0.0001 {
        // Too small for four decimals to show it: never "0%" for a share above 0.
        return format!("{p:.2e}");
    }
    let s = format!("{p:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// A loaded phase (target above 0) against its limits, from the figures of its table:
/// the achieved rate (see [`PhaseStats::achieved_qps`]) at least the target less the
/// tolerance; errors plus timeouts (as the table shows them, whole) at most the error
/// rate times what the target asked over the phase; p99 and p99.9 at most their
/// limits. A figure that was not measured fails its limit.
fn judge(p: &PhaseStats) -> Option<Judged> {
    if p.target_qps.is_nan() || p.target_qps <= 0.0 {
        return None;
    }
    let l = &p.limits;
    let name = &p.name;
    let mut failures = Vec::new();
    let ms = |v: f64| fmt_num(v, if v >= 10.0 { 0 } else { 2 });
    for (threshold, what, limit, value) in [
        ("max_p99_ms", "p99", l.max_p99_ms.value, p.value("p99")),
        (
            "max_p999_ms",
            "p99.9",
            l.max_p999_ms.value,
            p.value("p99.9"),
        ),
    ] {
        let Some(limit) = limit else { continue };
        match value {
            Some(v) if v <= limit => {}
            Some(v) => failures.push(Failure {
                threshold,
                limit,
                value: Some(v),
                text: format!("{name}: {what} {} ms > {} ms", ms(v), ms(limit)),
            }),
            None => failures.push(Failure {
                threshold,
                limit,
                value: None,
                text: format!("{name}: {what} not measured (limit {} ms)", ms(limit)),
            }),
        }
    }
    if let Some(tol) = l.rate_tolerance_pct.value {
        let floor = p.target_qps * (1.0 - tol / 100.0);
        match p.achieved_qps() {
            Some(v) if v >= floor => {}
            v => failures.push(Failure {
                threshold: "rate_tolerance_pct",
                limit: floor,
                value: v,
                text: match v {
                    Some(v) => format!(
                        "{name}: achieved {} shakes/s < {} ({} less {tol}%), {}% short",
                        fmt_num(v, 0),
                        fmt_num(floor, 0),
                        fmt_num(p.target_qps, 0),
                        pct(1.0 - v / p.target_qps)
                    ),
                    None => format!("{name}: achieved rate not measured"),
                },
            }),
        }
    }
    if let Some(max) = l.max_error_rate.value {
        let due = p.target_qps * (p.end - p.start);
        let count = |label: &str| p.value(label).map(f64::round);
        let (e, t) = (count("errors"), count("timeouts"));
        let bad = e.unwrap_or(0.0) + t.unwrap_or(0.0);
        let rate = if due > 0.0 { bad / due } else { 0.0 };
        if rate > max {
            failures.push(Failure {
                threshold: "max_error_rate",
                limit: max,
                value: Some(rate),
                text: format!(
                    "{name}: {} errors + {} timeouts = {} of {} due ({}%) > {}%",
                    fmt_num(e.unwrap_or(0.0), 0),
                    fmt_num(t.unwrap_or(0.0), 0),
                    fmt_num(bad, 0),
                    fmt_num(due, 0),
                    pct(rate),
                    pct(max)
                ),
            });
        }
    }
    Some(Judged { failures })
}

/// The Rate section: the plan, what the clients sent and were answered, what the
/// servers received and served, and how steady each side's served rate held.
fn rate_rows(
    rows: &mut Rows,
    run: &Run,
    w: &Window,
    p: &PhasePlan,
    sides: [(&str, Option<Dist>); 2],
) {
    rows.section("Rate");
    rows.row("seconds", Cell::num(w.end - w.start, 0));
    rows.row("target QPS", Cell::num(p.target_qps, 0));
    rows.row(ROW_SENT, cell(w.mean("client.sent/s"), 0));
    rows.row(ROW_ACHIEVED, cell(summary_achieved(run, &p.name), 0));
    rows.row(ROW_ANSWERED, cell(w.mean("client.answered/s"), 0));
    rows.row(ROW_SERVER_SHAKE, cell(w.mean("server.shake/s"), 0));
    for (side, d) in sides {
        let label = |what: &str| format!("{side} {what}");
        rows.row(
            &label("served QPS (mean)"),
            cell(w.mean(&format!("{side}.served/s")), 0),
        );
        rows.row(&label("QPS min (inner seconds)"), cell(d.map(|d| d.min), 0));
        rows.row(&label("QPS p5 (inner seconds)"), cell(d.map(|d| d.p5), 0));
        rows.row(
            &label("QPS CV % (inner seconds)"),
            cell(d.map(|d| d.cv * 100.0), 2),
        );
    }
}

/// The client latency section: the whole phase's percentiles (histograms or summaries),
/// else the worst second's, and where they come from; then errors and timeouts.
fn latency_rows(rows: &mut Rows, w: &Window, merged: Option<&MergedLatency>) {
    rows.section("Latency (ms, client)");
    let lat = merged.map(|m| m.latency);
    let lat_or = |k: &str, from_summary: Option<f64>| {
        from_summary.or_else(|| w.max(&format!("client.lat.{k}")))
    };
    rows.row("p50", cell(lat_or("p50", lat.and_then(|l| l.p50)), 2));
    rows.row("p99", cell(lat_or("p99", lat.and_then(|l| l.p99)), 2));
    rows.row("p99.9", cell(lat_or("p999", lat.and_then(|l| l.p999)), 2));
    rows.row("max", cell(lat_or("max", lat.and_then(|l| l.max)), 2));
    let source = match merged {
        Some(m) => m.source.clone(),
        None if w.max("client.lat.p50").is_some() => "worst second".into(),
        None => "-".into(),
    };
    rows.row("latency source", Cell::text(source));
    rows.row("errors", cell(w.sum("client.errors"), 0));
    rows.row("timeouts", cell(w.sum("client.timeouts"), 0));
}

/// The servers' answers to shakes and sends, counted over the phase.
fn shake_and_send_rows(rows: &mut Rows, w: &Window) {
    rows.section("Shake and send (server)");
    rows.row("shake won", cell(w.sum("server.won"), 0));
    rows.row("shake none", cell(w.sum("server.none"), 0));
    rows.row("shake overloaded", cell(w.sum("server.overloaded"), 0));
    rows.row("packets issued", cell(w.sum("server.issued"), 0));
    rows.row("packets won", cell(w.sum("server.won"), 0));
    rows.row("client got (vs won)", cell(w.sum("client.got"), 0));
    rows.row("sends created", cell(w.sum("server.created"), 0));
    rows.row("sends grabbed", cell(w.sum("server.grabbed"), 0));
}

/// The servers' running money totals at the phase's last line, in yuan, and whether
/// both ledgers balance there.
fn money_rows(rows: &mut Rows, w: &Window) {
    rows.section("Money at phase end (yuan, last server line in the phase)");
    let yuan = |k: &str| w.last(&format!("server.total.{k}")).map(|c| c / 100.0);
    rows.row("shake issued", cell(yuan("issued_cents"), 2));
    rows.row("shake won", cell(yuan("won_cents"), 2));
    rows.row(
        "shake outstanding",
        cell(yuan("shake_outstanding_cents"), 2),
    );
    rows.row("send created", cell(yuan("created_cents"), 2));
    rows.row("send grabbed", cell(yuan("grabbed_cents"), 2));
    rows.row("send refunded", cell(yuan("refunded_cents"), 2));
    rows.row("send outstanding", cell(yuan("send_outstanding_cents"), 2));
    let balance = match (
        yuan("issued_cents"),
        yuan("won_cents"),
        yuan("shake_outstanding_cents"),
        yuan("created_cents"),
        yuan("grabbed_cents"),
        yuan("refunded_cents"),
        yuan("send_outstanding_cents"),
    ) {
        (Some(i), Some(w), Some(o), Some(c), Some(g), Some(r), Some(so)) => {
            let ok = (i - w - o).abs() < 0.005 && (c - g - r - so).abs() < 0.005;
            Cell::text(if ok { "balanced" } else { "NOT balanced" })
        }
        _ => Cell::none(),
    };
    rows.row("money balance", balance);
}

/// Peak connections: the run's own sockets, from the programs' own gauges (by source
/// address too), then per host beside the kernel's count of every established TCP
/// connection of the host.
fn connection_rows(rows: &mut Rows, run: &Run, w: &Window) {
    rows.section("Connections (peak of the seconds wholly inside the phase)");
    rows.row(ROW_USERS, cell(w.max("client.connections"), 0));
    rows.row(
        "connections open (servers, server.jsonl)",
        cell(w.max("server.open"), 0),
    );
    source_address_rows(rows, w);
    for h in &run.hosts {
        let k = |m: &str| format!("host.{}.{m}", h.name);
        if w.s.get(&k("own_sockets")).is_some() {
            rows.row(
                &format!("{}: the run's own (open + logged in)", h.name),
                cell(w.max(&k("own_sockets")), 0),
            );
        }
        if w.s.get(&k("estab")).is_some() {
            rows.row(
                &format!("{}: TCP established, host-wide", h.name),
                cell(w.max(&k("estab")), 0),
            );
        }
    }
}

/// The peak users of each source address of the load generators; past [`MANY`]
/// addresses, only the least and the most any one of them carried.
fn source_address_rows(rows: &mut Rows, w: &Window) {
    let mut addrs: Vec<&String> =
        w.s.names()
            .filter(|k| k.starts_with("client.conn_addr."))
            .collect();
    addrs.sort();
    if addrs.len() > MANY {
        let peaks: Vec<f64> = addrs.iter().filter_map(|a| w.max(a)).collect();
        let lo = peaks.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = peaks.iter().copied().fold(0.0, f64::max);
        rows.row(
            &format!("per source address, least (of {})", addrs.len()),
            cell(lo.is_finite().then_some(lo), 0),
        );
        rows.row(
            &format!("per source address, most (of {})", addrs.len()),
            cell((!peaks.is_empty()).then_some(hi), 0),
        );
    } else {
        for a in addrs {
            let label = format!("from {}", &a["client.conn_addr.".len()..]);
            rows.row(&label, cell(w.max(a), 0));
        }
    }
}

/// A section per host that sampled itself: packets, drops, retransmits, CPU and memory.
/// These are `/proc` counters: they cover every process of the host, not only this
/// run's, and the title says so.
fn host_sections(rows: &mut Rows, run: &Run, w: &Window) {
    for h in &run.hosts {
        let k = |m: &str| format!("host.{}.{m}", h.name);
        if w.s.get(&k("cpu")).is_none() {
            continue;
        }
        let iface = series::main_iface(&h.net).unwrap_or_else(|| "-".into());
        rows.section(&format!(
            "Host {} ({iface}): host-wide, every process",
            h.name
        ));
        rows.row("PPS in (mean)", cell(w.mean(&k("rx_packets/s")), 0));
        rows.row("PPS out (mean)", cell(w.mean(&k("tx_packets/s")), 0));
        rows.row("PPS in (peak)", cell(w.max(&k("rx_packets/s")), 0));
        rows.row("PPS out (peak)", cell(w.max(&k("tx_packets/s")), 0));
        rows.row("TCP retransmits", cell(w.sum(&k("retrans")), 0));
        rows.row("listen drops+overflows", cell(w.sum(&k("listen_drops")), 0));
        rows.row("interface drops", cell(w.sum(&k("if_drops")), 0));
        rows.row("TCP resets sent", cell(w.sum(&k("resets")), 0));
        rows.row("CPU all cores % (mean)", cell(w.mean(&k("cpu")), 1));
        rows.row("CPU all cores % (max)", cell(w.max(&k("cpu")), 1));
        rows.row("CPU busiest core % (max)", cell(w.max(&k("core_max")), 1));
        rows.row("process CPU % of a core", cell(w.mean(&k("proc_cpu")), 1));
        rows.row("process RSS MiB (max)", cell(w.max(&k("rss_mib")), 1));
    }
}

/// The per-host table of one phase: all clients, all servers, then every host (a host
/// that runs both is a row for each role) and every server instance.
///
/// Counts and means are cut at the phase's own boundaries, as in the phase table
/// ([`Series::cut`]); a load generator's rate, errors and timeouts come from its
/// `summary.json` when it has the phase (exact, over the phase as that host ran it), and
/// the `counts from` column says which. Peaks (busiest core, connections) take the
/// seconds wholly inside the phase.
fn host_rows(run: &Run, w: &Window, phase: &str, fleet_latency: Option<Latency>) -> Vec<HostRow> {
    let clients: Vec<&HostData> = run.hosts.iter().filter(|h| is_client(h)).collect();
    let servers: Vec<&HostData> = run.hosts.iter().filter(|h| is_server(h)).collect();
    let mut rows = Vec::new();
    if !clients.is_empty() {
        rows.push(all_clients_row(w, &clients, phase, fleet_latency));
    }
    if !servers.is_empty() {
        rows.push(all_servers_row(w, &servers));
    }
    for h in &run.hosts {
        if is_server(h) {
            rows.extend(server_rows(w, h));
        }
        if is_client(h) {
            rows.push(client_row(w, h, phase));
        }
    }
    rows
}

/// Whether a host ran a load generator (lines or a summary).
fn is_client(h: &HostData) -> bool {
    !h.loadgen.is_empty() || h.summary.is_some()
}

/// Whether a host ran a server (lines, or the role `run.json` gives it).
fn is_server(h: &HostData) -> bool {
    h.has_server() || h.role() == Role::Server
}

/// A per-host row: the role, four figures of its own (rate, errors, timeouts, p99),
/// the host's five, its connections and where its counts come from.
fn host_row(
    name: String,
    role: &str,
    lead: [Cell; 4],
    tail: [Cell; 5],
    conns: Cell,
    source: &str,
) -> HostRow {
    let mut cells = vec![Cell::text(role)];
    cells.extend(lead);
    cells.extend(tail);
    cells[7] = conns;
    cells.push(Cell::text(source));
    HostRow { name, cells }
}

/// A server's own figures: its served rate, no errors, timeouts or latency of its own.
fn served(rate: Option<f64>) -> [Cell; 4] {
    [cell(rate, 0), Cell::none(), Cell::none(), Cell::none()]
}

/// A host's own figures, shared by every row of the host: CPU, busiest core, (the
/// connections' place), drops and retransmits.
fn host_cells(w: &Window, h: &str) -> [Cell; 5] {
    let k = |m: &str| format!("host.{h}.{m}");
    [
        cell(w.mean(&k("cpu")), 1),
        cell(w.max(&k("core_max")), 1),
        Cell::none(),
        cell(add(w.sum(&k("listen_drops")), w.sum(&k("if_drops"))), 0),
        cell(w.sum(&k("retrans")), 0),
    ]
}

/// A group's host figures: the mean of its hosts' CPU means, the busiest core of any;
/// its drops and retransmits: sums.
fn group_cells(w: &Window, hosts: &[&HostData]) -> [Cell; 5] {
    let names: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
    let cpus: Vec<f64> = names
        .iter()
        .filter_map(|h| w.mean(&format!("host.{h}.cpu")))
        .collect();
    let cpu = (!cpus.is_empty()).then(|| cpus.iter().sum::<f64>() / cpus.len() as f64);
    let core = names
        .iter()
        .filter_map(|h| w.max(&format!("host.{h}.core_max")))
        .reduce(f64::max);
    let total = |m: &str| {
        names
            .iter()
            .map(|h| w.sum(&format!("host.{h}.{m}")))
            .fold(None, add)
    };
    [
        cell(cpu, 1),
        cell(core, 1),
        Cell::none(),
        cell(add(total("listen_drops"), total("if_drops")), 0),
        cell(total("retrans"), 0),
    ]
}

/// A load generator's (rate, errors, timeouts) in the phase, and where they come from:
/// its summary's own per-phase totals when it has the phase, else its lines, cut.
fn client_counts(w: &Window, h: &HostData, phase: &str) -> ([Option<f64>; 3], &'static str) {
    let own = h
        .summary
        .as_ref()
        .and_then(|sm| sm.phases.iter().find(|sp| sp.name == phase));
    match own {
        Some(sp) => (
            [
                Some(sp.achieved_qps),
                Some(sp.errors as f64),
                Some(sp.timeouts as f64),
            ],
            SOURCE_SUMMARY,
        ),
        None => {
            let k = |m: &str| format!("host.{}.client.{m}", h.name);
            (
                [
                    w.rate(&k("sent")),
                    w.sum(&k("errors")),
                    w.sum(&k("timeouts")),
                ],
                SOURCE_CUT,
            )
        }
    }
}

/// Every load generator together: the hosts' own figures added up, so the group agrees
/// with its rows, and the fleet's whole-phase p99.
fn all_clients_row(
    w: &Window,
    clients: &[&HostData],
    phase: &str,
    fleet_latency: Option<Latency>,
) -> HostRow {
    let mut total = [None; 3];
    let mut sources: Vec<&str> = Vec::new();
    for h in clients {
        let (v, src) = client_counts(w, h, phase);
        for (t, x) in total.iter_mut().zip(v) {
            *t = add(*t, x);
        }
        if !sources.contains(&src) {
            sources.push(src);
        }
    }
    host_row(
        format!("all {} load generator(s)", clients.len()),
        "loadgen",
        [
            cell(total[0], 0),
            cell(total[1], 0),
            cell(total[2], 0),
            cell(fleet_latency.and_then(|l| l.p99), 2),
        ],
        group_cells(w, clients),
        cell(w.max("client.connections"), 0),
        &sources.join(" + "),
    )
}

/// Every server together, with how many instances they run when that is more than one
/// each.
fn all_servers_row(w: &Window, servers: &[&HostData]) -> HostRow {
    let instances: usize = servers.iter().map(|h| h.servers.len().max(1)).sum();
    let name = if instances > servers.len() {
        format!("all {} server(s), {instances} instances", servers.len())
    } else {
        format!("all {} server(s)", servers.len())
    };
    host_row(
        name,
        "server",
        served(w.rate("server.served")),
        group_cells(w, servers),
        cell(w.max("server.open"), 0),
        SOURCE_CUT,
    )
}

/// A server host's row, then a row per server instance (whose host figures are the
/// host's, so left blank).
fn server_rows(w: &Window, h: &HostData) -> Vec<HostRow> {
    let name = &h.name;
    let k = |m: &str| format!("host.{name}.{m}");
    let mut rows = vec![host_row(
        name.clone(),
        "server",
        served(w.rate(&k("served"))),
        host_cells(w, name),
        cell(w.max(&k("server.open")), 0),
        SOURCE_CUT,
    )];
    for log in h.servers.iter().filter(|l| l.instance.is_some()) {
        let unit = log.label(name);
        let k = |m: &str| format!("host.{unit}.{m}");
        rows.push(host_row(
            unit.clone(),
            "server instance",
            served(w.rate(&k("served"))),
            std::array::from_fn(|_| Cell::none()),
            cell(w.max(&k("server.open")), 0),
            SOURCE_CUT,
        ));
    }
    rows
}

/// A load generator host's row: its counts (see [`client_counts`]) and its own p99.
fn client_row(w: &Window, h: &HostData, phase: &str) -> HostRow {
    let name = &h.name;
    let p99 = host_latency(h, phase).and_then(|(l, _)| l.p99);
    let ([sent, errors, timeouts], src) = client_counts(w, h, phase);
    host_row(
        name.clone(),
        "loadgen",
        [
            cell(sent, 0),
            cell(errors, 0),
            cell(timeouts, 0),
            cell(p99, 2),
        ],
        host_cells(w, name),
        cell(w.max(&format!("host.{name}.client.connections")), 0),
        src,
    )
}

/// `counts from` of a per-host row: the load generator's own per-phase totals.
pub const SOURCE_SUMMARY: &str = "summary.json";
/// `counts from` of a per-host row: per-second lines cut at the phase's boundaries.
pub const SOURCE_CUT: &str = "lines, cut";

/// The load generators' own whole-phase `achieved_qps`, summed over hosts.
fn summary_achieved(run: &Run, phase: &str) -> Option<f64> {
    let v: Vec<f64> = run
        .hosts
        .iter()
        .filter_map(|h| h.summary.as_ref())
        .flat_map(|s| s.phases.iter())
        .filter(|sp| sp.name == phase)
        .map(|sp| sp.achieved_qps)
        .collect();
    (!v.is_empty()).then(|| v.iter().sum())
}

/// A phase's whole-phase latency over every load generator, and where it came from.
#[derive(Clone, Debug)]
struct MergedLatency {
    latency: Latency,
    source: String,
}

/// One host's whole-phase latency: from its histogram when it wrote one (exact), else
/// from its summary; the flag says which.
fn host_latency(h: &HostData, phase: &str) -> Option<(Latency, bool)> {
    if let Some(hist) = h.histograms.as_ref().and_then(|m| m.get(phase)) {
        return Some((Latency::of(hist), true));
    }
    h.summary
        .as_ref()
        .and_then(|s| s.phases.iter().find(|sp| sp.name == phase))
        .map(|sp| (sp.latency_ms, false))
}

/// Whole-phase latency of all load generators together. Exact when every load
/// generator that ran the phase left its histogram: the histograms are added and the
/// percentiles read from the sum. Otherwise (older runs) the worst host's value for
/// each percentile, from the summaries, and the source says so.
fn phase_latency(run: &Run, phase: &str) -> Option<MergedLatency> {
    let ran: Vec<&HostData> = run
        .hosts
        .iter()
        .filter(|h| {
            h.histograms.as_ref().is_some_and(|m| m.contains_key(phase))
                || h.summary
                    .as_ref()
                    .is_some_and(|s| s.phases.iter().any(|sp| sp.name == phase))
        })
        .collect();
    if ran.is_empty() {
        return None;
    }
    let hists: Vec<_> = ran
        .iter()
        .filter_map(|h| h.histograms.as_ref().and_then(|m| m.get(phase)))
        .collect();
    if hists.len() == ran.len() {
        let merged = histograms::merge(hists);
        let source = if ran.len() == 1 {
            "histogram (exact)".to_string()
        } else {
            format!("histograms of {} hosts added (exact)", ran.len())
        };
        return Some(MergedLatency {
            latency: Latency::of(&merged),
            source,
        });
    }
    let mut out = Latency::default();
    for h in &ran {
        let Some((l, _)) = host_latency(h, phase) else {
            continue;
        };
        let m = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        out.p50 = m(out.p50, l.p50);
        out.p90 = m(out.p90, l.p90);
        out.p99 = m(out.p99, l.p99);
        out.p999 = m(out.p999, l.p999);
        out.max = m(out.max, l.max);
    }
    let source = if ran.len() == 1 {
        "summary.json".to_string()
    } else {
        let missing: Vec<&str> = ran
            .iter()
            .filter(|h| !h.histograms.as_ref().is_some_and(|m| m.contains_key(phase)))
            .map(|h| h.name.as_str())
            .collect();
        format!(
            "worst host per percentile (not exact: no histogram from {})",
            missing.join(", ")
        )
    };
    Some(MergedLatency {
        latency: out,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dist_of_a_steady_series() {
        let d = dist(&[100.0; 20]).unwrap();
        assert_eq!((d.mean, d.min, d.p5, d.cv), (100.0, 100.0, 100.0, 0.0));
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let d = dist(&v).unwrap();
        assert_eq!(d.p5, 5.0);
        assert_eq!(d.min, 1.0);
        assert!((d.cv - 0.5716).abs() < 1e-3);
        assert!(dist(&[]).is_none());
    }
}
