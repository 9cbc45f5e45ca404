//! `demo`: the one-command local run, from a clone to a report.
//!
//! The servers run in their own processes, the real `redpacket-server` program (found
//! or built by [`crate::siblings`]). A process may open only so many files (20 000
//! here) and each user takes one on each side, so the demo lays the run out by that
//! limit ([`crate::instances::Layout`]): up to ~19 000 users, one server and this
//! process's threads; past it, as many server instances and load-generator processes
//! as the limit requires (a million users: about 51 of each), with source addresses in
//! 127.0.1.0/24. It refuses at once, with the figures, when the host cannot hold the
//! users ([`redpacket_host::check::one_host`]). It drives the servers with the
//! ordinary `run` machinery (`load` fixes the plan and the run's configuration),
//! samples what the run costs the host ([`crate::footprint`]), stops every server with
//! SIGTERM (also on Ctrl-C or failure: they are stopped when dropped), lays the results
//! out as the report expects (`results/<run-id>/run.json` from `run_json`,
//! `results/<run-id>/<host>/{loadgen.jsonl, summary.json, histograms.json,
//! footprint.jsonl}` beside the servers' own files there), then runs the
//! `redpacket-report` program on the run folder (`report.html`, `report.md`,
//! `charts/`), found beside this one as the server is.

mod load;
mod run_json;

pub use load::demo_plan;

use crate::footprint;
use crate::instances::{Instances, Layout};
use crate::output;
use crate::run::{self, Outcome};
use crate::run_dir;
use crate::siblings;
use load::Endpoints;
use redpacket_host::check;
use run_json::{shell_word, RunFacts};
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// What the demo is asked to do, checked by the command line.
#[derive(Clone, Debug)]
pub struct DemoConfig {
    /// Users to connect, at least [`MIN_USERS`].
    pub users: u32,
    /// Lay the run out as for this many users (at least `users`); `None`: for `users`.
    pub layout_for: Option<u32>,
    /// New connections per second; `None`: the layout's default.
    pub connect_rate: Option<f64>,
    /// Results go to `results/<run_id>/`.
    pub results: PathBuf,
    /// `None`: from the UTC time ([`run_dir::default_run_id`]).
    pub run_id: Option<String>,
    /// Multiplies the plan's shake rates.
    pub scale: f64,
    /// Multiplies the plan's phase lengths.
    pub time_scale: f64,
    /// The server program; `None`: the `redpacket-server` beside this program.
    pub server_bin: Option<PathBuf>,
    /// Worker threads of the load generator (with a single process).
    pub threads: usize,
    /// A load-generator worker's tick; `None`: the layout's default.
    pub tick: Option<Duration>,
    pub max_p99_ms: Option<f64>,
    pub max_error_rate: Option<f64>,
}

/// The fewest users the demo accepts.
pub const MIN_USERS: u32 = 4;

/// An error of the demo with its exit code: 2 the host cannot hold the run, 1 the rest.
type Failed = (i32, String);

fn failed(e: String) -> Failed {
    (1, e)
}

/// Runs the demo; returns the exit code.
pub fn demo(c: &DemoConfig) -> i32 {
    match demo_steps(c) {
        Ok(code) => code,
        Err((code, e)) => {
            eprintln!("redpacket-loadgen demo: {}", e.trim_end());
            code
        }
    }
}

/// The demo, step by step: lay out, start the servers, run the plan, stop the servers,
/// write run.json, make the report.
fn demo_steps(c: &DemoConfig) -> Result<i32, Failed> {
    let layout = lay_out(c)?;
    let started = run::unix_f64();
    let folders = Folders::create(c, started)?;
    // The first footprint sample is taken now, before any server runs: the baseline.
    let sampler = footprint::Sampler::start(&folders.host_dir).map_err(failed)?;
    let mut servers = start_servers(c, &layout, &folders)?;
    sampler.servers_started(servers.pids());
    let plan = demo_plan(c.scale, c.time_scale, layout.instances > 1);
    let endpoints = Endpoints {
        listens: servers.listens(),
        controls: servers.controls(),
    };
    let cfg = load::run_config(c, &layout, endpoints, &folders, plan.clone(), started);
    let view = fleet_view(&folders, layout.instances);
    let outcome = run::run(cfg);
    if let Some(v) = view {
        v.finish();
    }
    if layout.instances > 1 {
        eprintln!("demo: stopping {} server instances", layout.instances);
    }
    let server_codes = servers.stop(Duration::from_secs(30));
    drop(sampler);
    let outcome = outcome.map_err(|(_, e)| failed(e))?;
    let facts = RunFacts {
        users: c.users,
        run_id: &folders.run_id,
        host: &folders.host,
        started,
        plan: &plan,
        layout: &layout,
        server_argvs: servers.servers.iter().map(|s| &s.argv[..]).collect(),
        server_codes: &server_codes,
        outcome: &outcome,
        thresholds: redpacket_formats::run::Thresholds {
            max_p99_ms: c.max_p99_ms,
            max_error_rate: c.max_error_rate,
            ..Default::default()
        },
    };
    run_json::write(&folders.run_dir, &facts).map_err(failed)?;
    make_report(&folders, &outcome)?;
    Ok(outcome.exit_code)
}

/// The live view of the demo: its load generator as the host, each server instance as
/// `<host>/instance-I` (or `<host>/server`), from the files they write for the report.
fn fleet_view(f: &Folders, instances: usize) -> Option<crate::fleet_view::FleetView> {
    let servers: Vec<(String, std::path::PathBuf)> = if instances > 1 {
        (1..=instances as u32)
            .map(|i| {
                let dir = redpacket_formats::instance_dir(i);
                (
                    format!("{}/{dir}", f.host),
                    f.host_dir.join(&dir).join("server.jsonl"),
                )
            })
            .collect()
    } else {
        vec![(
            format!("{}/server", f.host),
            f.host_dir.join("server.jsonl"),
        )]
    };
    crate::fleet_view::FleetView::start(&f.run_dir, &f.host, &f.host_dir, &servers)
}

/// Raises the open-files limit (the servers and load-generator processes inherit it),
/// lays the run out by it and checks that this host can hold it; exit 2 if not.
fn lay_out(c: &DemoConfig) -> Result<Layout, Failed> {
    let (_, nofile) = redpacket_sys::rlimit::raise_nofile();
    let users = u64::from(c.users);
    let layout = match c.layout_for {
        Some(like) => Layout::as_for(users, u64::from(like), nofile, 1),
        None => Layout::for_users(users, nofile, 1),
    }
    .map_err(|e| (2, e))?;
    let many = layout.instances > 1;
    let ask = check::OneHostAsk {
        users: u64::from(c.users),
        instances: layout.instances as u64,
        workers: if many {
            1
        } else {
            redpacket_sys::cores::allowed_cpus().len().max(1)
        },
        procs: layout.procs as u64,
        source_addrs: layout.source_addrs.len().max(1) as u64,
    };
    let verdict = check::one_host(&ask, &check::HostView::read(None));
    if !verdict.ok {
        // Refused before anything starts: what each limit allows, and what to raise.
        return Err((
            2,
            format!(
                "this host cannot hold {} users with both sides on it \
                 ({} server instances, {} load-generator processes):\n{}",
                c.users,
                layout.instances,
                layout.procs,
                verdict.human()
            ),
        ));
    }
    for a in &verdict.advice {
        // What costs CPU rather than users (e.g. a small established table): said, not
        // refused.
        eprintln!("demo: advice: {a}");
    }
    if many {
        let addr = |a: Option<&std::net::IpAddr>| a.map(|x| x.to_string()).unwrap_or_default();
        let who = match c.layout_for {
            Some(like) => format!("{} users, laid out as for {like},", c.users),
            None => format!("{} users", c.users),
        };
        eprintln!(
            "demo: {who} need {} server instances (up to {} connections each) and {} \
             load-generator processes (up to {} users each) under an open-files limit of \
             {nofile}; {} source addresses {}-{}",
            layout.instances,
            layout.per_instance,
            layout.procs,
            layout.per_proc,
            layout.source_addrs.len(),
            addr(layout.source_addrs.first()),
            addr(layout.source_addrs.last()),
        );
    }
    Ok(layout)
}

/// Where the demo's files go: `results/<run-id>/` and its host folder.
pub struct Folders {
    pub run_id: String,
    pub run_dir: PathBuf,
    pub host: String,
    pub host_dir: PathBuf,
}

impl Folders {
    /// Names the run (by `started` unless the user did) and creates its host folder.
    fn create(c: &DemoConfig, started: f64) -> Result<Folders, Failed> {
        let run_id = c
            .run_id
            .clone()
            .unwrap_or_else(|| run_dir::default_run_id(started as u64));
        let run_dir = c.results.join(&run_id);
        let host = run_dir::hostname();
        let host_dir = run_dir.join(&host);
        std::fs::create_dir_all(&host_dir)
            .map_err(|e| failed(format!("cannot create {}: {e}", host_dir.display())))?;
        Ok(Folders {
            run_id,
            run_dir,
            host,
            host_dir,
        })
    }
}

/// Starts the server instances of `layout`, writing into the host folder.
fn start_servers(c: &DemoConfig, layout: &Layout, f: &Folders) -> Result<Instances, Failed> {
    // The servers write server.jsonl (and their final account, network samples and
    // tuning snapshot) into the same host folder, under instance-I/ when there are
    // several.
    let extra = vec![
        "--host-dir".to_string(),
        f.host_dir.display().to_string(),
        "--grace".to_string(),
        "10".to_string(),
    ];
    let program = siblings::server(c.server_bin.as_deref()).map_err(failed)?;
    let many = layout.instances > 1;
    eprintln!(
        "demo: starting {} ({})",
        if many {
            format!("{} server instances", layout.instances)
        } else {
            "the server".to_string()
        },
        program.display()
    );
    let servers = Instances::start(&program, layout.instances, &extra, &f.run_dir, &f.host_dir)
        .map_err(failed)?;
    let (listens, controls) = (servers.listens(), servers.controls());
    if many {
        eprintln!(
            "demo: servers on {}..{} (control {}..{})",
            listens[0],
            listens[listens.len() - 1],
            controls[0],
            controls[controls.len() - 1]
        );
    } else {
        eprintln!(
            "demo: server on {} (control http://{})",
            listens[0], controls[0]
        );
    }
    Ok(servers)
}

/// Runs `redpacket-report` on the run folder, its text going to our standard output;
/// when it fails, prints the load generator's own table instead.
fn make_report(f: &Folders, outcome: &Outcome) -> Result<(), Failed> {
    let run_dir = shell_word(&f.run_dir.display().to_string());
    let made = siblings::report().and_then(|program| {
        let _ = std::io::stdout().flush();
        match Command::new(&program).arg(&f.run_dir).status() {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(format!("{} ended with {s}", program.display())),
            Err(e) => Err(format!("cannot run {}: {e}", program.display())),
        }
    });
    if let Err(e) = made {
        if let Some(s) = &outcome.summary {
            print!("{}", output::table(s));
        }
        return Err(failed(format!(
            "the run is in {} but its report failed: {e}",
            f.run_dir.display()
        )));
    }
    println!("report: {}", f.run_dir.join("report.html").display());
    println!("re-make it: cargo run --release --bin redpacket-report -- {run_dir}");
    println!(
        "compare it with another run: cargo run --release --bin redpacket-report -- --compare RUN_A {run_dir}"
    );
    Ok(())
}
