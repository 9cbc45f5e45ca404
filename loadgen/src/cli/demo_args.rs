//! `redpacket-loadgen demo`'s flags, checked and turned into a [`DemoConfig`].

use super::usage::usage_error;
use super::values::{duration_or_zero, rate};
use crate::demo::{self, DemoConfig};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// Flags of `demo`.
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Users to connect. Each takes an open file on each side: past what one process
    /// may open, the demo starts several server instances and load-generator processes
    /// (a million users here: about 51 of each) and refuses at once, with the figures,
    /// when the host cannot hold them.
    #[arg(long, default_value_t = 10_000)]
    pub users: u32,
    /// Lay the run out as a run of this many users would be (its server instances,
    /// load-generator processes, tick and plan), connecting only --users: what the
    /// layout costs apart from the users it holds (bench/ratio.sh). At least --users.
    #[arg(long, value_name = "USERS")]
    pub layout_for: Option<u32>,
    /// New connections per second, all processes together. Default: 5 000 with one
    /// server, 25 000 with several instances.
    #[arg(long, value_parser = rate)]
    pub connect_rate: Option<f64>,
    /// Results go to RESULTS/RUN_ID/.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Default: the UTC time, e.g. 20261126-142501-demo.
    #[arg(long)]
    pub run_id: Option<String>,
    /// Multiplies the plan's shake rates (1 = 1k, 2k, 4k shakes/s with one server; 10k,
    /// 20k, 30k with several instances).
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
    /// Shortest time between two timed wake-ups of a load-generator worker (as `run
    /// --tick`). Default: 500us with one process, TICK_MANY with several.
    #[arg(long, value_parser = duration_or_zero)]
    pub tick: Option<Duration>,
    /// Fail if any phase's p99 is above this, milliseconds.
    #[arg(long)]
    pub max_p99_ms: Option<f64>,
    /// Fail if any phase's (errors + timeouts) / scheduled is above this.
    #[arg(long)]
    pub max_error_rate: Option<f64>,
}

impl DemoArgs {
    /// Checks the flags and runs the demo; returns the exit code.
    pub fn run(&self) -> i32 {
        match self.config() {
            Ok(c) => demo::demo(&c),
            Err(e) => usage_error(&e),
        }
    }

    /// Checks the flags and builds the demo's configuration.
    pub fn config(&self) -> Result<DemoConfig, String> {
        if self.users < demo::MIN_USERS {
            return Err(format!(
                "demo --users {}: the demo needs at least {} users",
                self.users,
                demo::MIN_USERS
            ));
        }
        for (flag, v) in [("--scale", self.scale), ("--time-scale", self.time_scale)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("demo {flag} {v}: must be above 0"));
            }
        }
        Ok(DemoConfig {
            users: self.users,
            layout_for: self.layout_for,
            connect_rate: self.connect_rate,
            results: self.results.clone(),
            run_id: self.run_id.clone(),
            scale: self.scale,
            time_scale: self.time_scale,
            server_bin: self.server_bin.clone(),
            threads: self.threads,
            tick: self.tick,
            max_p99_ms: self.max_p99_ms,
            max_error_rate: self.max_error_rate,
        })
    }
}
