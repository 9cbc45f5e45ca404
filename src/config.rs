//! The server's command line, checked before anything is bound.
//!
//! `ServerArgs` is what clap parses (flattened into `crate::cli::ServerCli`, beside its
//! subcommands); [`ServerArgs::validate`] turns it into a [`Config`]
//! or a one-line reason. Nothing here opens a socket: a bad flag costs no port.

use clap::Parser;
use redpacket_control::{ControlConfig, ControlLimits, Token};
use redpacket_sys::cores;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// An inclusive range of cents written `MIN..MAX` (both included), e.g. `10..309`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CentsRange {
    pub min: u32,
    pub max: u32,
}

impl std::str::FromStr for CentsRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s
            .split_once("..")
            .ok_or_else(|| format!("{s:?} is not a range: write MIN..MAX, e.g. 10..309"))?;
        let b = b.strip_prefix('=').unwrap_or(b);
        let min: u32 = a.trim().parse().map_err(|e| format!("{a:?}: {e}"))?;
        let max: u32 = b.trim().parse().map_err(|e| format!("{b:?}: {e}"))?;
        if min == 0 || min > max {
            return Err(format!("{s:?}: need 1 <= MIN <= MAX"));
        }
        Ok(CentsRange { min, max })
    }
}

impl std::fmt::Display for CentsRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{}", self.min, self.max)
    }
}

/// Where the per-second statistics go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatsOut {
    Stdout,
    File(PathBuf),
    /// The run folder's `server.jsonl` (`--host-dir`): appended to, so the lines of an
    /// earlier life of the same server in the same folder are kept.
    Append(PathBuf),
    Off,
}

impl std::str::FromStr for StatsOut {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "-" => StatsOut::Stdout,
            "off" | "none" => StatsOut::Off,
            "" => return Err("empty path: use -, off or a file path".into()),
            p => StatsOut::File(PathBuf::from(p)),
        })
    }
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if !(v.is_finite() && v > 0.0 && v < 1e9) {
        return Err(format!("{s:?}: need a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// The control server's default connection cap (`--control-max-conns`); `check` counts
/// its descriptors too, so it lives with the other reserved descriptors.
pub use redpacket_host::reserve::DEFAULT_CONTROL_MAX_CONNS;

/// Most workers `--workers` starts: each is a thread with its own listener and runtime.
pub const MAX_WORKERS: usize = 1024;

// The server's flags (`redpacket-server` without a subcommand). A plain comment: a doc
// comment here would replace the program's description, which with its subcommands is
// `crate::cli::ServerCli`'s, into which these flags are flattened.
#[derive(Parser, Debug, Clone)]
pub struct ServerArgs {
    /// Address clients connect to (every worker listens on it with SO_REUSEPORT).
    #[arg(long, default_value = "127.0.0.1:1025")]
    pub listen: SocketAddr,

    /// Address of the HTTP control and metrics server (its own thread and runtime).
    #[arg(long, default_value = "127.0.0.1:8989")]
    pub control: SocketAddr,

    /// CPUs to run workers on, one pinned worker per CPU: a list such as `0-3,6`.
    /// Default: every CPU this process may run on.
    #[arg(long)]
    pub cores: Option<String>,

    /// Run this many workers, not pinned: the kernel places each on any CPU this
    /// process may run on. For several server processes sharing a host's CPUs, as the
    /// one-host demo runs them: a pinned one-worker process cannot leave a CPU that
    /// something else holds (a kernel thread, a burst of its neighbours), and its
    /// clients wait until that CPU is free while the other one idles.
    #[arg(long, conflicts_with_all = ["cores", "steer_incoming_cpu"])]
    pub workers: Option<usize>,

    /// Shake requests answered per second, server-wide, before the rest are answered
    /// "overloaded" (17). The budget is divided among workers by their demand.
    #[arg(long, default_value_t = 65_000)]
    pub max_qps: u64,

    /// Connections per SET: the group inside a worker that owns its connections' slots,
    /// its share of shake packets and the demand that decides the next share.
    #[arg(long, default_value_t = 4096)]
    pub set_size: usize,

    /// Seconds a new connection has to send its login frame before it is closed.
    #[arg(long, default_value = "10", value_parser = parse_secs)]
    pub login_timeout: Duration,

    /// Amount of each shake packet, random in MIN..MAX cents (inclusive).
    #[arg(long, default_value = "10..309")]
    pub shake_amount: CentsRange,

    /// Amount of each `/fahongbao` campaign packet, random in MIN..MAX cents (inclusive;
    /// MIN at least 3, so each of the 3 recipients gets a cent or more).
    #[arg(long, default_value = "300..3000")]
    pub send_amount: CentsRange,

    /// Seconds a user-to-user packet may stay not fully grabbed; then its remainder
    /// returns to the sender.
    #[arg(long, default_value = "86400", value_parser = parse_secs)]
    pub send_ttl: Duration,

    /// Most user-to-user packets outstanding at once (server-wide); past it a client's
    /// send is answered "busy" and a campaign waits. Bounds the memory packets can take.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_outstanding_sends: u64,

    /// Most shake packets issued and not yet won, server-wide (8 bytes each); past it a
    /// shake campaign pauses until packets are won. Bounds memory when nobody shakes.
    #[arg(long, default_value_t = 10_000_000)]
    pub max_outstanding_shakes: u64,

    /// Most connections held at once. Default: the open-files limit less a reserve.
    #[arg(long)]
    pub max_conns: Option<u64>,

    /// Bytes of answers that may wait for a client that does not read, counted in the
    /// server's queue and in the kernel's send queue of its socket (bytes not yet sent,
    /// SIOCOUTQNSD) together; past it the connection is reset (slow_reader). The bound
    /// holds whatever --sock-buf is.
    #[arg(long, default_value_t = 4096)]
    pub write_queue: usize,

    /// Per-second statistics as JSON Lines (the run folder's `server.jsonl`): a file
    /// path, `-` (stdout, instead of the status line), or `off`.
    #[arg(long, default_value = "off")]
    pub stats_out: StatsOut,

    /// One human line a second on stdout (users, rates, wins, errors): `auto` (when
    /// stdout is a terminal and --stats-out is not `-`), `on` or `off`.
    #[arg(long, value_name = "WHEN", default_value = "auto", value_parser = ["auto", "on", "off"])]
    pub status_line: String,

    /// Once bound, write `{"listen":..,"control":..,"pid":..}` to this file (for scripts
    /// and tests that bind port 0).
    #[arg(long)]
    pub ready_file: Option<PathBuf>,

    /// This host's folder of a run (`results/<run-id>/<host>`): the server writes
    /// `server.jsonl` (per-second statistics), `server-summary.json` (the final
    /// account), `net.jsonl` (network, TCP, CPU and memory once a second) and
    /// `tuning.txt` there. Overrides `--stats-out` and `--summary-out`.
    #[arg(long)]
    pub host_dir: Option<PathBuf>,

    /// This server is instance I (1-based) of several on one host (the systemd template
    /// `redpacket-server@I` passes it). With --host-dir it writes `server.jsonl` and
    /// `server-summary.json` into DIR/instance-I/ and only instance 1 samples the host
    /// (DIR/net.jsonl, DIR/tuning.txt); without, it only names the instance in the log.
    #[arg(long, value_name = "I",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub instance: Option<u32>,

    /// At shutdown, write the final account (counters and the money ledger) here as JSON.
    #[arg(long)]
    pub summary_out: Option<PathBuf>,

    /// Seconds to drain on SIGTERM/SIGINT before the remaining connections are dropped.
    #[arg(long, default_value = "5", value_parser = parse_secs)]
    pub grace: Duration,

    /// Listen backlog (the kernel caps it at net.core.somaxconn).
    #[arg(long, default_value_t = 65535)]
    pub backlog: i32,

    /// Leave Nagle's algorithm on for client connections (by default TCP_NODELAY is set:
    /// answers are tiny and latency matters).
    #[arg(long)]
    pub no_nodelay: bool,

    /// The older spelling, `--nodelay true|false`; `--no-nodelay` is the switch.
    #[arg(long, hide = true, value_name = "BOOL", num_args = 0..=1,
          default_missing_value = "true", conflicts_with = "no_nodelay")]
    pub nodelay: Option<bool>,

    /// SO_BUSY_POLL microseconds on client sockets (0 = off).
    #[arg(long, default_value_t = 0)]
    pub busy_poll: u32,

    /// Epoll busy polling per worker, microseconds (0 = off). Each worker's epoll
    /// instance gets EPIOCSPARAMS (Linux 6.9+; budget 8 packets, no preference): a wait
    /// that finds nothing ready polls the NIC queue its sockets came from for up to
    /// USECS before it sleeps. Costs CPU; pays only with a NIC driver that has NAPI
    /// (loopback has none). A kernel that refuses it stops the start (exit 1, with the
    /// reason).
    #[arg(long, default_value_t = 0, value_name = "USECS")]
    pub epoll_busy_poll: u32,

    /// TCP_DEFER_ACCEPT seconds on the listeners (0 = off): accept only once data arrives.
    #[arg(long, default_value_t = 0)]
    pub defer_accept: u32,

    /// SO_SNDBUF / SO_RCVBUF bytes for client sockets (0 = the kernel's autotuning).
    /// Small buffers save kernel memory at a million connections.
    #[arg(long, default_value_t = 0)]
    pub sock_buf: usize,

    /// Steer each new connection to the worker on the CPU that received it
    /// (SO_ATTACH_REUSEPORT_CBPF with the CPU number), instead of the kernel's hash.
    #[arg(long, default_value_t = false)]
    pub steer_incoming_cpu: bool,

    // The control plane's own limits and access (docs/server.md, "The control port").
    /// Most connections the control server holds at once. When full, the oldest is
    /// closed to make room, so a flood of slow connections cannot lock out an operator.
    /// Its descriptors are set apart from the clients' (see --max-conns).
    #[arg(long, default_value_t = DEFAULT_CONTROL_MAX_CONNS,
          value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub control_max_conns: u64,

    /// Seconds a control connection has to send a whole request head (from connecting,
    /// or from its previous answer); then it is closed.
    #[arg(long, default_value = "5", value_parser = parse_secs)]
    pub control_header_timeout: Duration,

    /// Seconds a control connection may go without a byte read or written (a request
    /// body sent slowly, an answer not read); then it is closed.
    #[arg(long, default_value = "10", value_parser = parse_secs)]
    pub control_idle_timeout: Duration,

    /// File holding the control token: every control request must then carry
    /// `Authorization: Bearer <token>`. Required when --control is not a loopback
    /// address. At least 16 bytes; surrounding whitespace is ignored.
    #[arg(long, value_name = "FILE")]
    pub control_token_file: Option<PathBuf>,

    /// Serve `/metrics` without the token (for a scraper on a trusted network). Every
    /// other control path still needs it.
    #[arg(long, default_value_t = false)]
    pub control_metrics_open: bool,

    // Bounds on what one user or one control request can take from everyone else.
    /// Most user-to-user packets one user may have outstanding (sent, not yet fully
    /// grabbed nor refunded) on the worker holding them; past it that user's send is
    /// answered 4 (user limit). 0 = no per-user limit.
    #[arg(long, default_value_t = 100)]
    pub max_sends_per_user: u32,

    /// Sends (frame 0x0007) one connection may make per second, a token bucket holding
    /// one second's worth; past it a send is answered 5 (rate limited). 0 = no limit.
    #[arg(long, default_value_t = 10.0, value_parser = parse_rate)]
    pub send_rate: f64,

    /// Slowest campaign rate `/yaohongbao` and `/fahongbao` accept (packets per second):
    /// a slower one would hold its place for ever.
    #[arg(long, default_value_t = 1.0, value_parser = parse_rate)]
    pub min_campaign_qps: f64,

    /// Most campaigns running at once; past it a new one is answered 429.
    #[arg(long, default_value_t = 1000)]
    pub max_campaigns: usize,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if !(v.is_finite() && (0.0..=1e7).contains(&v)) {
        return Err(format!("{s:?}: need a rate in 0..=10000000 per second"));
    }
    Ok(v)
}

/// A checked configuration: every field is usable as it is.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub control: SocketAddr,
    /// The CPU of each worker, in worker order: where it is pinned, or with `pinned`
    /// false (`--workers`) only a spread for the host check, the kernel placing it.
    pub cores: Vec<usize>,
    /// Each worker pinned to its CPU (`--cores`, the default) or placed by the kernel.
    pub pinned: bool,
    pub max_qps: u64,
    pub set_size: usize,
    pub login_timeout: Duration,
    pub shake_amount: CentsRange,
    pub send_amount: CentsRange,
    pub send_ttl: Duration,
    pub max_outstanding_sends: u64,
    pub max_outstanding_shakes: u64,
    /// `None`: derive from the open-files limit at start.
    pub max_conns: Option<u64>,
    pub write_queue: usize,
    pub stats_out: StatsOut,
    /// Print the human status line each second.
    pub status_line: bool,
    pub ready_file: Option<PathBuf>,
    pub grace: Duration,
    pub backlog: i32,
    pub nodelay: bool,
    pub busy_poll: u32,
    /// `--epoll-busy-poll`: microseconds, 0 = off.
    pub epoll_busy_poll: u32,
    pub defer_accept: u32,
    pub sock_buf: usize,
    pub steer_incoming_cpu: bool,
    pub control_limits: ControlLimits,
    /// The token control requests must carry, if any.
    pub control_token: Option<Token>,
    pub control_metrics_open: bool,
    pub max_sends_per_user: u32,
    /// Sends per second per connection; 0 = unlimited.
    pub send_rate: f64,
    pub min_campaign_qps: f64,
    pub max_campaigns: usize,
}

/// The token file's rules are the one home's, shared with the load generator.
pub use redpacket_token::{read as read_token, MIN_TOKEN_LEN};

/// Whether an address only this host can reach (127.0.0.0/8, ::1, or ::ffff:127.x).
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().to_canonical().is_loopback()
}

/// Where a server's files go in its host's folder of a run (`--host-dir`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFiles {
    /// The folder this server writes its own files into: the host's, or its instance's.
    pub dir: PathBuf,
    /// `server.jsonl`.
    pub stats: PathBuf,
    /// `server-summary.json`.
    pub summary: PathBuf,
    /// The host folder, when this server is the one that samples the host into it
    /// (`net.jsonl`, `tuning.txt`): a lone server or instance 1.
    pub sample: Option<PathBuf>,
}

impl HostFiles {
    pub fn new(host_dir: &Path, instance: Option<u32>) -> HostFiles {
        let dir = match instance {
            Some(i) => host_dir.join(redpacket_formats::instance_dir(i)),
            None => host_dir.to_path_buf(),
        };
        HostFiles {
            stats: dir.join("server.jsonl"),
            summary: dir.join("server-summary.json"),
            sample: matches!(instance, None | Some(1)).then(|| host_dir.to_path_buf()),
            dir,
        }
    }
}

impl ServerArgs {
    /// The files of `--host-dir` (and `--instance`), if given.
    pub fn host_files(&self) -> Option<HostFiles> {
        self.host_dir
            .as_deref()
            .map(|d| HostFiles::new(d, self.instance))
    }

    /// Checks every flag against the others and this machine; the error is one line.
    pub fn validate(mut self) -> Result<Config, String> {
        if let Some(f) = self.host_files() {
            self.stats_out = StatsOut::Append(f.stats);
        }
        let cores = self.worker_cores()?;
        self.check_bounds()?;
        if self.listen == self.control && self.listen.port() != 0 {
            return Err(format!("--listen and --control are both {}", self.listen));
        }
        if self.steer_incoming_cpu {
            cores::steering_order(&cores)?;
        }
        let control_token = self.control_token()?;
        if self.min_campaign_qps <= 0.0 {
            return Err("--min-campaign-qps must be positive".into());
        }
        if self.max_campaigns == 0 {
            return Err("--max-campaigns must be positive".into());
        }
        Ok(self.into_config(cores, control_token))
    }

    /// `--cores`, each one this process may run on; by default all of those. With
    /// `--workers N`, the allowed CPUs taken in turn for N workers (where none is pinned).
    fn worker_cores(&self) -> Result<Vec<usize>, String> {
        let allowed = cores::allowed_cpus();
        let cores = match (&self.cores, self.workers) {
            (_, Some(n)) => {
                if n == 0 || n > MAX_WORKERS {
                    return Err(format!("--workers {n}: give 1 to {MAX_WORKERS}"));
                }
                allowed.iter().copied().cycle().take(n).collect()
            }
            (Some(list), None) => {
                let want = cores::parse_list(list)?;
                cores::check_allowed(&want, &allowed)?;
                want
            }
            (None, None) => allowed,
        };
        if cores.is_empty() {
            return Err("no CPU to run a worker on".into());
        }
        Ok(cores)
    }

    /// Sizes and amounts the server cannot work with.
    fn check_bounds(&self) -> Result<(), String> {
        if self.set_size == 0 || self.set_size > 1 << 20 {
            return Err(format!("--set-size {} outside 1..=1048576", self.set_size));
        }
        if self.send_amount.min < redpacket_protocol::MAX_RECIPIENTS as u32 {
            return Err(format!(
                "--send-amount {}: MIN must be at least {} (a cent for each recipient)",
                self.send_amount,
                redpacket_protocol::MAX_RECIPIENTS
            ));
        }
        if self.write_queue < redpacket_protocol::MAX_FRAME_LEN {
            return Err(format!(
                "--write-queue {} is below one frame ({} bytes)",
                self.write_queue,
                redpacket_protocol::MAX_FRAME_LEN
            ));
        }
        if self.backlog <= 0 {
            return Err("--backlog must be positive".into());
        }
        if self.max_conns == Some(0) {
            return Err("--max-conns must be positive".into());
        }
        Ok(())
    }

    /// The control token, required when the control address is not loopback.
    fn control_token(&self) -> Result<Option<Token>, String> {
        let control_token = self
            .control_token_file
            .as_deref()
            .map(read_token)
            .transpose()?;
        if control_token.is_none() && !is_loopback(&self.control) {
            return Err(format!(
                "--control {} is not a loopback address: give --control-token-file FILE \
                 (control requests start campaigns that create money)",
                self.control
            ));
        }
        Ok(control_token)
    }

    /// `--status-line`: `auto` is on when stdout is a terminal not taken by the stats.
    fn status_line_on(&self) -> bool {
        match self.status_line.as_str() {
            "on" => true,
            "off" => false,
            _ => {
                std::io::IsTerminal::is_terminal(&std::io::stdout())
                    && self.stats_out != StatsOut::Stdout
            }
        }
    }

    /// The checked flags as the server's configuration.
    fn into_config(self, cores: Vec<usize>, control_token: Option<Token>) -> Config {
        Config {
            listen: self.listen,
            control: self.control,
            cores,
            pinned: self.workers.is_none(),
            max_qps: self.max_qps,
            set_size: self.set_size,
            login_timeout: self.login_timeout,
            shake_amount: self.shake_amount,
            send_amount: self.send_amount,
            send_ttl: self.send_ttl,
            max_outstanding_sends: self.max_outstanding_sends,
            max_outstanding_shakes: self.max_outstanding_shakes,
            max_conns: self.max_conns,
            write_queue: self.write_queue,
            status_line: self.status_line_on(),
            stats_out: self.stats_out,
            ready_file: self.ready_file,
            grace: self.grace,
            backlog: self.backlog,
            nodelay: self.nodelay.unwrap_or(!self.no_nodelay),
            busy_poll: self.busy_poll,
            epoll_busy_poll: self.epoll_busy_poll,
            defer_accept: self.defer_accept,
            sock_buf: self.sock_buf,
            steer_incoming_cpu: self.steer_incoming_cpu,
            control_limits: ControlLimits {
                max_conns: self.control_max_conns as usize,
                header_timeout: self.control_header_timeout,
                idle_timeout: self.control_idle_timeout,
            },
            control_token,
            control_metrics_open: self.control_metrics_open,
            max_sends_per_user: self.max_sends_per_user,
            send_rate: self.send_rate,
            min_campaign_qps: self.min_campaign_qps,
            max_campaigns: self.max_campaigns,
        }
    }
}

impl Config {
    /// The control plane's part of the configuration.
    pub fn control_config(&self) -> ControlConfig {
        ControlConfig {
            limits: self.control_limits,
            token: self.control_token.clone(),
            metrics_open: self.control_metrics_open,
            min_campaign_qps: self.min_campaign_qps,
        }
    }

    /// A configuration for tests and embedding: loopback, port 0 for both listeners,
    /// statistics off, every other value at its command-line default.
    pub fn for_tests() -> Config {
        let args = ServerArgs::parse_from([
            "redpacket-server",
            "--listen",
            "127.0.0.1:0",
            "--control",
            "127.0.0.1:0",
            "--stats-out",
            "off",
            "--status-line",
            "off",
        ]);
        // Defaults are valid by construction; a failure here is a bug in the defaults.
        args.validate().expect("default configuration is valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_write_apart_and_only_the_first_samples_the_host() {
        let parse = |extra: &[&str]| {
            let mut a = vec!["redpacket-server"];
            a.extend_from_slice(extra);
            ServerArgs::try_parse_from(a)
        };
        let h = Path::new("/r/run/s1");
        let lone = parse(&["--host-dir", "/r/run/s1"])
            .unwrap()
            .host_files()
            .unwrap();
        assert_eq!(lone.stats, h.join("server.jsonl"));
        assert_eq!(lone.sample.as_deref(), Some(h));
        let one = parse(&["--host-dir", "/r/run/s1", "--instance", "1"])
            .unwrap()
            .host_files()
            .unwrap();
        assert_eq!(one.dir, h.join("instance-1"));
        assert_eq!(one.summary, h.join("instance-1/server-summary.json"));
        assert_eq!(one.sample.as_deref(), Some(h));
        let two = parse(&["--host-dir", "/r/run/s1", "--instance", "2"]).unwrap();
        let f = two.host_files().unwrap();
        assert_eq!(f.stats, h.join("instance-2/server.jsonl"));
        assert_eq!(f.sample, None);
        let cfg = two.validate().unwrap();
        assert!(
            matches!(cfg.stats_out, StatsOut::Append(p) if p == h.join("instance-2/server.jsonl"))
        );
        assert!(parse(&["--host-dir", "/r", "--instance", "0"]).is_err());
        // Without --host-dir an instance writes nothing of its own: it is only named.
        assert_eq!(parse(&["--instance", "2"]).unwrap().host_files(), None);
        assert_eq!(parse(&[]).unwrap().host_files(), None);
    }

    #[test]
    fn ranges_parse_and_refuse_nonsense() {
        assert_eq!("10..309".parse(), Ok(CentsRange { min: 10, max: 309 }));
        assert_eq!("5..=5".parse(), Ok(CentsRange { min: 5, max: 5 }));
        assert!("309..10".parse::<CentsRange>().is_err());
        assert!("0..10".parse::<CentsRange>().is_err());
        assert!("ten".parse::<CentsRange>().is_err());
    }

    #[test]
    fn defaults_are_valid_and_loopback() {
        let c = ServerArgs::parse_from(["x"]).validate().unwrap();
        assert!(c.listen.ip().is_loopback());
        assert!(c.control.ip().is_loopback());
        assert_eq!(c.max_qps, 65_000);
        assert_eq!(c.shake_amount, CentsRange { min: 10, max: 309 });
        assert_eq!(c.epoll_busy_poll, 0, "epoll busy polling is off by default");
        let on = ServerArgs::parse_from(["x", "--epoll-busy-poll", "50"]);
        assert_eq!(on.validate().unwrap().epoll_busy_poll, 50);
        assert!(ServerArgs::try_parse_from(["x", "--epoll-busy-poll", "-1"]).is_err());
        assert!(c.pinned, "workers are pinned one per CPU by default");
    }

    #[test]
    fn workers_without_cores_are_not_pinned() {
        let c = ServerArgs::parse_from(["x", "--workers", "3"])
            .validate()
            .unwrap();
        assert_eq!(c.cores.len(), 3);
        assert!(!c.pinned);
        let allowed = cores::allowed_cpus();
        assert!(c.cores.iter().all(|x| allowed.contains(x)), "{:?}", c.cores);
        let pinned = ServerArgs::parse_from(["x", "--cores", &allowed[0].to_string()]);
        assert!(pinned.validate().unwrap().pinned);
    }

    #[test]
    fn impossible_flags_are_one_line_errors() {
        let bad = |args: &[&str]| {
            let mut v = vec!["x"];
            v.extend_from_slice(args);
            ServerArgs::try_parse_from(v)
                .map_err(|e| e.to_string())
                .and_then(|a| a.validate())
                .unwrap_err()
        };
        assert!(bad(&["--cores", "4096"]).contains("4096"));
        assert!(bad(&["--workers", "0"]).contains("--workers"));
        assert!(bad(&["--workers", "2", "--cores", "0"]).contains("--cores"));
        assert!(bad(&["--workers", "2", "--steer-incoming-cpu"]).contains("steer"));
        assert!(bad(&["--set-size", "0"]).contains("set-size"));
        assert!(bad(&["--send-amount", "1..10"]).contains("MIN"));
        assert!(bad(&["--listen", "127.0.0.1:5", "--control", "127.0.0.1:5"]).contains("both"));
        assert!(bad(&["--login-timeout", "0"]).contains("positive"));
        assert!(bad(&["--control", "0.0.0.0:8989"]).contains("--control-token-file"));
        assert!(bad(&["--control", "[::]:8989"]).contains("--control-token-file"));
        assert!(bad(&["--control-token-file", "/nonexistent/token"]).contains("/nonexistent"));
        assert!(bad(&["--min-campaign-qps", "0"]).contains("min-campaign-qps"));
        assert!(bad(&["--max-campaigns", "0"]).contains("max-campaigns"));
        assert!(bad(&["--send-rate", "inf"]).contains("rate"));
        assert!(bad(&["--send-rate", "NaN"]).contains("rate"));
    }

    #[test]
    fn loopback_is_every_127_address_and_ipv6_loopback() {
        for a in [
            "127.0.0.1:1",
            "127.9.8.7:1",
            "[::1]:1",
            "[::ffff:127.0.0.2]:1",
        ] {
            assert!(is_loopback(&a.parse().unwrap()), "{a}");
        }
        for a in [
            "0.0.0.0:1",
            "198.18.0.1:1",
            "[::]:1",
            "[::ffff:198.18.0.1]:1",
        ] {
            assert!(!is_loopback(&a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn a_token_file_is_trimmed_and_checked() {
        let dir = redpacket_testkit::scratch::fresh_in(&std::env::temp_dir(), "redpacket", "token");
        let f = dir.join("t");
        std::fs::write(&f, "  0123456789abcdef-xyz\n").unwrap();
        let t = read_token(&f).unwrap();
        assert_eq!(t.as_bytes(), b"0123456789abcdef-xyz");
        assert_eq!(format!("{t:?}"), "Token(..)", "never printed");
        std::fs::write(&f, "short\n").unwrap();
        assert!(read_token(&f).unwrap_err().contains("at least 16"));
        std::fs::write(&f, "0123456789 abcdef").unwrap();
        assert!(read_token(&f).unwrap_err().contains("printable"));
        std::fs::write(&f, "0123456789abcdefgh").unwrap();
        let args = ServerArgs::try_parse_from([
            "x",
            "--control",
            "0.0.0.0:0",
            "--control-token-file",
            f.to_str().unwrap(),
        ])
        .unwrap();
        assert!(args.validate().unwrap().control_token.is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
