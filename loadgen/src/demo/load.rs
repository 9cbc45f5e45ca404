//! What load the demo puts on its servers: its plan of phases and the run's
//! configuration, both fixed here rather than taken from `run`'s flags.

use super::{DemoConfig, Folders};
use crate::instances::Layout;
use crate::plan::{Phase, DEFAULT_CAMPAIGN_QPS};
use crate::run_config::RunConfig;
use crate::users::{ServerTarget, UserRange};
use std::net::SocketAddr;
use std::time::Duration;

/// The demo's plan: an idle phase (every user logged in, nothing asked: the footprint
/// is read there), then three shake phases, each with both campaigns. A single server
/// runs 1k, 2k and 4k shakes/s; several instances (a run past one process's open
/// files, up to a million users) run 10k, 20k and 30k: the last is the old test's
/// first phase, which it served to a million users from an 8-core server.
pub fn demo_plan(scale: f64, time_scale: f64, many: bool) -> Vec<Phase> {
    let (idle, rates): (f64, [(&str, f64, f64); 3]) = if many {
        (
            20.0,
            [
                ("10k", 10000.0, 20.0),
                ("20k", 20000.0, 20.0),
                ("30k", 30000.0, 20.0),
            ],
        )
    } else {
        (
            5.0,
            [
                ("warm", 1000.0, 10.0),
                ("2k", 2000.0, 20.0),
                ("4k", 4000.0, 20.0),
            ],
        )
    };
    // Truly idle: no shakes, no campaigns, no user-to-user sends.
    let mut quiet = Phase::new("idle", 0.0, idle * time_scale);
    quiet.send_rate = Some(0.0);
    let mut plan = vec![quiet];
    plan.extend(rates.iter().map(|(n, q, d)| {
        let mut p = Phase::new(n, q * scale, d * time_scale);
        p = p.with_campaigns(DEFAULT_CAMPAIGN_QPS, DEFAULT_CAMPAIGN_QPS);
        p.send_rate = Some(200.0);
        p
    }));
    plan
}

/// A load-generator worker's tick when the run has many processes. Fifty processes
/// each carry a fiftieth of the rate: one woken per request or answer pays a context
/// switch and cold caches for each; one woken per tick sends and reads a batch.
pub const TICK_MANY: Duration = Duration::from_millis(5);

/// The servers the demo drives: where users connect and where their controls answer.
pub struct Endpoints {
    pub listens: Vec<SocketAddr>,
    pub controls: Vec<SocketAddr>,
}

/// The run the demo makes against `servers`, laid out by `layout`, seeded by `started`.
pub fn run_config(
    c: &DemoConfig,
    layout: &Layout,
    servers: Endpoints,
    folders: &Folders,
    plan: Vec<Phase>,
    started: f64,
) -> RunConfig {
    let many = layout.instances > 1;
    let users = UserRange::new(0, c.users);
    let connect_rate = c
        .connect_rate
        .unwrap_or(if many { 25_000.0 } else { 5000.0 });
    RunConfig {
        users,
        all_users: users,
        servers: servers
            .listens
            .iter()
            .copied()
            .map(ServerTarget::bare)
            .collect(),
        server_controls: servers.controls,
        source_addrs: layout.source_addrs.clone(),
        connect_rate,
        // Room for the ramp at half the asked rate, and a little more.
        connect_deadline_s: 30.0 + 2.0 * f64::from(c.users) / connect_rate,
        threads: if layout.procs > 1 {
            1
        } else {
            c.threads.max(1)
        },
        // Many processes on few CPUs: the scheduler places them (the servers are
        // pinned, one CPU each, alternating).
        pin: layout.procs == 1,
        procs: layout.procs,
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        reconnect: false,
        think_ms: (10, 200),
        send_cents: (100, 1000),
        send_rate: 200.0,
        plan,
        start_at: None,
        out: Some(folders.host_dir.clone()),
        // The first server instance samples this host into the same folder.
        sample_host: false,
        control: None,
        max_p99_ms: c.max_p99_ms,
        max_error_rate: c.max_error_rate,
        money_check: true,
        quiet: false,
        live_view: true,
        child: false,
        seed: started.to_bits(),
        tick: c.tick.unwrap_or(if layout.procs > 1 {
            TICK_MANY
        } else {
            Duration::from_micros(500)
        }),
        // Every user asked for must be logged in at the end, or the run fails.
        min_connected: Some(u64::from(c.users)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_plan_is_about_a_minute_and_starts_idle() {
        for many in [false, true] {
            let p = demo_plan(1.0, 1.0, many);
            let total: f64 = p.iter().map(|p| p.duration_s).sum();
            assert!((40.0..=80.0).contains(&total), "{total}");
            assert_eq!((p[0].name.as_str(), p[0].qps), ("idle", 0.0));
            assert_eq!(p[0].shake_campaign_qps, 0.0);
            assert_eq!(p[0].send_rate, Some(0.0));
            assert!(p[1..].iter().all(|p| p.shake_campaign_qps > 0.0));
        }
    }
}
