//! Charts: one PNG (to look at, to attach) and one SVG (to inline in the HTML) each.
//!
//! Every chart shares the x axis (seconds since the run started) and the shaded,
//! labelled phase bands, so a dip in one chart can be matched with a spike in another
//! by eye. Text is drawn with DejaVu Sans embedded in the binary: the PNGs look the
//! same on a server without fonts.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::analyze::Analysis;
use super::load::{Role, Run};

/// Size of every chart, pixels.
pub const WIDTH: u32 = 1000;
pub const HEIGHT: u32 = 420;
/// Width of the legend strip on the right of the plot.
const LEGEND_W: u32 = 210;
/// Legend entries that fit the strip; more lines are drawn but summed up as "+N more".
const MAX_LEGEND: usize = 16;

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
    pub y_desc: &'static str,
    pub log_y: bool,
    pub lines: Vec<Line>,
}

/// A chart written to disk.
pub struct Drawn {
    pub name: &'static str,
    pub title: String,
    pub svg: String,
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

/// The charts of a run, before drawing.
pub fn plan(run: &Run, a: &Analysis) -> Vec<Chart> {
    let hosts: Vec<&str> = run.hosts.iter().map(|h| h.name.as_str()).collect();
    let servers: Vec<&str> = run
        .hosts
        .iter()
        .filter(|h| h.role() == Role::Server)
        .map(|h| h.name.as_str())
        .collect();
    let mut qps = vec![
        Line {
            reference: true,
            ..line(a, "target", "client.target_qps")
        },
        line(a, "client sent", "client.sent/s"),
        line(a, "client served answers", "client.served/s"),
        line(a, "server shakes received", "server.shake/s"),
        line(a, "server served (not shed)", "server.served/s"),
    ];
    if servers.len() > 1 {
        for s in &servers {
            qps.push(line(
                a,
                &format!("server {s} served"),
                &format!("host.{s}.served/s"),
            ));
        }
    }
    let lat = ["p50", "p90", "p99", "p999", "max"]
        .iter()
        .map(|k| line(a, &k.replace("p999", "p99.9"), &format!("client.lat.{k}")))
        .collect();
    let mut conns = vec![
        line(a, "client connections", "client.connections"),
        line(a, "server open", "server.open"),
    ];
    let mut pps = Vec::new();
    let mut cpu = Vec::new();
    for h in &hosts {
        conns.push(line(
            a,
            &format!("{h} TCP established"),
            &format!("host.{h}.estab"),
        ));
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
        cpu.push(line(a, &format!("{h} all cores"), &format!("host.{h}.cpu")));
        cpu.push(line(
            a,
            &format!("{h} process (% of a core)"),
            &format!("host.{h}.proc_cpu"),
        ));
    }
    let packets = vec![
        line(a, "shake packets issued", "server.issued/s"),
        line(a, "shake packets won", "server.won/s"),
        line(a, "sends created", "server.created/s"),
        line(a, "sends grabbed", "server.grabbed/s"),
    ];
    let c = |name, title: &str, y_desc, log_y, lines| Chart {
        name,
        title: title.to_string(),
        y_desc,
        log_y,
        lines,
    };
    vec![
        c(
            "qps",
            "Shake QPS: client vs server",
            "requests / s",
            false,
            qps,
        ),
        c(
            "latency",
            "Client latency percentiles (per second)",
            "latency, ms (log scale)",
            true,
            lat,
        ),
        c("connections", "Connections", "connections", false, conns),
        c(
            "pps",
            "Packets per second (busiest interface)",
            "packets / s",
            false,
            pps,
        ),
        c(
            "packets",
            "Red packets issued vs won",
            "packets / s",
            false,
            packets,
        ),
        c("cpu", "CPU per host", "CPU %", false, cpu),
    ]
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
    let x_max = a
        .series
        .span()
        .map_or(1.0, |(_, hi)| hi as f64 - a.t0)
        .max(phases.iter().map(|p| p.2).fold(1.0, f64::max));
    let mut out = Vec::new();
    for chart in plan(run, a) {
        let png = dir.join(format!("{}.png", chart.name));
        {
            let root = BitMapBackend::new(&png, (WIDTH, HEIGHT)).into_drawing_area();
            draw(&root, &chart, &phases, x_max).map_err(io::Error::other)?;
            root.present().map_err(io::Error::other)?;
        }
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
            draw(&root, &chart, &phases, x_max).map_err(io::Error::other)?;
            root.present().map_err(io::Error::other)?;
        }
        fs::write(dir.join(format!("{}.svg", chart.name)), &svg)?;
        out.push(Drawn {
            name: chart.name,
            title: chart.title,
            svg,
        });
    }
    Ok(out)
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &Chart,
    phases: &[(String, f64, f64)],
    x_max: f64,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let tf = |y: f64| if chart.log_y { y.max(1e-3).log10() } else { y };
    let lines: Vec<(&Line, Vec<(f64, f64)>)> = chart
        .lines
        .iter()
        .filter(|l| !l.points.is_empty())
        .map(|l| (l, l.points.iter().map(|&(x, y)| (x, tf(y))).collect()))
        .collect();
    let ys = lines.iter().flat_map(|(_, p)| p.iter().map(|q| q.1));
    let (mut lo, mut hi) = ys.fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
    if lines.is_empty() {
        (lo, hi) = (0.0, 1.0);
    }
    if !chart.log_y {
        lo = lo.min(0.0);
    } else {
        lo = lo.floor();
    }
    hi = if chart.log_y {
        hi.ceil().max(lo + 1.0)
    } else {
        hi * 1.08
    };
    if hi <= lo {
        hi = lo + 1.0;
    }
    // Title on top, the legend in its own strip on the right: it never hides data.
    let body = root.titled(&chart.title, ("sans-serif", 22))?;
    let (plot, legend) = body.split_horizontally(WIDTH - LEGEND_W);
    let mut cc = ChartBuilder::on(&plot)
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(78)
        .build_cartesian_2d(0.0..x_max, lo..hi)?;

    // Phase bands first, under the data.
    let band = [RGBAColor(90, 120, 200, 0.10), RGBAColor(90, 180, 120, 0.10)];
    for (i, (name, a, b)) in phases.iter().enumerate() {
        let (a, b) = (a.max(0.0), b.min(x_max));
        if b <= a {
            continue;
        }
        cc.draw_series(std::iter::once(Rectangle::new(
            [(a, lo), (b, hi)],
            band[i % 2].filled(),
        )))?;
        cc.draw_series(std::iter::once(Text::new(
            name.clone(),
            (a + (b - a) * 0.01, hi - (hi - lo) * 0.02),
            ("sans-serif", 14).into_font().color(&BLACK.mix(0.7)),
        )))?;
    }

    let log = chart.log_y;
    let y_fmt = move |v: &f64| {
        let v = if log { 10f64.powf(*v) } else { *v };
        short(v)
    };
    cc.configure_mesh()
        .x_desc("time since start (s)")
        .y_desc(chart.y_desc)
        .y_labels(if log { (hi - lo) as usize + 1 } else { 8 })
        .y_label_formatter(&y_fmt)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.12))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .draw()?;

    if lines.is_empty() {
        cc.draw_series(std::iter::once(Text::new(
            "no data in this run",
            (x_max * 0.4, (lo + hi) / 2.0),
            ("sans-serif", 20).into_font().color(&BLACK.mix(0.6)),
        )))?;
        return Ok(());
    }
    let n_lines = lines.len();
    for (i, (l, p)) in lines.into_iter().enumerate() {
        let color = if l.reference {
            RGBColor(110, 110, 110)
        } else {
            PALETTE[i % PALETTE.len()]
        };
        // Later lines are drawn over earlier ones: the plan (reference) goes thin and dashed-looking.
        let style = if l.reference {
            color.mix(0.7).stroke_width(1)
        } else {
            color.stroke_width(2)
        };
        cc.draw_series(LineSeries::new(p, style))?;
        if i >= MAX_LEGEND {
            if i == n_lines - 1 {
                let y = 24 + 22 * MAX_LEGEND as i32;
                let more = format!("+{} more", n_lines - MAX_LEGEND);
                legend.draw(&Text::new(more, (36, y - 7), ("sans-serif", 13)))?;
            }
            continue;
        }
        let y = 24 + 22 * i as i32;
        legend.draw(&PathElement::new(
            vec![(6, y), (30, y)],
            color.stroke_width(3),
        ))?;
        legend.draw(&Text::new(
            l.label.clone(),
            (36, y - 7),
            ("sans-serif", 13).into_font().color(&BLACK),
        ))?;
    }
    Ok(())
}

/// Axis numbers: `1.2k`, `3.4M`, `0.25`.
fn short(v: f64) -> String {
    let a = v.abs();
    let (x, suffix) = if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let s = if x.abs() >= 100.0 || x == x.trunc() {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    };
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{suffix}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn short_numbers() {
        assert_eq!(super::short(0.0), "0");
        assert_eq!(super::short(0.25), "0.25");
        assert_eq!(super::short(1500.0), "1.5k");
        assert_eq!(super::short(60_000.0), "60k");
        assert_eq!(super::short(2_000_000.0), "2M");
    }
}
