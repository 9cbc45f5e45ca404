//! Charts: one PNG (to look at, to attach) and one SVG (to inline in the HTML) each.
//!
//! Every chart shares the x axis (seconds since the run started) and the shaded,
//! labelled phase bands, so a dip in one chart can be matched with a spike in another
//! by eye. The axis ([`axis`]) begins where the run's load does: at the first phase, or
//! at the first second a load generator or server was busy when that comes earlier; the
//! samplers' idle seconds before it are left out, and the caption says so. Each chart
//! has one unit on its y axis. Phase labels are laid out so they never overlap
//! (staggered in rows, shortened when a band is too narrow), and a series that lies on
//! an earlier one is marked in the legend (`= X`, `≈ X`), since it hides it.
//! Text is drawn with DejaVu Sans embedded in the binary: the PNGs look the same on a
//! server without fonts.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::Once;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::analyze::Analysis;
use super::load::{Role, Run};
use super::numbers::{short, MANY};

/// Size of every chart, pixels.
pub const WIDTH: u32 = 1000;
pub const HEIGHT: u32 = 420;
/// Width of the legend strip on the right of the plot.
const LEGEND_W: u32 = 210;

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// Drawn thinner and lighter: a plan, not a measurement.
    pub reference: bool,
}

pub struct Chart {
    /// File stem: `charts/<name>.png` and `.svg`.
    pub name: &'static str,
    pub title: String,
    /// What the title does not say: what the lines are, how to read them.
    pub caption: String,
    pub y_desc: &'static str,
    pub log_y: bool,
    pub lines: Vec<Line>,
}

/// A chart written to disk.
pub struct Drawn {
    pub name: &'static str,
    pub title: String,
    /// The chart's caption, with what drawing found (series that hide others).
    pub caption: String,
    pub svg: String,
    /// Each phase's label as drawn (`None`: its band is off the chart or too narrow for
    /// one letter).
    pub phase_labels: Vec<Option<PhaseLabel>>,
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            // The font is a constant compiled into the binary; failing here is a build bug.
            let _ = plotters::style::register_font("sans-serif", style, dejavu::sans::regular());
        }
    });
}

/// Points of a series; second `k` covers the second before its stamp, so it is drawn
/// at its centre, `k - 0.5`, where the phase bands expect it.
fn pts(a: &Analysis, name: &str) -> Vec<(f64, f64)> {
    a.series.get(name).map_or(Vec::new(), |m| {
        m.iter()
            .map(|(k, v)| (*k as f64 - 0.5 - a.t0, *v))
            .collect()
    })
}

fn line(a: &Analysis, label: &str, name: &str) -> Line {
    Line {
        label: label.into(),
        points: pts(a, name),
        reference: false,
    }
}

/// The time axis every chart shares, in seconds since the run started.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    pub from: f64,
    pub to: f64,
    /// Where the axis starts and why, when that is not the run's second 0.
    pub note: Option<String>,
}

/// Series whose first non-zero second is the run's load beginning: users connecting,
/// requests sent, connections the servers hold, requests they received.
const ACTIVITY: [&str; 4] = [
    "client.connections",
    "client.sent",
    "server.open",
    "server.shake",
];

/// The charts' time axis: from the first phase's start, or from the first second with
/// load-generator or server activity when that comes earlier (a connect ramp that is
/// not a phase), to the last second of data or the last phase's end. Never from a
/// sampler's or an idle server's first line: those start before the load and would
/// draw empty seconds.
pub fn axis(a: &Analysis) -> Axis {
    let first_phase = a
        .phases
        .iter()
        .filter(|p| p.start.is_finite())
        .min_by(|x, y| x.start.total_cmp(&y.start));
    // Second k covers (k - 1, k]: activity begins at its start.
    let active = ACTIVITY
        .iter()
        .filter_map(|n| a.series.get(n)?.iter().find(|(_, v)| **v > 0.0))
        .map(|(k, _)| *k as f64 - 1.0)
        .reduce(f64::min);
    let data_end = a.series.span().map(|(_, hi)| hi as f64);
    let to = data_end
        .into_iter()
        .chain(a.phases.iter().map(|p| p.end))
        .filter(|t| t.is_finite())
        .reduce(f64::max)
        .map_or(1.0, |t| t - a.t0);
    let (start, why) = match (first_phase, active) {
        // A whole second of activity before the first phase: the load began earlier.
        (Some(p), Some(t)) if t + 1.0 <= p.start => (
            t,
            format!(
                "the first second a load generator or server was busy, {} s before the \
                 first phase ({})",
                fmt_secs(p.start - t),
                p.name
            ),
        ),
        (Some(p), _) => (p.start, format!("the first phase's start ({})", p.name)),
        (None, Some(t)) => (
            t,
            "the first second a load generator or server was busy".to_string(),
        ),
        (None, None) => (a.t0, String::new()),
    };
    // Whole seconds: the axis numbers stay round.
    let from = (start - a.t0).floor().max(0.0).min(to - 1.0).max(0.0);
    let note = (from > 0.0).then(|| {
        format!(
            "The time axis starts at {} s of the run, at {why}: the seconds before it \
             (processes starting, samplers' idle lines) are left out.",
            fmt_secs(from)
        )
    });
    Axis { from, to, note }
}

/// Seconds as a whole number.
fn fmt_secs(s: f64) -> String {
    format!("{:.0}", s.max(0.0))
}

/// The charts of a run, before drawing.
pub fn plan(run: &Run, a: &Analysis) -> Vec<Chart> {
    let hosts: Vec<&str> = run.hosts.iter().map(|h| h.name.as_str()).collect();
    let servers: Vec<&str> = run
        .hosts
        .iter()
        .filter(|h| h.role() == Role::Server)
        .map(|h| h.name.as_str())
        .collect();
    let instances = instance_units(run);
    vec![
        qps_chart(a, &servers, &instances),
        latency_chart(a),
        connections_chart(a, &instances, &hosts),
        pps_chart(a, &hosts),
        packets_chart(a),
        cpu_chart(a, &hosts),
        cores_chart(a, &hosts),
    ]
}

/// Server instances of hosts that run several, each to get its own line for rate and
/// connections; none when there are so many (past [`MANY`]) that their lines would bury
/// the others (the host table still has a row per instance).
fn instance_units(run: &Run) -> Vec<String> {
    let instances: Vec<String> = run
        .hosts
        .iter()
        .flat_map(|h| {
            h.servers
                .iter()
                .filter(|l| l.instance.is_some())
                .map(|l| l.label(&h.name))
        })
        .collect();
    if instances.len() > MANY {
        Vec::new()
    } else {
        instances
    }
}

/// A chart from its name, texts, y axis and lines.
fn new_chart(
    name: &'static str,
    title: &str,
    caption: &str,
    y_desc: &'static str,
    log_y: bool,
    lines: Vec<Line>,
) -> Chart {
    Chart {
        name,
        title: title.to_string(),
        caption: caption.to_string(),
        y_desc,
        log_y,
        lines,
    }
}

/// The shake rate as planned, sent, received and served; per server host when there
/// are several, per instance when there are a few.
fn qps_chart(a: &Analysis, servers: &[&str], instances: &[String]) -> Chart {
    let mut qps = vec![
        Line {
            reference: true,
            ..line(a, "target", "client.target_qps")
        },
        line(a, "client sent", "client.sent/s"),
        line(a, "client served", "client.served/s"),
        line(a, "server received", "server.shake/s"),
        line(a, "server served", "server.served/s"),
    ];
    if servers.len() > 1 {
        for s in servers {
            qps.push(line(
                a,
                &format!("{s} served"),
                &format!("host.{s}.served/s"),
            ));
        }
    }
    for u in instances {
        qps.push(line(
            a,
            &format!("{u} served"),
            &format!("host.{u}.served/s"),
        ));
    }
    new_chart(
        "qps",
        "Shake QPS: client vs server",
        "Per second. Target: the plan (thin grey). Client sent: requests written; client \
         served: answers that were a packet or none left. Server received: every shake \
         request; server served: those not shed as overloaded. A gap between sent and \
         served is load the server shed or did not answer.",
        "requests / s",
        false,
        qps,
    )
}

/// Each second's latency percentiles on a log axis: from every load generator's
/// histogram of the second merged, or the worst load generator's where a line of the
/// second has none (files of older writers).
fn latency_chart(a: &Analysis) -> Chart {
    let lat = ["p50", "p90", "p99", "p999", "max"]
        .iter()
        .map(|k| line(a, &k.replace("p999", "p99.9"), &format!("client.lat.{k}")))
        .collect();
    let how = if a.series.latency_merged > 0 {
        "every load generator's answers of the second merged (exact; a second some line \
         of which carries no histogram shows the worst load generator's)"
    } else {
        "the worst load generator per second"
    };
    new_chart(
        "latency",
        "Client latency percentiles (per second)",
        &format!(
            "Each second's percentiles over the answers received in it, from each \
             request's scheduled send time, {how}; log scale. The whole-phase figures are \
             in the table."
        ),
        "latency, ms (log scale)",
        true,
        lat,
    )
}

/// The run's own connections (users, servers' open connections, per instance), then
/// each host's kernel count of established TCP connections.
fn connections_chart(a: &Analysis, instances: &[String], hosts: &[&str]) -> Chart {
    let mut conns = vec![
        line(a, "users logged in", "client.connections"),
        line(a, "server open", "server.open"),
    ];
    for u in instances {
        conns.push(line(
            a,
            &format!("{u} open"),
            &format!("host.{u}.server.open"),
        ));
    }
    for h in hosts {
        conns.push(line(
            a,
            &format!("{h} TCP estab. (host-wide)"),
            &format!("host.{h}.estab"),
        ));
    }
    new_chart(
        "connections",
        "Connections",
        "Users logged in (load generators' own count) and connections the servers hold \
         open: the run's own sockets. TCP established is the host's kernel count over \
         every process (a server and a load generator on one host count each \
         connection twice).",
        "connections",
        false,
        conns,
    )
}

/// Packets in and out of each host's busiest interface.
fn pps_chart(a: &Analysis, hosts: &[&str]) -> Chart {
    let mut pps = Vec::new();
    for h in hosts {
        pps.push(line(
            a,
            &format!("{h} in"),
            &format!("host.{h}.rx_packets/s"),
        ));
        pps.push(line(
            a,
            &format!("{h} out"),
            &format!("host.{h}.tx_packets/s"),
        ));
    }
    new_chart(
        "pps",
        "Packets per second (busiest interface)",
        "Packets in and out per second on each host's busiest interface (lo on one \
         machine, where in and out are the same packets), host-wide.",
        "packets / s",
        false,
        pps,
    )
}

/// Red packets as the servers made and handed them out.
fn packets_chart(a: &Analysis) -> Chart {
    let packets = vec![
        line(a, "shake issued", "server.issued/s"),
        line(a, "shake won", "server.won/s"),
        line(a, "sends created", "server.created/s"),
        line(a, "sends grabbed", "server.grabbed/s"),
    ];
    new_chart(
        "packets",
        "Red packets issued vs won",
        "Server side, per second: shake packets created from the campaign's pool and \
         won by a shake; user-to-user packets created by sends and grabbed.",
        "packets / s",
        false,
        packets,
    )
}

/// Each host's CPU over all its cores.
fn cpu_chart(a: &Analysis, hosts: &[&str]) -> Chart {
    let cpu = hosts
        .iter()
        .map(|h| line(a, &format!("{h} all cores"), &format!("host.{h}.cpu")))
        .collect();
    new_chart(
        "cpu",
        "CPU per host, % of the machine",
        "Busy share of all cores together (100 % = every core busy), host-wide, from \
         /proc/stat.",
        "CPU, % of all cores",
        false,
        cpu,
    )
}

/// Each host's busiest core and its sampling process, in % of one core.
fn cores_chart(a: &Analysis, hosts: &[&str]) -> Chart {
    let mut cores = Vec::new();
    for h in hosts {
        cores.push(line(
            a,
            &format!("{h} busiest core"),
            &format!("host.{h}.core_max"),
        ));
        cores.push(line(
            a,
            &format!("{h} sampling process"),
            &format!("host.{h}.proc_cpu"),
        ));
    }
    new_chart(
        "cores",
        "CPU per host, % of one core",
        "The busiest core of each second (one saturated core hides in the machine's \
         average) and the sampling process (the server's, where it samples its host; \
         above 100 % it uses more than one core).",
        "CPU, % of one core",
        false,
        cores,
    )
}

/// Draws every chart into `dir` as PNG and SVG; returns the SVG text for the HTML.
pub fn draw_all(run: &Run, a: &Analysis, dir: &Path) -> io::Result<Vec<Drawn>> {
    register_font();
    fs::create_dir_all(dir)?;
    let phases: Vec<(String, f64, f64)> = a
        .phases
        .iter()
        .map(|p| (p.name.clone(), p.start - a.t0, p.end - a.t0))
        .collect();
    let ax = axis(a);
    let x = (ax.from, ax.to);
    let mut out = Vec::new();
    for mut chart in plan(run, a) {
        // Only the axis's seconds: the y range is theirs too.
        for l in &mut chart.lines {
            l.points.retain(|p| p.0 >= ax.from && p.0 <= ax.to);
        }
        let png = dir.join(format!("{}.png", chart.name));
        {
            let root = BitMapBackend::new(&png, (WIDTH, HEIGHT)).into_drawing_area();
            draw(&root, &chart, &phases, x).map_err(io::Error::other)?;
            root.present().map_err(io::Error::other)?;
        }
        let mut svg = String::new();
        let phase_labels = {
            let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
            let labels = draw(&root, &chart, &phases, x).map_err(io::Error::other)?;
            root.present().map_err(io::Error::other)?;
            labels
        };
        fs::write(dir.join(format!("{}.svg", chart.name)), &svg)?;
        let mut caption = chart.caption.clone();
        let hidden = hidden_note(&chart);
        for extra in [hidden.as_str(), ax.note.as_deref().unwrap_or("")] {
            if !extra.is_empty() {
                caption.push(' ');
                caption.push_str(extra);
            }
        }
        out.push(Drawn {
            name: chart.name,
            title: chart.title,
            caption,
            svg,
            phase_labels,
        });
    }
    Ok(out)
}

type DrawResult<DB, T = ()> = Result<T, DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A line's points with y as drawn (log10 on a log chart).
fn drawn_points(chart: &Chart, l: &Line) -> Vec<(f64, f64)> {
    let tf = |y: f64| if chart.log_y { y.max(1e-3).log10() } else { y };
    l.points.iter().map(|&(x, y)| (x, tf(y))).collect()
}

/// The y axis range, in drawn units.
fn y_range(chart: &Chart) -> (f64, f64) {
    let ys: Vec<f64> = chart
        .lines
        .iter()
        .flat_map(|l| drawn_points(chart, l))
        .map(|p| p.1)
        .collect();
    let (mut lo, mut hi) = ys
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &y| (a.min(y), b.max(y)));
    if ys.is_empty() {
        (lo, hi) = (0.0, 1.0);
    }
    if chart.log_y {
        lo = lo.floor();
        hi = hi.ceil().max(lo + 1.0);
    } else {
        lo = lo.min(0.0);
        hi *= 1.08;
    }
    if hi <= lo {
        hi = lo + 1.0;
    }
    (lo, hi)
}

/// How close two series must be to hide one another: within this share of the y axis
/// (about 3 pixels, the width of a line)...
const NEAR_SHARE_OF_AXIS: f64 = 0.01;
/// ...in at least this share of the seconds both have.
const NEAR_SHARE_OF_SECONDS: f64 = 0.9;

/// A line drawn over an earlier one that it hides.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Covers {
    /// Index (in the chart's lines) of the first earlier line it lies on.
    pub under: usize,
    /// Equal every second both have, not only near.
    pub exact: bool,
}

/// For each line, the earlier line it lies on, if any: `p` and `q` coincide when, over
/// the seconds both have (at least 90 % of `p`'s), they are within 1 % of the axis in
/// at least 90 % of them. Later lines are drawn over earlier ones, so such a line hides
/// the one it names.
pub fn coverings(chart: &Chart) -> Vec<Option<Covers>> {
    let (lo, hi) = y_range(chart);
    let tol = (hi - lo) * NEAR_SHARE_OF_AXIS;
    let pts: Vec<Vec<(f64, f64)>> = chart.lines.iter().map(|l| drawn_points(chart, l)).collect();
    // x values are whole seconds less a common offset: key them in half seconds.
    let key = |x: f64| (x * 2.0).round() as i64;
    let maps: Vec<std::collections::BTreeMap<i64, f64>> = pts
        .iter()
        .map(|p| p.iter().map(|&(x, y)| (key(x), y)).collect())
        .collect();
    (0..pts.len())
        .map(|i| {
            if pts[i].is_empty() {
                return None;
            }
            (0..i).find_map(|j| {
                let both: Vec<(f64, f64)> = pts[i]
                    .iter()
                    .filter_map(|&(x, y)| maps[j].get(&key(x)).map(|&z| (y, z)))
                    .collect();
                let n = both.len() as f64;
                if both.len() < 3 || n < NEAR_SHARE_OF_SECONDS * pts[i].len() as f64 {
                    return None;
                }
                let near = both.iter().filter(|(y, z)| (y - z).abs() <= tol).count() as f64;
                let exact = both.iter().all(|(y, z)| (y - z).abs() <= 1e-9 * (hi - lo));
                (near >= NEAR_SHARE_OF_SECONDS * n).then_some(Covers { under: j, exact })
            })
        })
        .collect()
}

/// The caption's sentence on lines that hide others, empty when none does.
fn hidden_note(chart: &Chart) -> String {
    let covered: Vec<String> = coverings(chart)
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let c = (*c)?;
            let sign = if c.exact { "=" } else { "≈" };
            Some(format!(
                "{} {sign} {}",
                chart.lines[i].label, chart.lines[c.under].label
            ))
        })
        .collect();
    if covered.is_empty() {
        return String::new();
    }
    format!(
        "Drawn over the line it equals (=, every second) or nearly equals (≈, within 1 % of \
         the axis in 90 % of the seconds), hiding it: {}.",
        covered.join("; ")
    )
}

/// A phase's label on a chart: its text (the name, or a shortened one), where it starts
/// and how wide it is (pixels of the chart image) and its row (0 at the top).
#[derive(Clone, Debug, PartialEq)]
pub struct PhaseLabel {
    pub text: String,
    pub x: i32,
    pub width: i32,
    pub row: usize,
}

/// Rows of phase labels at most.
pub const LABEL_ROWS: usize = 3;
/// Pixels kept free between two labels in a row.
const LABEL_GAP: i32 = 6;

/// Lays out the phases' labels so that none overlaps another. First every name whole,
/// each at the start of its band in the first row where it fits beside the labels
/// already there (a name may run past its band). If some name finds no row that way, a
/// second layout: a name that fits its band goes in the top row; a longer one goes whole
/// in a lower row where it fits, else shortened to its band's width (`conn.`) in the top
/// row, which then holds only labels inside their own bands and so never overlaps. A
/// label is left out only when not even one letter fits its band. `bands` are (name,
/// left, right) in pixels; `width` measures a text.
pub fn layout_phase_labels(
    bands: &[(String, i32, i32)],
    width: &dyn Fn(&str) -> i32,
) -> Vec<Option<PhaseLabel>> {
    let free = |rows: &[Vec<(i32, i32)>], r: usize, x: i32, w: i32| {
        rows[r]
            .iter()
            .all(|&(a, b)| x + w + LABEL_GAP <= a || b + LABEL_GAP <= x)
    };
    let place = |rows: &mut Vec<Vec<(i32, i32)>>, text: &str, x: i32, row: usize| {
        let w = width(text);
        rows[row].push((x, x + w));
        PhaseLabel {
            text: text.to_string(),
            x,
            width: w,
            row,
        }
    };
    // Whole names, staggered.
    let mut rows: Vec<Vec<(i32, i32)>> = vec![Vec::new(); LABEL_ROWS];
    let whole: Vec<Option<PhaseLabel>> = bands
        .iter()
        .map(|(name, left, _)| {
            let x = left + 3;
            let w = width(name);
            (0..LABEL_ROWS)
                .find(|&r| free(&rows, r, x, w))
                .map(|r| place(&mut rows, name, x, r))
        })
        .collect();
    if whole.iter().all(Option::is_some) {
        return whole;
    }
    // The top row for labels inside their bands, the rows below for longer names.
    let mut rows: Vec<Vec<(i32, i32)>> = vec![Vec::new(); LABEL_ROWS];
    bands
        .iter()
        .map(|(name, left, right)| {
            let x = left + 3;
            let room = right - x - 2;
            let w = width(name);
            if w <= room {
                return Some(place(&mut rows, name, x, 0));
            }
            if let Some(r) = (1..LABEL_ROWS).find(|&r| free(&rows, r, x, w)) {
                return Some(place(&mut rows, name, x, r));
            }
            let chars: Vec<char> = name.chars().collect();
            (1..chars.len())
                .rev()
                .map(|keep| chars[..keep].iter().collect::<String>() + ".")
                .find(|short| width(short) <= room)
                .map(|short| place(&mut rows, &short, x, 0))
        })
        .collect()
}

/// Pixels between two rows of phase labels.
const LABEL_ROW_H: i32 = 16;

/// The plot area's coordinates: seconds across, the drawn y range up.
type Plot<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A phase as drawn: its index among the run's phases, its name, and its band on the x
/// axis, cut to the axis.
type Band<'p> = (usize, &'p String, f64, f64);

/// The plot on `area`: the axes' room and the ranges.
fn plot_on<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (x0, x1): (f64, f64),
    lo: f64,
    hi: f64,
) -> DrawResult<DB, Plot<'_, DB>> {
    ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(78)
        .build_cartesian_2d(x0..x1, lo..hi)
}

/// The font of the phase labels.
fn label_font() -> TextStyle<'static> {
    ("sans-serif", 14).into_font().color(&BLACK.mix(0.75))
}

/// One chart: the phase bands and their labels under the data, the axes, the lines and
/// the legend. Returns the phase labels as drawn.
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &Chart,
    phases: &[(String, f64, f64)],
    x: (f64, f64),
) -> DrawResult<DB, Vec<Option<PhaseLabel>>> {
    root.fill(&WHITE)?;
    let (lo, hi) = y_range(chart);
    // Title on top, the legend in its own strip on the right: it never hides data.
    let body = root.titled(&chart.title, ("sans-serif", 22))?;
    let (plot, legend) = body.split_horizontally(WIDTH - LEGEND_W);
    // The phases' labels first: their rows decide the headroom above the data.
    let bands = visible_bands(phases, x);
    let layout = lay_out_labels(root, &plot, &bands, x, lo, hi)?;
    let rows = layout
        .iter()
        .flatten()
        .map(|l| l.row + 1)
        .max()
        .unwrap_or(1);
    // One row fits in the 8 % above the data; each further row takes 5 % more.
    let hi = hi + (hi - lo) * 0.05 * (rows - 1) as f64;
    let mut cc = plot_on(&plot, x, lo, hi)?;
    let labels = draw_bands(root, &mut cc, &bands, layout, phases.len(), (lo, hi))?;
    draw_axes(&mut cc, chart, lo, hi)?;
    draw_lines(&mut cc, &legend, chart, x, (lo, hi))?;
    Ok(labels)
}

/// The phases whose band shows on the axis, cut to it.
fn visible_bands(phases: &[(String, f64, f64)], (x0, x1): (f64, f64)) -> Vec<Band<'_>> {
    phases
        .iter()
        .enumerate()
        .map(|(i, (name, a, b))| (i, name, a.max(x0), b.min(x1)))
        .filter(|p| p.3 > p.2)
        .collect()
}

/// The phase labels' layout ([`layout_phase_labels`]) in the pixels of a plot with the
/// data's own y range, measured in the chart's font.
fn lay_out_labels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    plot: &DrawingArea<DB, Shift>,
    bands: &[Band],
    x: (f64, f64),
    lo: f64,
    hi: f64,
) -> DrawResult<DB, Vec<Option<PhaseLabel>>> {
    let font = label_font();
    let measure = |t: &str| {
        root.estimate_text_size(t, &font)
            .map_or(8 * t.chars().count() as i32, |(w, _)| w as i32)
    };
    let probe = plot_on(plot, x, lo, hi)?;
    let spans: Vec<(String, i32, i32)> = bands
        .iter()
        .map(|&(_, name, a, b)| {
            let x = |v: f64| probe.backend_coord(&(v, hi)).0;
            (name.clone(), x(a), x(b))
        })
        .collect();
    Ok(layout_phase_labels(&spans, &measure))
}

/// Phase bands under the data, in two alternating tints, labelled at their top left.
/// Returns each phase's label as drawn, by the phase's index.
fn draw_bands<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    cc: &mut Plot<DB>,
    bands: &[Band],
    layout: Vec<Option<PhaseLabel>>,
    phases: usize,
    (lo, hi): (f64, f64),
) -> DrawResult<DB, Vec<Option<PhaseLabel>>> {
    let tint = [RGBAColor(90, 120, 200, 0.10), RGBAColor(90, 180, 120, 0.10)];
    let font = label_font();
    let mut labels = vec![None; phases];
    for (&(i, _, a, b), label) in bands.iter().zip(layout) {
        cc.draw_series(std::iter::once(Rectangle::new(
            [(a, lo), (b, hi)],
            tint[i % 2].filled(),
        )))?;
        if let Some(l) = &label {
            let top = cc.backend_coord(&(a, hi)).1;
            let y = top + 3 + LABEL_ROW_H * l.row as i32;
            root.draw(&Text::new(l.text.clone(), (l.x, y), font.clone()))?;
        }
        labels[i] = label;
    }
    Ok(labels)
}

/// The axes, their numbers (powers of ten on a log chart) and the grid.
fn draw_axes<DB: DrawingBackend>(
    cc: &mut Plot<DB>,
    chart: &Chart,
    lo: f64,
    hi: f64,
) -> DrawResult<DB> {
    let log = chart.log_y;
    let y_fmt = move |v: &f64| {
        let v = if log { 10f64.powf(*v) } else { *v };
        short(v)
    };
    cc.configure_mesh()
        .x_desc("time since the run started (s)")
        .y_desc(chart.y_desc)
        .y_labels(if log { (hi - lo) as usize + 1 } else { 8 })
        .y_label_formatter(&y_fmt)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.12))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .draw()
}

/// The data lines, later ones over earlier ones (the plan thin), and the legend beside
/// the plot: one entry a line, a second text line when it lies on an earlier one, and
/// `+N more` when the strip is full. A chart without data says so.
fn draw_lines<DB: DrawingBackend>(
    cc: &mut Plot<DB>,
    legend: &DrawingArea<DB, Shift>,
    chart: &Chart,
    (x0, x1): (f64, f64),
    (lo, hi): (f64, f64),
) -> DrawResult<DB> {
    // (index in the chart, line, points as drawn)
    type Drawable<'a> = (usize, &'a Line, Vec<(f64, f64)>);
    let lines: Vec<Drawable> = chart
        .lines
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.points.is_empty())
        .map(|(i, l)| (i, l, drawn_points(chart, l)))
        .collect();
    if lines.is_empty() {
        cc.draw_series(std::iter::once(Text::new(
            "no data in this run",
            (x0 + (x1 - x0) * 0.4, (lo + hi) / 2.0),
            ("sans-serif", 20).into_font().color(&BLACK.mix(0.6)),
        )))?;
        return Ok(());
    }
    let covers = coverings(chart);
    let color_of = |i: usize, l: &Line| {
        if l.reference {
            RGBColor(110, 110, 110)
        } else {
            PALETTE[i % PALETTE.len()]
        }
    };
    let max_y = (HEIGHT as i32) - 60;
    let mut y = 24;
    let mut left_out = 0;
    for (n, (i, l, p)) in lines.iter().enumerate() {
        let color = color_of(n, l);
        // Later lines are drawn over earlier ones: the plan (reference) goes thin.
        let style = if l.reference {
            color.mix(0.7).stroke_width(1)
        } else {
            color.stroke_width(2)
        };
        cc.draw_series(LineSeries::new(p.clone(), style))?;
        let under = covers[*i].map(|c| {
            let sign = if c.exact { "=" } else { "≈" };
            format!("({sign} {})", chart.lines[c.under].label)
        });
        let need = if under.is_some() { 2 * 17 } else { 22 };
        if left_out > 0 || y + need > max_y {
            left_out += 1;
            continue;
        }
        legend.draw(&PathElement::new(
            vec![(6, y), (30, y)],
            color.stroke_width(3),
        ))?;
        let text = ("sans-serif", 13).into_font().color(&BLACK);
        legend.draw(&Text::new(l.label.clone(), (36, y - 7), text.clone()))?;
        if let Some(u) = under {
            legend.draw(&Text::new(u, (44, y + 9), text))?;
            y += 2 * 17 + 4;
        } else {
            y += 22;
        }
    }
    if left_out > 0 {
        let more = format!("+{left_out} more");
        legend.draw(&Text::new(more, (36, y - 7), ("sans-serif", 13)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(lines: Vec<(&str, Vec<f64>)>) -> Chart {
        Chart {
            name: "t",
            title: "t".into(),
            caption: String::new(),
            y_desc: "",
            log_y: false,
            lines: lines
                .into_iter()
                .map(|(label, ys)| Line {
                    label: label.into(),
                    points: ys
                        .into_iter()
                        .enumerate()
                        .map(|(i, y)| (i as f64 + 0.5, y))
                        .collect(),
                    reference: false,
                })
                .collect(),
        }
    }

    #[test]
    fn a_line_on_an_earlier_one_is_named() {
        let base: Vec<f64> = (0..40).map(|i| 1000.0 + 50.0 * (i % 7) as f64).collect();
        // 2 of 40 seconds off by a lot (a step seen a second apart): still on it.
        let mut near = base.iter().map(|y| y + 3.0).collect::<Vec<_>>();
        near[10] += 400.0;
        near[30] -= 400.0;
        let apart: Vec<f64> = base.iter().map(|y| y * 0.5).collect();
        let c = chart(vec![
            ("answered", base.clone()),
            ("served", base.clone()),
            ("received", near),
            ("half", apart),
        ]);
        let cov = coverings(&c);
        assert_eq!(cov[0], None);
        assert_eq!(
            cov[1],
            Some(Covers {
                under: 0,
                exact: true
            })
        );
        assert_eq!(
            cov[2],
            Some(Covers {
                under: 0,
                exact: false
            })
        );
        assert_eq!(cov[3], None);
        let note = hidden_note(&c);
        assert!(
            note.contains("served = answered") && note.contains("received ≈ answered"),
            "{note}"
        );
        // A line that is near only on a few seconds hides nothing.
        let mut part = base.clone();
        for y in part.iter_mut().skip(8) {
            *y += 500.0;
        }
        assert_eq!(coverings(&chart(vec![("a", base), ("b", part)]))[1], None);
    }

    /// The real font's widths, as the charts measure them.
    fn measure(t: &str) -> i32 {
        register_font();
        let mut svg = String::new();
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let font = ("sans-serif", 14).into_font().color(&BLACK);
        root.estimate_text_size(t, &font).unwrap().0 as i32
    }

    fn assert_apart(labels: &[Option<PhaseLabel>]) {
        let placed: Vec<&PhaseLabel> = labels.iter().flatten().collect();
        for (i, a) in placed.iter().enumerate() {
            assert_eq!(a.width, measure(&a.text), "{a:?}");
            for b in &placed[i + 1..] {
                let overlap = a.row == b.row && a.x < b.x + b.width && b.x < a.x + a.width;
                assert!(!overlap, "{a:?} overlaps {b:?}");
            }
        }
    }

    #[test]
    fn phase_labels_never_overlap() {
        // The demo's short connect phase before warm: the second label goes below.
        let demo = [
            ("connect".to_string(), 90, 116, 0),
            ("warm".to_string(), 116, 247, 1),
            ("2k".to_string(), 247, 510, 0),
        ];
        let spans: Vec<_> = demo.iter().map(|d| (d.0.clone(), d.1, d.2)).collect();
        let l = layout_phase_labels(&spans, &measure);
        for (got, want) in l.iter().zip(&demo) {
            let got = got.as_ref().unwrap();
            assert_eq!((got.text.as_str(), got.row), (want.0.as_str(), want.3));
        }
        assert_apart(&l);
        // Eight phases of 2 s on a 16 s axis (about 86 px each), long names: staggered
        // or shortened, all shown, none over another.
        let spans: Vec<_> = (0..8)
            .map(|i| {
                (
                    format!("step-{}-of-eight", i + 1),
                    90 + 86 * i,
                    176 + 86 * i,
                )
            })
            .collect();
        let l = layout_phase_labels(&spans, &measure);
        assert!(l.iter().all(Option::is_some), "{l:?}");
        assert!(l.iter().any(|x| x.as_ref().unwrap().row > 0), "{l:?}");
        assert_apart(&l);
        // Bands just wide enough for a letter and a full stop, long names: the rows fill
        // up, then names are shortened to fit their band.
        let w = measure("p.") + 6;
        let spans: Vec<_> = (0..20)
            .map(|i| (format!("phase-number-{i}"), 90 + w * i, 90 + w * (i + 1)))
            .collect();
        let l = layout_phase_labels(&spans, &measure);
        assert_apart(&l);
        assert!(l.iter().flatten().any(|x| x.text == "p."), "{l:?}");
        for (x, (_, left, right)) in l.iter().zip(&spans).filter(|(x, _)| x.is_some()) {
            let x = x.as_ref().unwrap();
            if x.text.ends_with('.') {
                assert!(x.x >= *left && x.x + x.width <= *right, "{x:?}");
            }
        }
    }
}
