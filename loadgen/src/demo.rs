//! `demo`: the one-command local run, from a clone to a report.
//!
//! The server runs in its own process, the real `redpacket-server` program (found or
//! built by [`crate::server_bin`]): here a process may open 20 000 files, and 10 000
//! users take 10 000 on each side. `demo` finds the server's ports through
//! `--ready-file`, drives it with the ordinary `run` machinery, stops it with SIGTERM,
//! lays the results out as the report expects (`results/<run-id>/run.json` and
//! `results/<run-id>/<host>/{loadgen.jsonl, summary.json, histograms.json}` beside the
//! server's own files there: `server.jsonl` and the rest of what its `--host-dir`
//! writes), then makes the report (`report.html`, `report.md`, `charts/`) in-process
//! with the code of `redpacket-report`.

use crate::cli::DemoArgs;
use crate::plan::{Phase, DEFAULT_CAMPAIGN_QPS};
use crate::run::{self, RunConfig};
use crate::users::UserRange;
use redpacket::formats::{HostEntry, PhasePlan, RunMeta, SCHEMA};
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The demo's plan: a warm-up, then 2k and 4k shakes/s, each with both campaigns.
pub fn demo_plan(scale: f64, time_scale: f64) -> Vec<Phase> {
    [
        ("warm", 1000.0, 10.0),
        ("2k", 2000.0, 20.0),
        ("4k", 4000.0, 20.0),
    ]
    .iter()
    .map(|(n, q, d)| {
        let mut p = Phase::new(n, q * scale, d * time_scale);
        p = p.with_campaigns(DEFAULT_CAMPAIGN_QPS, DEFAULT_CAMPAIGN_QPS);
        p.send_rate = Some(200.0);
        p
    })
    .collect()
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

#[derive(Deserialize)]
struct Ready {
    listen: SocketAddr,
    control: SocketAddr,
    pid: u32,
}

/// A server child process, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct ServerChild {
    pub child: Child,
    pub listen: SocketAddr,
    pub control: SocketAddr,
    pub argv: Vec<String>,
}

impl ServerChild {
    /// Starts `program --listen 127.0.0.1:0 --control 127.0.0.1:0 --ready-file F`
    /// and waits (at most 30 s) for it to be bound.
    pub fn start(program: &Path, extra: &[String], work: &Path) -> Result<ServerChild, String> {
        let ready = work.join("server-ready.json");
        let _ = std::fs::remove_file(&ready);
        let mut argv: Vec<String> = Vec::new();
        argv.extend(
            [
                "--listen",
                "127.0.0.1:0",
                "--control",
                "127.0.0.1:0",
                "--ready-file",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        argv.push(ready.display().to_string());
        argv.extend(extra.iter().cloned());
        let mut child = Command::new(program)
            .args(&argv)
            .stdin(Stdio::null())
            // Its status line would fight the load generator's for the terminal.
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the server {}: {e}", program.display()))?;
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                if let Ok(r) = serde_json::from_str::<Ready>(&text) {
                    let _ = r.pid;
                    let mut full = vec![program.display().to_string()];
                    full.extend(argv);
                    return Ok(ServerChild {
                        child,
                        listen: r.listen,
                        control: r.control,
                        argv: full,
                    });
                }
            }
            if let Ok(Some(st)) = child.try_wait() {
                return Err(format!("the server exited before it was ready ({st})"));
            }
            if Instant::now() > until {
                let _ = child.kill();
                let _ = child.wait();
                return Err("the server was not ready within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then up to `grace` to exit, then SIGKILL. Returns the exit code.
    pub fn stop(&mut self, grace: Duration) -> Option<i32> {
        if let Ok(Some(st)) = self.child.try_wait() {
            return st.code();
        }
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.child.wait().ok().and_then(|s| s.code())
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
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
    if a.users < 4 || a.users > 19_000 {
        return Err("--users must be 4..=19000 (each user is one open file on each side)".into());
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
    // The server writes server.jsonl (and its final account, network samples and
    // tuning snapshot) into the same host folder.
    let extra = vec!["--host-dir".to_string(), host_dir.display().to_string()];
    let program = crate::server_bin::locate(a.server_bin.as_deref())?;
    eprintln!("demo: starting the server ({})", program.display());
    let mut server = ServerChild::start(&program, &extra, &run_dir)?;
    eprintln!(
        "demo: server on {} (control http://{})",
        server.listen, server.control
    );
    let plan = demo_plan(a.scale, a.time_scale);
    let users = UserRange::new(0, a.users);
    let cfg = RunConfig {
        users,
        all_users: users,
        servers: vec![server.listen],
        server_controls: vec![server.control],
        source_addrs: Vec::new(),
        connect_rate: 5000.0,
        connect_deadline_s: 30.0,
        threads: a.threads.max(1),
        pin: true,
        procs: 1,
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        reconnect: false,
        think_ms: (10, 200),
        send_cents: (100, 1000),
        send_rate: 200.0,
        plan: plan.clone(),
        start_at: None,
        out: Some(host_dir.clone()),
        // The server child samples this host into the same folder.
        sample_host: false,
        control: None,
        max_p99_ms: a.max_p99_ms,
        max_error_rate: a.max_error_rate,
        money_check: true,
        quiet: false,
        child: false,
        seed: started.to_bits(),
        tick: Duration::from_micros(500),
    };
    let outcome = run::run(cfg);
    let server_code = server.stop(Duration::from_secs(15));
    let _ = std::fs::remove_file(run_dir.join("server-ready.json"));
    let outcome = outcome.map_err(|(_, e)| e)?;
    let loadgen_cmd = std::env::args()
        .map(|a| shell_word(&a))
        .collect::<Vec<_>>()
        .join(" ");
    let server_cmd = server
        .argv
        .iter()
        .map(|a| shell_word(a))
        .collect::<Vec<_>>()
        .join(" ");
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
        ("server_exit_code", json!(server_code)),
    ];
    let run_json = RunMeta {
        schema: SCHEMA,
        run_id: run_id.clone(),
        started,
        ended: run::unix_f64(),
        description: format!(
            "demo: one machine, loopback, {} users, server and load generator in separate processes",
            a.users
        ),
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
        commands: vec![json!(loadgen_cmd), json!(server_cmd)],
        git_commit: git_commit().unwrap_or_default(),
        extra: extra.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    };
    let text = serde_json::to_string_pretty(&run_json).map_err(|e| e.to_string())?;
    std::fs::write(run_dir.join("run.json"), text + "\n")
        .map_err(|e| format!("cannot write run.json: {e}"))?;
    let report = match redpacket::report::report(&run_dir) {
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
    fn demo_plan_is_about_a_minute() {
        let p = demo_plan(1.0, 1.0);
        let total: f64 = p.iter().map(|p| p.duration_s).sum();
        assert!((40.0..=70.0).contains(&total));
        assert!(p.iter().all(|p| p.shake_campaign_qps > 0.0));
    }
}
