//! [`RunConfig`]: everything a run needs, checked.
//!
//! Built by the command line (`run`'s flags) or by the demo, read by the coordinator
//! (`run`) and by the parent of `--procs` children (`procs`), which
//! writes it back out as a child's flags. It lives apart from both so that neither
//! imports the other for it.

use crate::plan::Phase;
use crate::token::Token;
use crate::users::{ServerTarget, UserRange};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// The `--control` listener (`/qps`, `/stats`, `/metrics`): its address and, required
/// off loopback, the token every request must carry ([`crate::token`]).
#[derive(Clone, Debug)]
pub struct ControlListen {
    pub addr: SocketAddr,
    pub token: Option<Token>,
}

/// Everything a run needs, validated.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Users this process (tree) drives.
    pub users: UserRange,
    /// Users all processes of the run drive (rates are spread over these).
    pub all_users: UserRange,
    /// `--server`: bare addresses or addresses with their ranges ([`crate::users::Targets::new`]).
    pub servers: Vec<ServerTarget>,
    pub server_controls: Vec<SocketAddr>,
    pub source_addrs: Vec<IpAddr>,
    pub connect_rate: f64,
    /// Longest the connect ramp may take before load starts anyway, seconds.
    pub connect_deadline_s: f64,
    pub threads: usize,
    pub pin: bool,
    pub procs: usize,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub reconnect: bool,
    pub think_ms: (u64, u64),
    pub send_cents: (u32, u32),
    /// Client sends per second when a phase does not say.
    pub send_rate: f64,
    pub plan: Vec<Phase>,
    /// Unix seconds at which the first phase begins (`--start-at`): the ramp runs until
    /// then, and the plan's phases follow from that instant.
    pub start_at: Option<f64>,
    pub out: Option<PathBuf>,
    /// Write `net.jsonl` and `tuning.txt` for this host into `out` (off when a server on
    /// the same host already does, as in the demo).
    pub sample_host: bool,
    /// `--control`: where the live listener binds, and the token it asks for.
    pub control: Option<ControlListen>,
    pub max_p99_ms: Option<f64>,
    pub max_error_rate: Option<f64>,
    pub money_check: bool,
    pub quiet: bool,
    /// The live fleet view ([`crate::fleet_view`]) shows each second: no progress line
    /// of our own.
    pub live_view: bool,
    /// Run as a child of `--procs`: commands on stdin, figures on stdout.
    pub child: bool,
    pub seed: u64,
    /// Shortest time between two timed wake-ups of a worker.
    pub tick: Duration,
    /// The run fails when fewer users than this are logged in at the end of the last
    /// phase (the demo asks for all of them).
    pub min_connected: Option<u64>,
}
