//! `redpacket-report results/<run-id>`: tables, charts and pages from a run folder.
//!
//! `redpacket-report --compare RUN_A RUN_B` prints the two runs' phases side by side;
//! `redpacket-report --json RUN` writes the same files and prints `report.json` instead
//! of the terminal text. `--max-p99-ms`, `--max-p999-ms`, `--rate-tolerance-pct` and
//! `--max-error-rate` set the thresholds, over `run.json`'s.
//! Exit codes: 0 done (whatever the verdict), 1 the outputs could not be written, 2
//! usage error or not a run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Counts the heap, so reading a hostile run folder stops at a bound in memory
/// (`redpacket_report::heap`).
#[global_allocator]
static HEAP: redpacket_report::heap::Counting = redpacket_report::heap::Counting;

#[derive(Parser)]
#[command(
    name = "redpacket-report",
    version,
    about = "Report on a run folder: a verdict against thresholds, a table per phase, charts, report.html, report.md and report.json",
    override_usage = "redpacket-report [OPTIONS] <RUN>\n       redpacket-report [OPTIONS] --compare <RUN_A> <RUN_B>"
)]
struct Args {
    /// The run folder, e.g. results/20261126-142501-demo (required, unless --compare).
    #[arg(required_unless_present = "compare", conflicts_with = "compare")]
    run: Option<PathBuf>,
    /// Compare two run folders phase by phase.
    #[arg(long, num_args = 2, value_names = ["RUN_A", "RUN_B"])]
    compare: Option<Vec<PathBuf>>,
    /// Print report.json (written beside report.md as always) instead of the tables.
    #[arg(long, conflicts_with = "compare")]
    json: bool,
    /// A phase fails when its p99 latency is above this, ms (default 50; over run.json).
    #[arg(long, value_name = "MS", value_parser = non_negative)]
    max_p99_ms: Option<f64>,
    /// A phase fails when its p99.9 latency is above this, ms (default: not judged).
    #[arg(long, value_name = "MS", value_parser = non_negative)]
    max_p999_ms: Option<f64>,
    /// A phase fails when its achieved rate is more than this below its target, percent
    /// (default 1).
    #[arg(long, value_name = "PCT", value_parser = non_negative)]
    rate_tolerance_pct: Option<f64>,
    /// A phase fails when its errors plus timeouts exceed this share of the shakes its
    /// target asked (a fraction; default 0: none).
    #[arg(long, value_name = "FRACTION", value_parser = non_negative)]
    max_error_rate: Option<f64>,
}

/// A finite number, 0 or more.
fn non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number of 0 or more")),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let flags = redpacket_report::Thresholds {
        max_p99_ms: args.max_p99_ms,
        max_p999_ms: args.max_p999_ms,
        rate_tolerance_pct: args.rate_tolerance_pct,
        max_error_rate: args.max_error_rate,
    };
    let result = match (&args.compare, &args.run) {
        (Some(pair), _) => redpacket_report::compare_with(&pair[0], &pair[1], &flags),
        (None, Some(dir)) => redpacket_report::report_with(dir, &flags).map(|o| {
            if args.json {
                o.json_text
            } else {
                o.text
            }
        }),
        (None, None) => {
            eprintln!("redpacket-report: give a run folder or --compare RUN_A RUN_B");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(text) => {
            // A reader that closed the pipe early (`| head`) is not an error of the report.
            let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("redpacket-report: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
