//! A run: checks limits, starts the workers (threads, or child processes with
//! `--procs`), walks the plan, writes a line per second, drains, reconciles money with
//! the servers and writes the summary.
//!
//! [`run`] checks this host's limits and hands over to the coordinator, the only place
//! that knows about time in whole phases; workers only see the atomics in
//! [`crate::run_state::RunState`]. In a child process (`--child`), the plan comes from
//! the parent as lines on stdin and the figures go back as lines on stdout (see
//! [`crate::procs`]).
//!
//! The parts: `coordinator` (the steps of a run), `start` (what it starts before the
//! first second), `summary` (the verdict and the summary files), `clock` (unix time and
//! `--start-at`), `signals` (Ctrl-C), `progress` (the terminal's status line),
//! `servers` (the servers' HTTP: campaigns and the money check's `/stats`) and
//! `control` (the `--control` listener's handler) with `live` (the record its
//! `/metrics` serves).

/// `eprintln!` that keeps off the live status line ([`note_line`]).
macro_rules! note {
    ($($t:tt)*) => {
        $crate::run::note_line(format_args!($($t)*))
    };
}

mod clock;
mod control;
mod coordinator;
mod live;
mod progress;
mod servers;
mod signals;
mod start;
mod summary;

pub use clock::{check_start_at, unix_f64};
pub use coordinator::Outcome;
pub use progress::{end_live_line, note_line};
pub use servers::fetch_stats;

use crate::run_config::RunConfig;
use crate::users::Targets;
use coordinator::Coordinator;
use redpacket_host::check;

/// Runs the whole thing; errors are one line for the user (exit code 2 for limits).
pub fn run(cfg: RunConfig) -> Result<Outcome, (i32, String)> {
    signals::install(cfg.child);
    redpacket_sys::rlimit::raise_nofile();
    let targets = Targets::new(&cfg.servers, cfg.all_users, cfg.users).map_err(|e| (2, e))?;
    if !cfg.child {
        check_limits(&cfg, &targets)?;
    }
    let mut coord = Coordinator::start(&cfg, &targets)?;
    coord.run(&cfg, &targets)
}

/// The same arithmetic as `redpacket-loadgen check`, on its limits only (open files,
/// memory, ports): the kernel settings it advises on never stop a run. Its servers are
/// the addresses this run's users connect to, as the fleet's plan lists them for `check
/// --servers`.
fn check_limits(cfg: &RunConfig, targets: &Targets) -> Result<(), (i32, String)> {
    let ask = check::LoadgenAsk {
        users: u64::from(cfg.users.len()),
        source_addrs: cfg.source_addrs.len().max(1) as u64,
        servers: targets.servers_of(cfg.users).max(1) as u64,
        procs: cfg.procs.max(1) as u64,
    };
    let report = check::loadgen(&ask, None, &check::HostView::read(None));
    if report.ok {
        return Ok(());
    }
    Err((
        2,
        format!(
            "this host cannot hold {} users as it is: {} (see `redpacket-loadgen check`)",
            report.asked, report.first_to_raise
        ),
    ))
}
