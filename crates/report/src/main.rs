//! `redpacket-report results/<run-id>`: tables, charts and pages from a run folder.
//!
//! `redpacket-report --compare RUN_A RUN_B` prints the two runs' phases side by side.
//! Exit codes: 0 done, 1 the outputs could not be written, 2 usage error or not a run.

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
    about = "Report on a run folder: a table per phase, charts, report.html and report.md",
    override_usage = "redpacket-report <RUN>\n       redpacket-report --compare <RUN_A> <RUN_B>"
)]
struct Args {
    /// The run folder, e.g. results/20261126-142501-demo (required, unless --compare).
    #[arg(required_unless_present = "compare", conflicts_with = "compare")]
    run: Option<PathBuf>,
    /// Compare two run folders phase by phase.
    #[arg(long, num_args = 2, value_names = ["RUN_A", "RUN_B"])]
    compare: Option<Vec<PathBuf>>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match (&args.compare, &args.run) {
        (Some(pair), _) => redpacket_report::compare(&pair[0], &pair[1]),
        (None, Some(dir)) => redpacket_report::report(dir).map(|o| o.text),
        (None, None) => {
            eprintln!("redpacket-report: give a run folder or --compare RUN_A RUN_B");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("redpacket-report: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
