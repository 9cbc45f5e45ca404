//! `redpacket-loadgen run`'s flags, checked and turned into a [`RunConfig`].

use super::usage::usage_error;
use super::values::{duration, duration_or_zero, range_u64, rate};
use crate::addrs::parse_source_addrs;
use crate::output;
use crate::plan::{self, Phase};
use crate::run;
use crate::run_config::{ControlListen, RunConfig};
use crate::run_dir;
use crate::token;
use crate::users::{ServerTarget, Targets, UserRange};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
    /// Serve GET /qps?qps=X (change the rate live), /stats and /metrics (Prometheus) on
    /// this address. Nothing listens without it. An address other than loopback needs
    /// --control-token-file.
    #[arg(long)]
    pub control: Option<SocketAddr>,
    /// File holding the --control token (at least 16 printable characters, the server's
    /// rule): every request to --control must then carry `Authorization: Bearer
    /// <token>`.
    #[arg(long, value_name = "FILE")]
    pub control_token_file: Option<PathBuf>,
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
    /// Checks the flags and runs; prints the summary table; returns the exit code.
    pub fn run(&self) -> i32 {
        let cfg = match self.config() {
            Ok(c) => c,
            Err(e) => return usage_error(&e),
        };
        let out = cfg.out.clone();
        let quiet = cfg.quiet;
        let view = match (&out, cfg.live_view) {
            (Some(dir), true) => fleet_view_of(dir),
            _ => None,
        };
        let outcome = run::run(cfg);
        if let Some(v) = view {
            v.finish();
        }
        match outcome {
            Ok(o) => {
                if let Some(s) = &o.summary {
                    print!("{}", output::table(s));
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

    /// Checks the flags and builds the run's configuration.
    pub fn config(&self) -> Result<RunConfig, String> {
        let plan = self.plan()?;
        let all_users = self.check_users_and_servers()?;
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
        let threads = self.threads()?;
        if let Some(at) = self.start_at.filter(|_| !self.child) {
            run::check_start_at(at, run::unix_f64())?;
        }
        let send_cents = cents(self.send_cents, "--send-cents")?;
        let control = self.control_listen()?;
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
            send_cents,
            send_rate: self.send_rate,
            plan,
            start_at: self.start_at.filter(|_| !self.child),
            out: (!self.child).then(|| self.out_dir()),
            sample_host: !self.no_sample_host,
            control,
            max_p99_ms: self.max_p99_ms,
            max_error_rate: self.max_error_rate,
            money_check: !self.no_money_check,
            quiet: self.quiet,
            // `--procs`: the processes' merged seconds shown by the fleet view.
            live_view: self.procs > 1 && !self.quiet && !self.child,
            child: self.child,
            seed: self.seed.unwrap_or_else(|| run::unix_f64().to_bits()),
            tick: self.tick,
            min_connected: None,
        })
    }

    /// The plan: `--plan`'s phases then `--phase`'s, else the default plan at `--scale`
    /// (a child gets its phases from its parent).
    fn plan(&self) -> Result<Vec<Phase>, String> {
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
        Ok(plan)
    }

    /// `--control` and `--control-token-file`: the token is read now, and a listener
    /// off loopback without one is refused before anything starts.
    fn control_listen(&self) -> Result<Option<ControlListen>, String> {
        let Some(addr) = self.control else {
            return match &self.control_token_file {
                Some(_) => Err("--control-token-file needs --control ADDR".into()),
                None => Ok(None),
            };
        };
        let token = token::control_token(addr, self.control_token_file.as_deref())?;
        Ok(Some(ControlListen { addr, token }))
    }

    /// Checks `--server`, `--server-control`, `--users` and `--all-users` together;
    /// returns the run's users (all processes').
    fn check_users_and_servers(&self) -> Result<UserRange, String> {
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
        Ok(all_users)
    }

    /// `--threads`, by default the CPUs available.
    fn threads(&self) -> Result<usize, String> {
        let threads = self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        if threads == 0 || threads > 1024 {
            return Err("--threads must be 1..=1024".into());
        }
        Ok(threads)
    }

    /// `--out`, by default a new `results/<UTC time>-run/<host>/`.
    fn out_dir(&self) -> PathBuf {
        self.out.clone().unwrap_or_else(|| {
            let id = run_dir::run_id(run::unix_f64() as u64, "run");
            run_dir::fresh_run_dir(std::path::Path::new("results"), &id).join(run_dir::hostname())
        })
    }
}

/// The live view of a `--procs` run whose host folder is `out`: `live.jsonl` goes into
/// the run folder above it.
fn fleet_view_of(out: &std::path::Path) -> Option<crate::fleet_view::FleetView> {
    let run_dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(out);
    std::fs::create_dir_all(out).ok()?;
    let host = out
        .file_name()
        .map_or_else(|| "loadgen".into(), |n| n.to_string_lossy().into_owned());
    crate::fleet_view::FleetView::start(run_dir, &host, out, &[])
}

/// A `MIN..MAX` of cents as the wire carries them (1..=u32::MAX).
fn cents((a, b): (u64, u64), what: &str) -> Result<(u32, u32), String> {
    if a == 0 || b > u64::from(u32::MAX) {
        return Err(format!("{what}: amounts must be 1..=4294967295 cents"));
    }
    Ok((a as u32, b as u32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procs::child_args;
    use crate::users::split_even;
    use clap::Parser;

    /// `run`'s flags alone, as `redpacket-loadgen run` takes them.
    #[derive(Parser)]
    struct RunOnly {
        #[command(flatten)]
        args: RunArgs,
    }

    /// Parses the words after `run`.
    fn parse<S: AsRef<str>>(args: impl IntoIterator<Item = S>) -> Result<RunArgs, String> {
        let argv = std::iter::once("run".to_string())
            .chain(args.into_iter().map(|a| a.as_ref().to_string()));
        RunOnly::try_parse_from(argv)
            .map(|r| r.args)
            .map_err(|e| e.to_string())
    }

    fn run_config(args: &[&str]) -> Result<RunConfig, String> {
        parse(args)?.config()
    }

    #[test]
    fn run_flags_become_a_config() {
        let c = run_config(&[
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
        assert_eq!(c.users, UserRange::new(10, 20));
        assert_eq!(c.servers.len(), 2);
        assert_eq!(c.plan.len(), 2);
        assert_eq!(c.plan[1].qps, 1000.0);
        assert_eq!(c.think_ms, (5, 6));
        let e = run_config(&["--server-control", "127.0.0.1:9,127.0.0.1:10"]).unwrap_err();
        assert!(e.contains("one address per --server"), "{e}");
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
    fn a_control_address_off_loopback_needs_a_token() {
        let off = run_config(&["--control", "198.18.1.21:9188"]).unwrap_err();
        assert!(
            off.contains("not a loopback address") && off.contains("--control-token-file"),
            "{off}"
        );
        let lo = run_config(&["--control", "127.0.0.1:9188"]).unwrap();
        assert!(lo.control.is_some_and(|c| c.token.is_none()));
        let alone = run_config(&["--control-token-file", "/nonexistent"]).unwrap_err();
        assert!(alone.contains("needs --control"), "{alone}");
        let missing = run_config(&[
            "--control",
            "127.0.0.1:9188",
            "--control-token-file",
            "/nonexistent/t",
        ])
        .unwrap_err();
        assert!(
            missing.contains("--control-token-file /nonexistent/t"),
            "{missing}"
        );
        let d = redpacket_testkit::scratch::fresh_in(&std::env::temp_dir(), "loadgen", "run-token");
        let f = d.join("token");
        std::fs::write(&f, "0123456789abcdef0123\n").unwrap();
        let c = run_config(&[
            "--control",
            "198.18.1.21:9188",
            "--control-token-file",
            f.to_str().unwrap(),
        ])
        .unwrap();
        let listen = c.control.unwrap();
        assert_eq!(listen.addr, "198.18.1.21:9188".parse().unwrap());
        assert!(listen.token.is_some());
    }

    #[test]
    fn start_at_must_be_soon_and_to_come() {
        let now = run::unix_f64();
        let cfg = |at: String| run_config(&["--start-at", &at]);
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
        assert!(parse(["--start-at", "soon"]).is_err());
        assert!(run::check_start_at(f64::NAN, 0.0).is_err());
        assert!(run::check_start_at(f64::INFINITY, 0.0).is_err());
    }

    #[test]
    fn children_get_the_servers_as_given_and_connect_users_alike() {
        for servers in [
            "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3",
            "198.18.0.10:1025=0..1334,198.18.0.10:1026=1334..2667",
        ] {
            let args = ["--users", "300..2000", "--server", servers, "--procs", "3"];
            let a = parse(args).unwrap();
            let cfg = a.config().unwrap();
            let parent = Targets::new(&cfg.servers, cfg.all_users, cfg.users).unwrap();
            for slice in split_even(cfg.users, cfg.procs) {
                let argv = child_args(&cfg, slice);
                assert_eq!(argv[0], "run");
                let b = parse(&argv[1..]).unwrap();
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
