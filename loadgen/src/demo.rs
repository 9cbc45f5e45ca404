//! `demo`: the one-command local run, from a clone to a report.
//!
//! The servers run in their own processes, the real `redpacket-server` program (found
//! or built by [`crate::server_bin`]). A process may open only so many files (20 000
//! here) and each user takes one on each side, so the demo lays the run out by that
//! limit ([`crate::instances::Layout`]): up to ~19 000 users, one server and this
//! process's threads; past it, as many server instances and load-generator processes
//! as the limit requires (a million users: about 51 of each), with source addresses in
//! 127.0.1.0/24. It refuses at once, with the figures, when the host cannot hold the
//! users ([`redpacket_host::check::one_host`]). It drives the servers with the
//! ordinary `run` machinery, samples what the run costs the host
//! ([`crate::footprint`]), stops every server with SIGTERM (also on Ctrl-C or failure:
//! they are stopped when dropped), lays the results out as the report expects
//! (`results/<run-id>/run.json`, `results/<run-id>/<host>/{loadgen.jsonl, summary.json,
//! histograms.json, footprint.jsonl}` beside the servers' own files there), then makes
//! the report (`report.html`, `report.md`, `charts/`) in-process with the code of
//! `redpacket-report`.

use crate::cli::DemoArgs;
use crate::footprint;
use crate::instances::{Instances, Layout};
use crate::plan::{Phase, DEFAULT_CAMPAIGN_QPS};
use crate::run::{self, RunConfig};
use crate::users::{ServerTarget, UserRange};
use redpacket_formats::{HostEntry, PhasePlan, RunMeta, SCHEMA};
use redpacket_host::check;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The demo's plan: an idle phase (every user logged in, nothing asked: the footprint
/// is read there), then three shake phases, each with both campaigns. A single server
/// runs 1k, 2k and 4k shakes/s; several instances (a run past one process's open
/// files, up to a million users) run 5k, 10k and 20k, rates this 2-CPU box carries
/// beside that many idle connections.
pub fn demo_plan(scale: f64, time_scale: f64, many: bool) -> Vec<Phase> {
    let (idle, rates): (f64, [(&str, f64, f64); 3]) = if many {
        (
            20.0,
            [
                ("5k", 5000.0, 20.0),
                ("10k", 10000.0, 20.0),
                ("20k", 20000.0, 20.0),
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

/// Quotes a command-line word for a shell when it needs it.
fn shell_word(w: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c);
    if !w.is_empty() && w.chars().all(plain) {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

/// A UTC run id like `20261126-142501-demo`.
pub fn default_run_id(unix: u64) -> String {
    run_id(unix, "demo")
}

/// A UTC run id like `20261126-142501-<kind>`.
pub fn run_id(unix: u64, kind: &str) -> String {
    let (days, secs) = (unix / 86_400, unix % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}-{kind}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `results/<id>`, or `results/<id>-2`, `-3`, ... when a run of the same second exists.
pub fn fresh_run_dir(results: &Path, id: &str) -> PathBuf {
    let mut dir = results.join(id);
    let mut n = 2;
    while dir.exists() {
        dir = results.join(format!("{id}-{n}"));
        n += 1;
    }
    dir
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty() && !s.contains('/'))
        .unwrap_or_else(|| "localhost".into())
}

/// The commit of the working directory's repository, else of the one this was built in.
fn git_commit() -> Option<String> {
    let at = |dir: &str| {
        let out = Command::new("git")
            .args(["-C", dir, "rev-parse", "HEAD"])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    at(".").or_else(|| at(env!("CARGO_MANIFEST_DIR")))
}

/// Runs the demo; returns the exit code.
pub fn demo(a: &DemoArgs) -> i32 {
    match demo_inner(a) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("redpacket-loadgen demo: {e}");
            1
        }
    }
}

fn demo_inner(a: &DemoArgs) -> Result<i32, String> {
    if a.users < 4 {
        return Err("--users must be at least 4".into());
    }
    // Children (servers and load-generator processes) inherit the raised limit.
    let (_, nofile) = redpacket_sys::rlimit::raise_nofile();
    let layout = match Layout::for_users(u64::from(a.users), nofile, 1) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("redpacket-loadgen demo: {e}");
            return Ok(2);
        }
    };
    let many = layout.instances > 1;
    let workers = if many {
        1
    } else {
        redpacket_sys::cores::allowed_cpus().len().max(1)
    };
    let ask = check::OneHostAsk {
        users: u64::from(a.users),
        instances: layout.instances as u64,
        workers,
        procs: layout.procs as u64,
        source_addrs: layout.source_addrs.len().max(1) as u64,
    };
    let verdict = check::one_host(&ask, &check::HostView::read(None));
    if !verdict.ok {
        // Refused before anything starts: what each limit allows, and what to raise.
        eprint!(
            "redpacket-loadgen demo: this host cannot hold {} users with both sides on it \
             ({} server instances, {} load-generator processes):\n{}",
            a.users,
            layout.instances,
            layout.procs,
            verdict.human()
        );
        return Ok(2);
    }
    if many {
        eprintln!(
            "demo: {} users need {} server instances (up to {} connections each) and {} \
             load-generator processes (up to {} users each) under an open-files limit of \
             {nofile}; {} source addresses {}-{}",
            a.users,
            layout.instances,
            layout.per_instance,
            layout.procs,
            layout.per_proc,
            layout.source_addrs.len(),
            layout
                .source_addrs
                .first()
                .map(|x| x.to_string())
                .unwrap_or_default(),
            layout
                .source_addrs
                .last()
                .map(|x| x.to_string())
                .unwrap_or_default(),
        );
    }
    let started = run::unix_f64();
    let run_id = a
        .run_id
        .clone()
        .unwrap_or_else(|| default_run_id(started as u64));
    let run_dir = a.results.join(&run_id);
    let host = hostname();
    let host_dir = run_dir.join(&host);
    std::fs::create_dir_all(&host_dir)
        .map_err(|e| format!("cannot create {}: {e}", host_dir.display()))?;
    // The first footprint sample is taken now, before any server runs: the baseline.
    let sampler = footprint::Sampler::start(&host_dir)?;
    // The servers write server.jsonl (and their final account, network samples and
    // tuning snapshot) into the same host folder, under instance-I/ when there are
    // several.
    let extra = vec![
        "--host-dir".to_string(),
        host_dir.display().to_string(),
        "--grace".to_string(),
        "10".to_string(),
    ];
    let program = crate::server_bin::locate(a.server_bin.as_deref())?;
    eprintln!(
        "demo: starting {} ({})",
        if many {
            format!("{} server instances", layout.instances)
        } else {
            "the server".to_string()
        },
        program.display()
    );
    let mut servers = Instances::start(&program, layout.instances, &extra, &run_dir, &host_dir)?;
    sampler.servers_started(servers.pids());
    let listens = servers.listens();
    let controls = servers.controls();
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
    let plan = demo_plan(a.scale, a.time_scale, many);
    let users = UserRange::new(0, a.users);
    let connect_rate = a
        .connect_rate
        .unwrap_or(if many { 10_000.0 } else { 5000.0 });
    let cfg = RunConfig {
        users,
        all_users: users,
        servers: listens.iter().copied().map(ServerTarget::bare).collect(),
        server_controls: controls,
        source_addrs: layout.source_addrs.clone(),
        connect_rate,
        // Room for the ramp at half the asked rate, and a little more.
        connect_deadline_s: 30.0 + 2.0 * f64::from(a.users) / connect_rate,
        threads: if layout.procs > 1 {
            1
        } else {
            a.threads.max(1)
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
        plan: plan.clone(),
        start_at: None,
        out: Some(host_dir.clone()),
        // The first server instance samples this host into the same folder.
        sample_host: false,
        control: None,
        max_p99_ms: a.max_p99_ms,
        max_error_rate: a.max_error_rate,
        money_check: true,
        quiet: false,
        child: false,
        seed: started.to_bits(),
        // Ticking batches a busy worker's wake-ups (one per 500 us); fifty processes
        // each carrying a fiftieth of the rate do better woken by their own events.
        tick: if layout.procs > 1 {
            Duration::ZERO
        } else {
            Duration::from_micros(500)
        },
        // Every user asked for must be logged in at the end, or the run fails.
        min_connected: Some(u64::from(a.users)),
    };
    let outcome = run::run(cfg);
    if many {
        eprintln!("demo: stopping {} server instances", layout.instances);
    }
    let server_codes = servers.stop(Duration::from_secs(30));
    drop(sampler);
    let outcome = outcome.map_err(|(_, e)| e)?;
    let loadgen_cmd = std::env::args()
        .map(|a| shell_word(&a))
        .collect::<Vec<_>>()
        .join(" ");
    let server_cmds: Vec<serde_json::Value> = servers
        .servers
        .iter()
        .map(|s| {
            json!(s
                .argv
                .iter()
                .map(|a| shell_word(a))
                .collect::<Vec<_>>()
                .join(" "))
        })
        .collect();
    // run.json as the report reads it (results/README.md, schema 1), plus the plan and
    // versions. The host folder holds both the server's and the loadgen's files, so its
    // role is left for the report to guess from them.
    let extra = [
        ("users", json!(users.to_string())),
        ("plan", json!(plan)),
        (
            "versions",
            json!({"redpacket-loadgen": env!("CARGO_PKG_VERSION"), "redpacket": env!("CARGO_PKG_VERSION")}),
        ),
        (
            "server_exit_code",
            json!(server_codes
                .iter()
                .copied()
                .find(|c| *c != Some(0))
                .unwrap_or(Some(0))),
        ),
        ("server_instances", json!(layout.instances)),
        ("loadgen_procs", json!(layout.procs)),
        (
            "source_addrs",
            json!(layout
                .source_addrs
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()),
        ),
    ];
    let run_json = RunMeta {
        schema: SCHEMA,
        run_id: run_id.clone(),
        started,
        ended: run::unix_f64(),
        description: if many {
            format!(
                "demo: one machine, loopback, {} users, {} server instances and {} load-generator processes",
                a.users, layout.instances, layout.procs
            )
        } else {
            format!(
                "demo: one machine, loopback, {} users, server and load generator in separate processes",
                a.users
            )
        },
        phases: outcome
            .boundaries
            .iter()
            .map(|(n, q, s, e)| PhasePlan {
                name: n.clone(),
                target_qps: *q,
                start: *s,
                end: *e,
            })
            .collect(),
        hosts: vec![HostEntry::Name(host)],
        commands: std::iter::once(json!(loadgen_cmd))
            .chain(server_cmds)
            .collect(),
        git_commit: git_commit().unwrap_or_default(),
        // One machine: a process that fails shows in its own files.
        failed_hosts: Default::default(),
        extra: extra.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    };
    let text = serde_json::to_string_pretty(&run_json).map_err(|e| e.to_string())?;
    std::fs::write(run_dir.join("run.json"), text + "\n")
        .map_err(|e| format!("cannot write run.json: {e}"))?;
    let report = match redpacket_report::report(&run_dir) {
        Ok(r) => r,
        Err(e) => {
            if let Some(s) = &outcome.summary {
                print!("{}", crate::report::table(s));
            }
            return Err(format!(
                "the run is in {} but its report failed: {e}",
                run_dir.display()
            ));
        }
    };
    print!("{}", report.text);
    println!("report: {}", report.html.display());
    println!(
        "re-make it: cargo run --release --bin redpacket-report -- {}",
        shell_word(&run_dir.display().to_string())
    );
    println!(
        "compare it with another run: cargo run --release --bin redpacket-report -- --compare RUN_A {}",
        shell_word(&run_dir.display().to_string())
    );
    Ok(outcome.exit_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_utc_timestamps() {
        assert_eq!(default_run_id(0), "19700101-000000-demo");
        assert_eq!(default_run_id(1_795_703_101), "20261126-142501-demo");
        assert_eq!(default_run_id(951_782_400), "20000229-000000-demo");
        assert_eq!(run_id(0, "run"), "19700101-000000-run");
    }

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
