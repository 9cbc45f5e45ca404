//! Command line: flags are parsed and checked here, then turned into a [`RunConfig`].
//!
//! `main` only calls [`main`], which returns the exit code: 0 all thresholds met, 1 a
//! threshold or the money check failed (or the run broke), 2 bad usage or a limit this
//! host cannot meet.

use crate::addrs::parse_source_addrs;
use crate::demo::{self, DemoConfig};
use crate::plan::{self, Phase};
use crate::run;
use crate::run_config::RunConfig;
use crate::run_dir;
use crate::users::{ServerTarget, Targets, UserRange};
use clap::{Args, Parser, Subcommand};
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Open-loop load generator for the redpacket server: many users, one connection each,
/// shakes at a steady target rate, latency from the scheduled send time.
#[derive(Parser, Debug)]
#[command(name = "redpacket-loadgen", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Drive one or more running servers through a plan of phases.
    Run(Box<RunArgs>),
    /// One command, all local: start redpacket-server (built beside this program if
    /// needed), connect ~10 000 users, run a one-minute plan, write results/<run-id>/
    /// with its report (report.html, report.md, charts) and print the summary.
    Demo(DemoArgs),
    /// Can this host hold N users as it is? Reads open-files limits, memory, ephemeral
    /// ports (the limits, which bound the count) and every key of sysctl/client.conf;
    /// says what to raise first. Settings that do not bound the count are advice.
    /// Exit 0: it can; 1: it cannot (or --strict and advice); 2: bad flag.
    Check(CheckArgs),
}

fn duration_or_zero(s: &str) -> Result<Duration, String> {
    if s.trim().trim_end_matches(|c: char| c.is_ascii_alphabetic()) == "0" {
        return Ok(Duration::ZERO);
    }
    duration(s)
}

fn duration(s: &str) -> Result<Duration, String> {
    plan::parse_duration(s)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("bad duration {s:?}: try 5s, 500ms or 2m"))
}

fn range_u64(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("bad range {s:?}: expected A..B"))?;
    let (a, b) = (
        a.parse::<u64>().map_err(|e| e.to_string())?,
        b.parse::<u64>().map_err(|e| e.to_string())?,
    );
    if b < a {
        return Err(format!("bad range {s:?}: B below A"));
    }
    Ok((a, b))
}

fn rate(s: &str) -> Result<f64, String> {
    plan::parse_rate(s).ok_or_else(|| format!("bad rate {s:?}: try 3000 or 2.5k"))
}

/// Flags of `run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Users to drive, START..END (END excluded) or a count; each is one connection.
    #[arg(long, default_value = "0..10000")]
    pub users: UserRange,
    /// Server address(es) for users, ADDR or ADDR=START..END (END excluded). Bare
    /// addresses: users are split into contiguous, equal id ranges, one per server in
    /// the order given. With ranges (all or none): each server holds the users of its
    /// range, which may reach beyond --users; the ranges must not overlap and must hold
    /// every user of --users. Repeat or comma-separate.
    #[arg(
        long,
        value_name = "ADDR[=START..END]",
        value_delimiter = ',',
        default_value = "127.0.0.1:1025"
    )]
    pub server: Vec<ServerTarget>,
    /// Control (HTTP) address(es) of the same servers, same order: enables campaigns
    /// (each server's for its own range of users) and the money check against their
    /// /stats.
    #[arg(long, value_delimiter = ',')]
    pub server_control: Vec<SocketAddr>,
    /// Source addresses to connect from: list, range or CIDR (127.0.0.2,127.0.0.3 |
    /// 127.0.0.2-127.0.0.9 | 127.0.1.0/24). Default: the kernel's choice.
    #[arg(long)]
    pub source_addrs: Option<String>,
    /// New connections per second (all threads/processes together).
    #[arg(long, default_value = "5000", value_parser = rate)]
    pub connect_rate: f64,
    /// Longest the connect ramp may last before load starts anyway. Default: twice the
    /// time the ramp needs at --connect-rate, plus 10 s.
    #[arg(long, value_parser = duration)]
    pub connect_deadline: Option<Duration>,
    /// Worker threads (each pinned to a core). Default: the CPUs available.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Do not pin worker threads to cores.
    #[arg(long)]
    pub no_pin: bool,
    /// Split the users over N child processes (when one process may not open enough
    /// files); their figures are merged into one output.
    #[arg(long, default_value_t = 1)]
    pub procs: usize,
    /// A request unanswered after this long counts as a timeout.
    #[arg(long, default_value = "5s", value_parser = duration)]
    pub timeout: Duration,
    /// Longest a connect plus login may take.
    #[arg(long, default_value = "5s", value_parser = duration)]
    pub connect_timeout: Duration,
    /// Reconnect (with backoff) users whose connection drops after login.
    #[arg(long)]
    pub reconnect: bool,
    /// Think time before grabbing a notified packet, milliseconds, MIN..MAX.
    #[arg(long, default_value = "10..200", value_parser = range_u64)]
    pub think_ms: (u64, u64),
    /// Amount of each client send, cents, MIN..MAX.
    #[arg(long, default_value = "100..1000", value_parser = range_u64)]
    pub send_cents: (u64, u64),
    /// Client-to-client sends (0x0007) per second, all users together, in phases that
    /// do not set their own.
    #[arg(long, default_value = "200", value_parser = rate)]
    pub send_rate: f64,
    /// A plan file (TOML, [[phase]] tables). See the README.
    #[arg(long)]
    pub plan: Option<PathBuf>,
    /// A phase NAME:RATE:DURATION[:campaigns], e.g. 3k:3000:20s; repeat for more.
    /// Replaces the default plan (30k, 60k, peak). Its rate is taken as given: --scale
    /// does not apply to it, nor to --plan.
    #[arg(long = "phase", value_parser = plan::parse_phase)]
    pub phases: Vec<Phase>,
    /// Multiplies the default plan's rates (0.1 gives phases 3k, 6k and peak at 14k);
    /// only the default plan's: with --phase or --plan it is a usage error.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Length of each phase of the default plan.
    #[arg(long, default_value = "60s", value_parser = duration)]
    pub phase_duration: Duration,
    /// Begin the first phase at this unix time, seconds (e.g. 1795702321.5): users
    /// connect right away, then load starts at the instant, so every client host of a
    /// fleet given the same value starts together. The instant ends the ramp (not
    /// --connect-deadline); users not connected by then keep connecting during the
    /// first phase and are counted in the summary. Must be in the future, within a day.
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub start_at: Option<f64>,
    /// Directory for loadgen.jsonl, summary.json and histograms.json (and this host's
    /// net.jsonl and tuning.txt): a run's `results/<run-id>/<host>` folder. Default: a
    /// new results/<UTC time>-run/<host>/ under the current directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Do not sample this host into --out (when a server on the same host does).
    #[arg(long)]
    pub no_sample_host: bool,
    /// Serve GET /qps?qps=X (change the rate live) and /stats on this address.
    #[arg(long)]
    pub control: Option<SocketAddr>,
    /// Fail (exit 1) if any phase's p99 latency is above this, milliseconds.
    #[arg(long)]
    pub max_p99_ms: Option<f64>,
    /// Fail (exit 1) if any phase's (errors + timeouts) / scheduled is above this.
    #[arg(long)]
    pub max_error_rate: Option<f64>,
    /// Do not fail when clients' money differs from the servers' /stats (use when other
    /// clients share the servers).
    #[arg(long)]
    pub no_money_check: bool,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
    /// Shortest time between two timed wake-ups of a worker: requests falling due in
    /// between go out together, up to this late (the latency figures include it;
    /// answers are timed by the kernel's arrival stamp either way).
    /// Smaller is more precise and costs more CPU per request; 0 wakes for every
    /// request and answer (precise to a few microseconds, about 1.5x the CPU).
    #[arg(long, default_value = "500us", value_parser = duration_or_zero)]
    pub tick: Duration,
    /// Random seed (default: from the clock).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Internal: run as a child of --procs.
    #[arg(long, hide = true)]
    pub child: bool,
    /// Internal: the whole run's users when this process drives a slice.
    #[arg(long, hide = true)]
    pub all_users: Option<UserRange>,
}

impl RunArgs {
    /// Checks the flags and builds the run's configuration.
    pub fn config(&self) -> Result<RunConfig, String> {
        let mut plan = Vec::new();
        if let Some(p) = &self.plan {
            let text =
                std::fs::read_to_string(p).map_err(|e| format!("--plan {}: {e}", p.display()))?;
            plan.extend(plan::parse_toml(&text)?);
        }
        plan.extend(self.phases.iter().cloned());
        if !plan.is_empty() && self.scale != 1.0 {
            return Err(
                "--scale multiplies only the default plan's rates; give --phase and --plan rates as they are to run"
                    .into(),
            );
        }
        if plan.is_empty() && !self.child {
            if !(self.scale.is_finite() && self.scale > 0.0) {
                return Err("--scale must be above 0".into());
            }
            plan = plan::default_plan(self.scale, self.phase_duration.as_secs_f64());
        }
        if !self.server_control.is_empty() && self.server_control.len() != self.server.len() {
            return Err(
                "--server-control must list one address per --server, in the same order".into(),
            );
        }
        let all_users = self.all_users.unwrap_or(self.users);
        if self.users.start < all_users.start || self.users.end > all_users.end {
            return Err("--users must lie inside --all-users".into());
        }
        Targets::new(&self.server, all_users, self.users)?;
        let source_addrs = match &self.source_addrs {
            Some(s) => parse_source_addrs(s)?,
            None => Vec::new(),
        };
        if self.connect_rate <= 0.0 {
            return Err("--connect-rate must be above 0".into());
        }
        if self.procs == 0 || self.procs > 256 {
            return Err("--procs must be 1..=256".into());
        }
        let threads = self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        if threads == 0 || threads > 1024 {
            return Err("--threads must be 1..=1024".into());
        }
        let cents = |(a, b): (u64, u64), what: &str| -> Result<(u32, u32), String> {
            if a == 0 || b > u64::from(u32::MAX) {
                return Err(format!("{what}: amounts must be 1..=4294967295 cents"));
            }
            Ok((a as u32, b as u32))
        };
        if let Some(at) = self.start_at.filter(|_| !self.child) {
            run::check_start_at(at, run::unix_f64())?;
        }
        let deadline = self
            .connect_deadline
            .map(|d| d.as_secs_f64())
            .unwrap_or_else(|| 2.0 * f64::from(self.users.len()) / self.connect_rate + 10.0);
        Ok(RunConfig {
            users: self.users,
            all_users,
            servers: self.server.clone(),
            server_controls: self.server_control.clone(),
            source_addrs,
            connect_rate: self.connect_rate,
            connect_deadline_s: deadline,
            threads,
            pin: !self.no_pin,
            procs: self.procs,
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            reconnect: self.reconnect,
            think_ms: self.think_ms,
            send_cents: cents(self.send_cents, "--send-cents")?,
            send_rate: self.send_rate,
            plan,
            start_at: self.start_at.filter(|_| !self.child),
            out: (!self.child).then(|| {
                self.out.clone().unwrap_or_else(|| {
                    let id = run_dir::run_id(run::unix_f64() as u64, "run");
                    run_dir::fresh_run_dir(std::path::Path::new("results"), &id)
                        .join(run_dir::hostname())
                })
            }),
            sample_host: !self.no_sample_host,
            control: self.control,
            max_p99_ms: self.max_p99_ms,
            max_error_rate: self.max_error_rate,
            money_check: !self.no_money_check,
            quiet: self.quiet,
            child: self.child,
            seed: self.seed.unwrap_or_else(|| run::unix_f64().to_bits()),
            tick: self.tick,
            min_connected: None,
        })
    }
}

/// Flags of `demo`.
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Users to connect. Each takes an open file on each side: past what one process
    /// may open, the demo starts several server instances and load-generator processes
    /// (a million users here: about 51 of each) and refuses at once, with the figures,
    /// when the host cannot hold them.
    #[arg(long, default_value_t = 10_000)]
    pub users: u32,
    /// New connections per second, all processes together. Default: 5 000 with one
    /// server, 10 000 with several instances.
    #[arg(long, value_parser = rate)]
    pub connect_rate: Option<f64>,
    /// Results go to RESULTS/RUN_ID/.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Default: the UTC time, e.g. 20261126-142501-demo.
    #[arg(long)]
    pub run_id: Option<String>,
    /// Multiplies the plan's shake rates (1 = 1k, 2k, 4k shakes/s with one server; 5k,
    /// 10k, 20k with several instances).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Multiplies the plan's phase lengths (1 = about a minute in all).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Run this server program instead of the redpacket-server beside this program
    /// (same flags as redpacket-server).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Worker threads of the load generator.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Fail if any phase's p99 is above this, milliseconds.
    #[arg(long)]
    pub max_p99_ms: Option<f64>,
    /// Fail if any phase's (errors + timeouts) / scheduled is above this.
    #[arg(long)]
    pub max_error_rate: Option<f64>,
}

impl DemoArgs {
    /// Checks the flags and builds the demo's configuration.
    pub fn config(&self) -> Result<DemoConfig, String> {
        if self.users < demo::MIN_USERS {
            return Err(format!(
                "demo --users {}: the demo needs at least {} users",
                self.users,
                demo::MIN_USERS
            ));
        }
        Ok(DemoConfig {
            users: self.users,
            connect_rate: self.connect_rate,
            results: self.results.clone(),
            run_id: self.run_id.clone(),
            scale: self.scale,
            time_scale: self.time_scale,
            server_bin: self.server_bin.clone(),
            threads: self.threads,
            max_p99_ms: self.max_p99_ms,
            max_error_rate: self.max_error_rate,
        })
    }
}

/// Flags of `check`.
#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// Users this host must hold, all processes together (one connection each).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub users: u64,
    /// Source addresses the users connect from, as for `run` (list, range or CIDR).
    #[arg(long)]
    pub source_addrs: Option<String>,
    /// Server addresses the users are spread over.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub servers: u64,
    /// Processes the users are split over (`run --procs`): each has its own open files.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub procs: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Fail (exit 1) also when advice is short (settings that do not bound the count,
    /// such as tcp_tw_reuse), not only when a limit is.
    #[arg(long)]
    pub strict: bool,
}

impl CheckArgs {
    /// Reads this host and prints the check; returns the exit code.
    pub fn run(&self) -> i32 {
        use redpacket_host::check;
        use redpacket_host::conf::Conf;
        let sources = match &self.source_addrs {
            Some(s) => match parse_source_addrs(s) {
                Ok(a) => a.len() as u64,
                Err(e) => {
                    eprintln!("redpacket-loadgen: --source-addrs: {e}");
                    return 2;
                }
            },
            None => 1,
        };
        let ask = check::LoadgenAsk {
            users: self.users,
            source_addrs: sources,
            servers: self.servers,
            procs: self.procs,
        };
        let conf = Conf::client();
        let report = check::loadgen(&ask, Some(&conf), &check::HostView::read(Some(&conf)))
            .strict(self.strict);
        if self.json {
            println!("{}", report.json());
        } else {
            print!("{}", report.human());
        }
        report.exit_code()
    }
}

/// Parses `args` and runs; returns the process exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match cli.command {
        Command::Run(a) => {
            let cfg = match a.config() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("redpacket-loadgen: {e}");
                    return 2;
                }
            };
            let out = cfg.out.clone();
            let quiet = cfg.quiet;
            match run::run(cfg) {
                Ok(o) => {
                    if let Some(s) = &o.summary {
                        print!("{}", crate::output::table(s));
                        if let (Some(dir), false) = (out, quiet) {
                            println!("results in {}", dir.display());
                        }
                    }
                    o.exit_code
                }
                Err((code, e)) => {
                    eprintln!("redpacket-loadgen: {e}");
                    code
                }
            }
        }
        Command::Demo(a) => match a.config() {
            Ok(c) => demo::demo(&c),
            Err(e) => {
                eprintln!("redpacket-loadgen: {e}");
                2
            }
        },
        Command::Check(a) => a.run(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procs::child_args;
    use crate::users::split_even;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_flags_become_a_config() {
        let cli = Cli::try_parse_from([
            "x",
            "run",
            "--users",
            "10..20",
            "--server",
            "127.0.0.1:1,127.0.0.1:2",
            "--phase",
            "a:100:2s",
            "--phase",
            "b:1k:1s:campaigns",
            "--think-ms",
            "5..6",
        ])
        .unwrap();
        let Command::Run(a) = cli.command else {
            panic!()
        };
        let c = a.config().unwrap();
        assert_eq!(c.users, UserRange::new(10, 20));
        assert_eq!(c.servers.len(), 2);
        assert_eq!(c.plan.len(), 2);
        assert_eq!(c.plan[1].qps, 1000.0);
        assert_eq!(c.think_ms, (5, 6));
        let cli = Cli::try_parse_from(["x", "run", "--server-control", "127.0.0.1:9,127.0.0.1:10"])
            .unwrap();
        let Command::Run(a) = cli.command else {
            panic!()
        };
        assert!(a.config().unwrap_err().contains("one address per --server"));
    }

    fn run_config(args: &[&str]) -> Result<RunConfig, String> {
        let cli =
            Cli::try_parse_from(["x", "run"].iter().chain(args)).map_err(|e| e.to_string())?;
        let Command::Run(a) = cli.command else {
            panic!()
        };
        a.config()
    }

    #[test]
    fn servers_with_ranges_are_checked_before_the_run() {
        let c = run_config(&[
            "--users",
            "0..2667",
            "--server",
            "198.18.0.10:1025=0..1334,198.18.0.10:1026=1334..2667",
            "--server",
            "198.18.0.11:1025=2667..4000",
        ])
        .unwrap();
        assert_eq!(c.servers.len(), 3);
        assert_eq!(c.servers[2].users, Some(UserRange::new(2667, 4000)));
        // Bare addresses, as before.
        let c = run_config(&["--server", "127.0.0.1:1,127.0.0.1:2"]).unwrap();
        assert!(c.servers.iter().all(|s| s.users.is_none()));
        let mixed = run_config(&["--server", "127.0.0.1:1=0..5000,127.0.0.1:2"]).unwrap_err();
        assert!(mixed.contains("every server its range"), "{mixed}");
        let gap = run_config(&["--users", "0..100", "--server", "127.0.0.1:1=0..50"]).unwrap_err();
        assert!(gap.contains("users 50..100"), "{gap}");
        let bad = run_config(&["--server", "127.0.0.1:1=9..3"]).unwrap_err();
        assert!(bad.contains("END must be above START"), "{bad}");
        let controls = run_config(&[
            "--users",
            "0..10",
            "--server",
            "127.0.0.1:1=0..5,127.0.0.1:2=5..10",
            "--server-control",
            "127.0.0.1:9",
        ])
        .unwrap_err();
        assert!(controls.contains("one address per --server"), "{controls}");
    }

    #[test]
    fn start_at_must_be_soon_and_to_come() {
        let now = run::unix_f64();
        let cfg = |at: String| {
            let cli = Cli::try_parse_from(["x", "run", "--start-at", &at]).unwrap();
            let Command::Run(a) = cli.command else {
                panic!()
            };
            a.config()
        };
        let at = (now + 30.0).floor();
        // An integer or a fraction.
        assert_eq!(cfg(format!("{at:.0}")).unwrap().start_at, Some(at));
        assert_eq!(
            cfg(format!("{}", at + 0.25)).unwrap().start_at,
            Some(at + 0.25)
        );
        let past = cfg(format!("{:.3}", now - 5.0)).unwrap_err();
        assert!(past.contains("in the past"), "{past}");
        let far = cfg(format!("{:.0}", now + 2.0 * 86_400.0)).unwrap_err();
        assert!(far.contains("more than a day"), "{far}");
        // Milliseconds by mistake are far in the future.
        assert!(cfg(format!("{:.0}", now * 1000.0)).is_err());
        assert!(Cli::try_parse_from(["x", "run", "--start-at", "soon"]).is_err());
        assert!(run::check_start_at(f64::NAN, 0.0).is_err());
        assert!(run::check_start_at(f64::INFINITY, 0.0).is_err());
    }

    #[test]
    fn children_get_the_servers_as_given_and_connect_users_alike() {
        for servers in [
            "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3",
            "198.18.0.10:1025=0..1334,198.18.0.10:1026=1334..2667",
        ] {
            let args = [
                "x",
                "run",
                "--users",
                "300..2000",
                "--server",
                servers,
                "--procs",
                "3",
            ];
            let Command::Run(a) = Cli::try_parse_from(args).unwrap().command else {
                panic!()
            };
            let cfg = a.config().unwrap();
            let parent = Targets::new(&cfg.servers, cfg.all_users, cfg.users).unwrap();
            for slice in split_even(cfg.users, cfg.procs) {
                let argv = std::iter::once("x".to_string()).chain(child_args(&cfg, slice));
                let Command::Run(b) = Cli::try_parse_from(argv).unwrap().command else {
                    panic!()
                };
                assert_eq!(b.server, a.server);
                let child = b.config().unwrap();
                assert!(child.child);
                assert_eq!((child.users, child.all_users), (slice, cfg.users));
                let tg = Targets::new(&child.servers, child.all_users, child.users).unwrap();
                for u in slice.start..slice.end {
                    assert_eq!(tg.server_for(u), parent.server_for(u), "user {u}");
                }
            }
        }
    }
}
