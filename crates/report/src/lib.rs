//! The results report: a run folder in, a verdict, tables, charts, `report.html`,
//! `report.md` and `report.json` out.
//!
//! The report reads only the run folder (`results/README.md` documents its files), so a
//! run can be copied anywhere and reported on later. [`report`] writes the pages and
//! charts into the folder and returns the terminal text; [`compare`] sets two runs side
//! by side; [`load`] is the run as read and checked, for other programs and tests.
//!
//! # Layout
//!
//! Each module uses only the ones above it in this list, never one below:
//!
//! - `heap` counts the heap the process holds; `numbers` writes figures (grouped
//!   numbers, clock times, axis numbers).
//! - `safe_fs` is the one way files are read from the run folder and the report's own
//!   written into it: the hosts that wrote the folder are not trusted.
//! - `load` reads the run folder into a [`Run`], listing what is missing or damaged.
//! - `sanity` names the figures no run can produce; `money` reconciles the run's money
//!   over every server and load generator.
//! - `thresholds` resolves the limits a phase is judged against (defaults, `run.json`,
//!   the phase's own, flags) and names where each came from.
//! - `series` aligns every host's per-second lines on whole seconds (merging each
//!   second's latency histograms); `analyze` turns them into per-phase figures, cells
//!   that every view shares, and judges each loaded phase against its limits.
//! - `table` lays the figures out as tables; `footprint` reads and tabulates what each
//!   user and request costs; `charts` draws the PNG and SVG charts, from where the
//!   run's load starts.
//! - `verdict` words what a reader wants first (passed or failed, the run's lines);
//!   `render` is the terminal view and the comparison; `page` holds the sections of the
//!   two pages in one order, which `html` and `markdown` write.
//! - `json` writes `report.json` from the same analysis and verdict.
//! - This file: [`load`] runs `sanity` after `load`'s reading; [`report`] and
//!   [`compare`] run the rest.

pub mod analyze;
pub mod charts;
mod clocks;
pub mod footprint;
pub mod heap;
mod html;
pub mod json;
mod load;
mod markdown;
pub mod money;
pub mod numbers;
mod page;
pub mod render;
mod safe_fs;
mod sanity;
mod series;
mod table;
pub mod thresholds;
mod verdict;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

pub use load::{NotARun, Run};
pub use redpacket_formats::run::Thresholds;

#[derive(Debug)]
pub enum ReportError {
    /// The folder is not a run (exit code 2).
    NotARun(NotARun),
    /// The outputs could not be written (exit code 1).
    Io(PathBuf, io::Error),
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportError::NotARun(e) => write!(f, "{e}"),
            ReportError::Io(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

impl std::error::Error for ReportError {}

impl ReportError {
    pub fn exit_code(&self) -> i32 {
        match self {
            ReportError::NotARun(_) => 2,
            ReportError::Io(..) => 1,
        }
    }
}

/// Reads a run folder (`load::read`) and names the figures no run can produce
/// (`sanity::implausible`) among its problems. Fails only when `dir` is not a run.
pub fn load(dir: &Path) -> Result<Run, NotARun> {
    let mut run = load::read(dir)?;
    run.implausible = sanity::implausible(&run);
    run.problems.extend(run.implausible.iter().cloned());
    Ok(run)
}

/// What a report run produced.
pub struct Outputs {
    /// The terminal report.
    pub text: String,
    pub html: PathBuf,
    pub markdown: PathBuf,
    /// `report.json`, and its text.
    pub json: PathBuf,
    pub json_text: String,
    pub charts: Vec<PathBuf>,
}

/// Reports on one run folder: writes `report.html`, `report.md`, `report.json` and
/// `charts/` into it and returns the terminal text. Phases are judged against
/// `run.json`'s thresholds and the defaults.
pub fn report(dir: &Path) -> Result<Outputs, ReportError> {
    report_with(dir, &Thresholds::default())
}

/// [`report`], with thresholds (the flags of `redpacket-report`) over `run.json`'s.
pub fn report_with(dir: &Path, flags: &Thresholds) -> Result<Outputs, ReportError> {
    let run = load(dir).map_err(ReportError::NotARun)?;
    let a = analyze::analyze_with(&run, flags);
    // Every output is written under a fresh name and renamed into place: a link planted
    // under an output's name is replaced, never written through (see `safe_fs`).
    let chart_dir = dir.join("charts");
    let drawn = safe_fs::replace_dir(dir, "charts", |tmp| charts::draw_all(&run, &a, tmp))
        .map_err(|e| ReportError::Io(chart_dir.clone(), e))?;
    let write = |name: &str, text: String| {
        safe_fs::write_file(dir, name, text.as_bytes())
            .map_err(|e| ReportError::Io(dir.join(name), e))
    };
    let html_path = write("report.html", html::html(&run, &a, &drawn))?;
    let md_path = write("report.md", markdown::markdown(&run, &a, &drawn))?;
    let json_text = json::to_text(&json::report_json(&run, &a));
    let json_path = write(json::FILE, json_text.clone())?;
    let mut text = render::terminal(&run, &a);
    text.push_str(&render::footprints_text(&run));
    text.push_str(&format!(
        "\nWrote {}, {} and {} ({} charts in {}).\n",
        html_path.display(),
        md_path.display(),
        json_path.display(),
        drawn.len(),
        chart_dir.display()
    ));
    let charts = drawn
        .iter()
        .flat_map(|d| ["png", "svg"].map(|ext| chart_dir.join(format!("{}.{ext}", d.name))))
        .collect();
    Ok(Outputs {
        text,
        html: html_path,
        markdown: md_path,
        json: json_path,
        json_text,
        charts,
    })
}

/// Two runs' phase tables side by side, matched by phase name, with B - A.
pub fn compare(a: &Path, b: &Path) -> Result<String, ReportError> {
    compare_with(a, b, &Thresholds::default())
}

/// [`compare`], each run judged with `flags` over its own `run.json`'s thresholds.
pub fn compare_with(a: &Path, b: &Path, flags: &Thresholds) -> Result<String, ReportError> {
    let ra = load(a).map_err(ReportError::NotARun)?;
    let rb = load(b).map_err(ReportError::NotARun)?;
    let (aa, ab) = (
        analyze::analyze_with(&ra, flags),
        analyze::analyze_with(&rb, flags),
    );
    Ok(render::comparison(&ra, &aa, &rb, &ab))
}
