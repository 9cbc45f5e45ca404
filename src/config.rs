//! The server's command line, checked before anything is bound.
//!
//! `ServerArgs` is what clap parses; [`ServerArgs::validate`] turns it into a [`Config`]
//! or a one-line reason. Nothing here opens a socket: a bad flag costs no port.

use crate::cores;
use clap::Parser;
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

/// redpacket-server: a thread-per-core red-packet server, wire-compatible with the old
/// system's clients.
///
/// Clients log in (frame 0x0000), shake for red packets (0x0002), grab user-to-user red
/// packets pushed to them (0x0005), and send their own (0x0007). Campaigns are started
/// over HTTP on the control address: `/yaohongbao?qps=R&sum=N` issues N shake packets at
/// R per second, `/fahongbao?qps=R&sum=N&min=A&max=B` sends N user-to-user packets, each
/// to 3 random users in [A, B]. `/stats` (JSON) and `/metrics` (Prometheus) report.
///
/// Exit codes: 0 clean shutdown, 1 failure while running, 2 bad flag, 3 cannot bind.
///
/// `redpacket-server check --connections N [--instances K] [--cores LIST] [--json]`
/// says whether this host can hold N connections as it is, and what to raise first.
#[derive(Parser, Debug, Clone)]
#[command(name = "redpacket-server", version, verbatim_doc_comment)]
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

    /// Shake requests answered per second, server-wide, before the rest are answered
    /// "overloaded" (17). The budget is divided among workers by their demand.
    #[arg(long, default_value_t = 65_000)]
    pub max_qps: u64,

    /// Connections per SET: the group inside a worker that owns its connections, its
    /// share of shake packets and its counters.
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

    /// Bytes of answers a connection may have waiting for a client that does not read;
    /// past it the connection is closed (slow_reader).
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
}

/// A checked configuration: every field is usable as it is.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub control: SocketAddr,
    /// The CPU of each worker, in worker order.
    pub cores: Vec<usize>,
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
    pub defer_accept: u32,
    pub sock_buf: usize,
    pub steer_incoming_cpu: bool,
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
            Some(i) => host_dir.join(crate::formats::instance_dir(i)),
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
            self.stats_out = StatsOut::File(f.stats);
        }
        let allowed = cores::allowed_cpus();
        let cores = match &self.cores {
            Some(list) => {
                let want = cores::parse_list(list)?;
                cores::check_allowed(&want, &allowed)?;
                want
            }
            None => allowed,
        };
        if cores.is_empty() {
            return Err("no CPU to run a worker on".into());
        }
        if self.set_size == 0 || self.set_size > 1 << 20 {
            return Err(format!("--set-size {} outside 1..=1048576", self.set_size));
        }
        if self.send_amount.min < crate::protocol::MAX_RECIPIENTS as u32 {
            return Err(format!(
                "--send-amount {}: MIN must be at least {} (a cent for each recipient)",
                self.send_amount,
                crate::protocol::MAX_RECIPIENTS
            ));
        }
        if self.write_queue < crate::protocol::MAX_FRAME_LEN {
            return Err(format!(
                "--write-queue {} is below one frame ({} bytes)",
                self.write_queue,
                crate::protocol::MAX_FRAME_LEN
            ));
        }
        if self.backlog <= 0 {
            return Err("--backlog must be positive".into());
        }
        if self.max_conns == Some(0) {
            return Err("--max-conns must be positive".into());
        }
        if self.listen == self.control && self.listen.port() != 0 {
            return Err(format!("--listen and --control are both {}", self.listen));
        }
        if self.steer_incoming_cpu {
            cores::steering_order(&cores)?;
        }
        Ok(Config {
            listen: self.listen,
            control: self.control,
            cores,
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
            status_line: match self.status_line.as_str() {
                "on" => true,
                "off" => false,
                _ => {
                    std::io::IsTerminal::is_terminal(&std::io::stdout())
                        && self.stats_out != StatsOut::Stdout
                }
            },
            stats_out: self.stats_out,
            ready_file: self.ready_file,
            grace: self.grace,
            backlog: self.backlog,
            nodelay: self.nodelay.unwrap_or(!self.no_nodelay),
            busy_poll: self.busy_poll,
            defer_accept: self.defer_accept,
            sock_buf: self.sock_buf,
            steer_incoming_cpu: self.steer_incoming_cpu,
        })
    }
}

impl Config {
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
            matches!(cfg.stats_out, StatsOut::File(p) if p == h.join("instance-2/server.jsonl"))
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
        assert!(bad(&["--set-size", "0"]).contains("set-size"));
        assert!(bad(&["--send-amount", "1..10"]).contains("MIN"));
        assert!(bad(&["--listen", "127.0.0.1:5", "--control", "127.0.0.1:5"]).contains("both"));
        assert!(bad(&["--login-timeout", "0"]).contains("positive"));
    }
}
