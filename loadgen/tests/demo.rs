//! The demo past one process's open files: the test lowers the open-files limit of the
//! demo (and so of everything it starts) to 2 000, so 5 000 users need three server
//! instances and three load-generator processes, as a million users need about fifty
//! of each under this machine's 20 000. Money must reconcile across the instances, the
//! footprint must be sampled, and no process may outlive the demo, also on Ctrl-C; a
//! host that cannot hold the users is refused before anything starts. The per-second
//! lines of the several processes must add up second by second, as the totals do.

use redpacket_testkit::process::Proc;
use redpacket_testkit::{scratch, serial, wait};
use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LOADGEN: &str = env!("CARGO_BIN_EXE_redpacket-loadgen");

/// An environment variable every process the demo starts inherits, to find them all.
fn tag(name: &str) -> String {
    format!(
        "{name}-{}-{}",
        std::process::id(),
        redpacket_protocol::unix_now()
    )
}

/// Pids of live processes carrying `REDPACKET_TEST_TAG=tag` (zombies excluded).
fn tagged(tag: &str) -> Vec<u32> {
    let want = format!("REDPACKET_TEST_TAG={tag}");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| {
                    !s.rsplit(')')
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with('Z')
                })
                .unwrap_or(false);
            alive && env.split(|b| *b == 0).any(|kv| kv == want.as_bytes())
        })
        .collect()
}

/// Starts `demo --users USERS --results RESULTS EXTRA...` with the open-files limit
/// lowered to `nofile`.
fn start_demo(users: &str, results: &Path, extra: &[&str], nofile: u64, tag: &str) -> Proc {
    let mut cmd = Command::new(LOADGEN);
    cmd.arg("demo")
        .args(["--users", users, "--results"])
        .arg(results)
        .args(extra)
        .env("REDPACKET_TEST_TAG", tag)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let r = libc::rlimit {
                rlim_cur: nofile,
                rlim_max: nofile,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Proc::spawn(&mut cmd)
}

/// Waits for `child` (killing it and every tagged process after `limit`); returns the
/// exit code and its standard output and error.
fn finish(mut child: Proc, limit: Duration, tag: &str) -> (i32, String, String) {
    let Some(done) = child.output_within(limit) else {
        for pid in tagged(tag) {
            // SAFETY: kill(2) on a process this test's demo started (it carries the tag).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        panic!("the demo still ran after {limit:?}");
    };
    print!("{}", done.stdout);
    eprint!("{}", done.stderr);
    (done.code, done.stdout, done.stderr)
}

/// Waits up to 5 s for every tagged process to be gone; fails naming those left.
fn assert_all_gone(tag: &str) {
    let gone = wait::poll(Duration::from_secs(5), Duration::from_millis(100), || {
        tagged(tag).is_empty().then_some(())
    });
    if gone.is_none() {
        let left = tagged(tag);
        for pid in &left {
            // SAFETY: kill(2) on a process this test's demo started (it carries the tag).
            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        }
        panic!("processes outlived the demo: {left:?}");
    }
}

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn past_the_open_files_limit_the_demo_runs_instances_and_reconciles_every_cent() {
    let _g = serial::lock();
    let results = scratch!("instances");
    let tag = tag("instances");
    let extra = ["--run-id", "t", "--time-scale", "0.15", "--scale", "0.1"];
    let child = start_demo("5000", &results, &extra, 2000, &tag);
    let (code, out, err) = finish(child, Duration::from_secs(180), &tag);
    assert_all_gone(&tag);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains("3 server instances"), "{err}");
    let run = results.join("t");
    let meta = json(&run.join("run.json"));
    assert_eq!(meta["server_instances"], 3, "{meta}");
    assert_eq!(meta["loadgen_procs"], 3, "{meta}");
    assert_eq!(meta["commands"].as_array().unwrap().len(), 4, "{meta}");
    let host = run.join(meta["hosts"][0].as_str().unwrap());
    let mut won = 0;
    for i in 1..=3 {
        let s = json(&host.join(format!("instance-{i}/server-summary.json")));
        let log = std::fs::read_to_string(host.join(format!("instance-{i}/server.log")))
            .unwrap_or_default();
        assert!(log.contains("listening on"), "instance {i}'s log: {log}");
        assert_eq!(s["shake_balanced"], true, "instance {i}: {s}");
        assert_eq!(s["send_balanced"], true, "instance {i}: {s}");
        let w = s["stats"]["shake"]["won_cents"]
            .as_u64()
            .unwrap_or_else(|| panic!("no won_cents in instance {i}: {s}"));
        assert!(w > 0, "instance {i} served no winning shake: {s}");
        won += w;
    }
    let summary = json(&host.join("summary.json"));
    let m = &summary["money"];
    assert_eq!(m["reconciled"], true, "{m}");
    assert_eq!(m["client_won_cents"], won, "{m}");
    assert_eq!(m["client_won_cents"], m["server_won_cents"], "{m}");
    assert_eq!(m["client_grabbed_cents"], m["server_grabbed_cents"], "{m}");
    assert_eq!(summary["connections"]["connected"], 5000, "{summary}");
    // The footprint: every server and every load-generator process sampled.
    let lines: Vec<Value> = std::fs::read_to_string(host.join("footprint.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines.iter().any(|l| l["servers"]["processes"] == 3
            && l["loadgens"]["processes"] == 4
            && l["tcp_inuse"].as_u64().unwrap() >= 10_000),
        "no sample with 3 servers, 4 load-generator processes and 10 000 sockets"
    );
    assert!(out.contains("Footprint on"), "{out}");
    assert!(out.contains("bytes per user"), "{out}");
    live_equals_the_report(&run, &err);
}

#[test]
fn a_small_run_laid_out_for_more_users_runs_their_processes_with_its_own_users() {
    let _g = serial::lock();
    let results = scratch!("layout-for");
    let tag = tag("layout-for");
    let extra = [
        "--layout-for",
        "5000",
        "--run-id",
        "t",
        "--time-scale",
        "0.15",
        "--scale",
        "0.02",
    ];
    let child = start_demo("300", &results, &extra, 2000, &tag);
    let (code, out, err) = finish(child, Duration::from_secs(180), &tag);
    assert_all_gone(&tag);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        err.contains("300 users, laid out as for 5000, need 3 server instances"),
        "{err}"
    );
    let run = results.join("t");
    let meta = json(&run.join("run.json"));
    assert_eq!(meta["server_instances"], 3, "{meta}");
    assert_eq!(meta["loadgen_procs"], 3, "{meta}");
    // The layout of 5 000 users runs the many-process plan: 10k, 20k, 30k scaled.
    let phases: Vec<&str> = meta["plan"]
        .as_array()
        .map(|p| p.iter().filter_map(|x| x["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(phases, ["idle", "10k", "20k", "30k"], "{meta}");
    let host = run.join(meta["hosts"][0].as_str().unwrap());
    let summary = json(&host.join("summary.json"));
    assert_eq!(summary["connections"]["connected"], 300, "{summary}");
    assert_eq!(summary["money"]["reconciled"], true, "{summary}");
}

/// The live view: a line a second on stderr for the load generator and the 3 instances,
/// and every second in `live.jsonl` where all reported equal to report.json's.
fn live_equals_the_report(run: &Path, err: &str) {
    assert!(err.contains("hosts 4/4"), "no live line on stderr: {err}");
    let report = json(&run.join("report.json"));
    let seconds: std::collections::BTreeMap<i64, &Value> = report["seconds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["t"].as_i64().unwrap(), s))
        .collect();
    let live: Vec<Value> = std::fs::read_to_string(run.join("live.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut same = 0;
    for l in &live {
        assert_eq!(l["hosts_expected"], 4, "{l}");
        let t = l["t"].as_i64().unwrap();
        if l.get("missing").is_some() || l["sent"] == 0 {
            continue;
        }
        let r = seconds[&t];
        for k in ["sent", "answered", "errors", "timeouts"] {
            assert_eq!(
                l[k].as_f64(),
                r[k].as_f64().or(Some(0.0)),
                "{k} at {t}: {l} vs {r}"
            );
        }
        for k in ["p50_ms", "p99_ms", "p999_ms"] {
            assert_eq!(l[k], r[k], "{k} at {t}: {l} vs {r}");
        }
        let shakes: f64 = l["servers"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_f64().unwrap())
            .sum();
        assert_eq!(Some(shakes), r["server_shake"].as_f64(), "servers at {t}");
        same += 1;
    }
    assert!(
        same >= 5,
        "{same} live seconds equal to the report's of {}",
        live.len()
    );
}

#[test]
fn ctrl_c_stops_every_process_the_demo_started() {
    let _g = serial::lock();
    let results = scratch!("ctrl-c");
    let tag = tag("ctrlc");
    let child = start_demo(
        "5000",
        &results,
        &["--run-id", "t", "--scale", "0.1"],
        2000,
        &tag,
    );
    // Wait until every user is in (the load generator's log says so), then Ctrl-C.
    let log = results.join("t");
    wait::poll(Duration::from_secs(60), Duration::from_millis(100), || {
        let connected = std::fs::read_dir(&log)
            .ok()
            .and_then(|mut d| d.find_map(|e| e.ok().filter(|e| e.path().is_dir())))
            .and_then(|h| std::fs::read_to_string(h.path().join("loadgen.jsonl")).ok())
            .and_then(|t| t.lines().last().map(str::to_string))
            .and_then(|l| serde_json::from_str::<Value>(&l).ok())
            .and_then(|v| v["connections"].as_u64())
            .unwrap_or(0);
        (connected == 5000).then_some(())
    })
    .expect("users did not connect within 60 s");
    assert!(
        tagged(&tag).len() >= 7,
        "3 servers, 3 children and the demo"
    );
    child.signal(libc::SIGINT);
    let (code, out, err) = finish(child, Duration::from_secs(90), &tag);
    assert_all_gone(&tag);
    assert_eq!(code, 1, "an interrupted run fails\n{out}\n{err}");
    assert!(log.join("run.json").is_file(), "the run folder is kept");
}

#[test]
fn a_host_that_cannot_hold_the_users_is_refused_before_anything_starts() {
    let results = scratch!("refused");
    let tag = tag("refused");
    let t0 = Instant::now();
    // Three million users: two files each exceed fs.file-max here, and their memory
    // exceeds what this machine has.
    let child = start_demo("3000000", &results, &[], 20_000, &tag);
    let (code, _, err) = finish(child, Duration::from_secs(30), &tag);
    assert_eq!(code, 2, "{err}");
    assert!(t0.elapsed() < Duration::from_secs(10), "refused at once");
    assert!(err.contains("cannot hold 3000000 users"), "{err}");
    assert!(err.contains("SHORT"), "the figures are shown: {err}");
    assert_eq!(
        std::fs::read_dir(&results).unwrap().count(),
        0,
        "nothing was started or written"
    );
    assert_all_gone(&tag);
}

/// The JSON lines of every file `name` in the folders of `dir` (one level down, or two
/// with `nested`), each keyed by its `t` as a whole second, `field` summed over files.
fn per_second(dir: &Path, name: &str, nested: bool, field: &[&str]) -> BTreeMap<i64, u64> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.join(name).is_file() {
            files.push(p.join(name));
        }
        if nested && p.is_dir() {
            for e in std::fs::read_dir(&p).unwrap().flatten() {
                if e.path().join(name).is_file() {
                    files.push(e.path().join(name));
                }
            }
        }
    }
    assert!(!files.is_empty(), "no {name} under {}", dir.display());
    let mut sums = BTreeMap::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let v: Value = serde_json::from_str(l).unwrap();
            let t = v["t"].as_f64().unwrap();
            if i + 1 < lines.len() {
                // Every line but the last (partial) one ends on a whole second.
                assert_eq!(
                    t,
                    t.round(),
                    "{}: line {} not on a whole second",
                    f.display(),
                    i + 1
                );
            }
            let n = field
                .iter()
                .fold(&v, |v, k| &v[*k])
                .as_u64()
                .unwrap_or_else(|| panic!("{}: no {field:?} in {l}", f.display()));
            *sums.entry(t.ceil() as i64).or_insert(0) += n;
        }
    }
    sums
}

/// The coefficient of variation of `xs`, percent.
fn cv_pct(xs: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    100.0 * var.sqrt() / mean
}

#[test]
fn the_seconds_of_several_processes_add_up_second_by_second() {
    let _g = serial::lock();
    let results = scratch!("seconds");
    let tag = tag("seconds");
    // 5 000 users under 2 000 open files: 3 server instances, 3 load-generator
    // processes. Shakes at 2k, 4k and 8k a second, for 10 s each.
    let extra = ["--run-id", "t", "--time-scale", "0.5", "--scale", "0.4"];
    let child = start_demo("5000", &results, &extra, 2000, &tag);
    let (code, out, err) = finish(child, Duration::from_secs(240), &tag);
    assert_all_gone(&tag);
    assert_eq!(code, 0, "{out}\n{err}");
    let run = results.join("t");
    let meta = json(&run.join("run.json"));
    assert_eq!(meta["server_instances"], 3, "{meta}");
    assert_eq!(meta["loadgen_procs"], 3, "{meta}");
    let host = run.join(meta["hosts"][0].as_str().unwrap());
    let sent = per_second(&run, "loadgen.jsonl", false, &["sent"]);
    let got = per_second(&run, "loadgen.jsonl", false, &["got"]);
    let shakes = per_second(
        &host,
        "server.jsonl",
        true,
        &["per_second", "requests", "shake"],
    );
    let won = per_second(&host, "server.jsonl", true, &["per_second", "shake", "won"]);
    let summary = json(&host.join("summary.json"));
    let mut loaded = 0;
    for p in meta["phases"].as_array().unwrap() {
        let target = p["target_qps"].as_f64().unwrap();
        if target == 0.0 {
            continue;
        }
        loaded += 1;
        let name = p["name"].as_str().unwrap();
        let (start, end) = (p["start"].as_f64().unwrap(), p["end"].as_f64().unwrap());
        // The phase's seconds: those wholly inside it, each keyed by its end.
        let secs: Vec<i64> = ((start.ceil() as i64 + 1)..=(end.floor() as i64)).collect();
        assert!(secs.len() >= 8, "phase {name}: {secs:?}");
        let at = |m: &BTreeMap<i64, u64>, k: &i64| m.get(k).copied().unwrap_or(0) as f64;
        let client: Vec<f64> = secs.iter().map(|k| at(&sent, k)).collect();
        let server: Vec<f64> = secs.iter().map(|k| at(&shakes, k)).collect();
        let mean = client.iter().sum::<f64>() / client.len() as f64;
        let achieved = summary["phases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("phase {name} not in {summary}"))["achieved_qps"]
            .as_f64()
            .unwrap();
        assert!(
            (mean - achieved).abs() <= 0.01 * achieved,
            "phase {name}: client sent {mean:.1}/s a second, achieved {achieved}/s; {client:?}"
        );
        let client_got: f64 = secs.iter().map(|k| at(&got, k)).sum();
        let server_won: f64 = secs.iter().map(|k| at(&won, k)).sum();
        assert!(server_won > 0.0, "phase {name}: nothing won");
        assert!(
            (client_got - server_won).abs() <= (0.01 * server_won).max(5.0),
            "phase {name}: client got {client_got}, servers won {server_won}"
        );
        let (cc, sc) = (cv_pct(&client), cv_pct(&server));
        assert!(
            (cc - sc).abs() <= 3.0,
            "phase {name}: client CV {cc:.2} %, server CV {sc:.2} %; client {client:?}, server {server:?}"
        );
    }
    assert_eq!(loaded, 3, "{meta}");
}
