//! Command line: flags are parsed and checked here, then turned into the configuration
//! of what they ask for ([`crate::run_config::RunConfig`], [`crate::demo::DemoConfig`]).
//!
//! `main` only calls [`main`], which returns the exit code: 0 all thresholds met, 1 a
//! threshold or the money check failed (or the run broke), 2 bad usage or a limit this
//! host cannot meet. One file per subcommand's flags (`run_args`, `demo_args`,
//! `check_args`), `values` for the parsers they share and `usage` for how a refused
//! value ends the program.

mod check_args;
mod demo_args;
mod run_args;
mod usage;
mod values;

pub use check_args::CheckArgs;
pub use demo_args::DemoArgs;
pub use run_args::RunArgs;
pub use usage::EXIT_USAGE;

use clap::{Parser, Subcommand};
use std::ffi::OsString;

/// redpacket-loadgen: the open-loop load generator for the redpacket server.
///
/// Many users, one connection each, shakes at a steady target rate, latency measured
/// from the scheduled send time. `run` drives servers already running, `demo` starts
/// its own on this machine and makes a report, `check` says whether this host can hold
/// the users.
///
/// Exit codes: 0 all thresholds met, 1 a threshold or the money check failed (or the
/// run broke), 2 bad usage or a limit this host cannot meet.
#[derive(Parser, Debug)]
#[command(
    name = "redpacket-loadgen",
    version,
    propagate_version = true,
    verbatim_doc_comment
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of `redpacket-loadgen`.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Drive one or more running servers through a plan of phases.
    Run(Box<RunArgs>),
    /// One command, all local: servers, load and a report on this machine.
    ///
    /// Starts redpacket-server (built beside this program if needed), connects ~10 000
    /// users, runs a one-minute plan, writes results/<run-id>/ with its report
    /// (report.html, report.md, charts) and prints the summary.
    Demo(DemoArgs),
    /// Can this host hold N users as it is?
    ///
    /// Reads open-files limits, memory, ephemeral ports (the limits, which bound the
    /// count) and every key of sysctl/client.conf; says what to raise first. Settings
    /// that do not bound the count are advice.
    /// Exit 0: it can; 1: it cannot (or --strict and advice); 2: bad flag.
    Check(CheckArgs),
}

/// Parses `args` and runs; returns the process exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            // Help and version go to stdout with 0; every other error is usage.
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { 0 };
        }
    };
    match cli.command {
        Command::Run(a) => a.run(),
        Command::Demo(a) => a.run(),
        Command::Check(a) => a.run(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
