//! `redpacket-live`: the fleet while it runs, one line a second (see the crate's doc).
//!
//!     redpacket-live --plan live-plan.json --out results/<run>/live.jsonl
//!
//! Exit codes: 0 the run's end was reached; 1 the output could not be written or a
//! follower could not start; 2 a usage error or a plan that does not read.

use clap::Parser;
use redpacket_live::plan::Plan;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

#[derive(Parser)]
#[command(
    name = "redpacket-live",
    about = "Follow every host's per-second records and show the fleet once a second"
)]
struct Args {
    /// The hosts, their files, how to reach them and the run's end (JSON; see the
    /// crate's `plan` module).
    #[arg(long)]
    plan: PathBuf,
    /// Where the seconds go, one JSON object per line (the run folder's live.jsonl);
    /// its folder is made.
    #[arg(long)]
    out: PathBuf,
}

fn main() {
    let args = Args::parse();
    let plan = match std::fs::read_to_string(&args.plan)
        .map_err(|e| format!("{}: {e}", args.plan.display()))
        .and_then(|t| Plan::parse(&t))
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("redpacket-live: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&plan, &args.out) {
        eprintln!("redpacket-live: {e}");
        std::process::exit(1);
    }
}

fn run(plan: &Plan, out: &std::path::Path) -> Result<(), String> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let file = std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut file = BufWriter::new(file);
    let stdout = std::io::stdout();
    let mut print = |s: &str| {
        let mut o = stdout.lock();
        let _ = writeln!(o, "{s}");
        let _ = o.flush();
    };
    let seen = redpacket_live::watch(
        &plan.hosts(),
        Some(plan.until),
        &mut file,
        &mut print,
        &AtomicBool::new(false),
    )
    .map_err(|e| format!("{}: {e}", out.display()))?;
    let missed = if seen.missed.is_empty() {
        "none".to_string()
    } else {
        seen.missed.iter().cloned().collect::<Vec<_>>().join(", ")
    };
    print(&format!(
        "live: {} second(s) in {}; records after their second: {}; unreadable: {}; hosts missed: {missed}",
        seen.seconds,
        out.display(),
        seen.late,
        seen.unreadable
    ));
    Ok(())
}
