//! End-to-end tests: the real binary against `floor.c` and the real server, on
//! 127.0.0.1 with ports the kernel picks, every run bounded in time.
//!
//! Tests run one at a time (a lock): they measure rates and latencies, and this machine
//! has two cores.

use redpacket_testkit::process::Proc;
use redpacket_testkit::{prereq, scratch, serial, wait};
use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LOADGEN: &str = env!("CARGO_BIN_EXE_redpacket-loadgen");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The yardstick `floor.c`: `$BENCH_SRC/floor.c`, else the repository's
/// `bench/yardsticks/floor.c` (README: "The yardsticks").
fn floor_source() -> Result<PathBuf, String> {
    let (dir, how) = match std::env::var_os("BENCH_SRC") {
        Some(d) => (PathBuf::from(d), "BENCH_SRC"),
        None => (
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/yardsticks"),
            "the repository's bench/yardsticks; set BENCH_SRC to another folder",
        ),
    };
    let src = dir.join("floor.c");
    if src.is_file() {
        Ok(src)
    } else {
        Err(format!("no {} ({how})", src.display()))
    }
}

/// Builds floor.c with gcc, once per version of its source (the binary is named after
/// a hash of the source, so an edited floor.c is rebuilt), or says why it cannot. `None`
/// only when the skip is allowed ([`prereq`]).
fn floor_bin(test: &str) -> Option<PathBuf> {
    use std::hash::{Hash, Hasher};
    let built = floor_source().and_then(|src| {
        let text =
            std::fs::read(&src).map_err(|e| format!("cannot read {}: {e}", src.display()))?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut h);
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("floor-{:016x}", h.finish()));
        if out.is_file() {
            return Ok(out);
        }
        let tmp = out.with_extension(format!("tmp{}", std::process::id()));
        match Command::new("gcc")
            .args(["-O2", "-o"])
            .arg(&tmp)
            .arg(&src)
            .arg("-lpthread")
            .status()
        {
            Ok(s) if s.success() => std::fs::rename(&tmp, &out)
                .map(|_| out)
                .map_err(|e| format!("cannot move the built floor: {e}")),
            Ok(s) => Err(format!("gcc could not build {} ({s})", src.display())),
            Err(e) => Err(format!("cannot run gcc to build floor.c: {e}")),
        }
    });
    prereq::require(test, built)
}

/// Starts floor on a free port with one thread; returns it and the port.
fn start_floor(bin: &Path, port: u16, stall: Option<&str>) -> Proc {
    let mut c = Command::new(bin);
    c.arg(port.to_string())
        .arg("1")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(s) = stall {
        c.env("FLOOR_STALL", s);
    }
    let p = Proc::spawn(&mut c);
    wait::until("floor to listen", Duration::from_secs(5), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    p
}

/// Runs the load generator; panics if it does not finish within `limit`.
fn loadgen(args: &[&str], limit: Duration) -> (i32, String) {
    let done = Proc::spawn(
        Command::new(LOADGEN)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    )
    .output_within(limit)
    .unwrap_or_else(|| panic!("loadgen hung: still running after {limit:?}"));
    print!("{}", done.stdout);
    (done.code, done.stdout)
}

fn summary(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

// Thousands of users, one phase at a fixed rate: achieved within 2%, all answered,
// one JSON line per second; and a p99 threshold that cannot be met fails the run.
#[test]
fn thousands_of_users_hold_the_target_rate_and_thresholds_gate() {
    let _g = serial::lock();
    let Some(floor) = floor_bin("thousands_of_users_hold_the_target_rate_and_thresholds_gate")
    else {
        return;
    };
    let port = free_port();
    let _floor = start_floor(&floor, port, None);
    let out = scratch!("rate");
    let server = format!("127.0.0.1:{port}");
    // The phase comes from a TOML plan file.
    let plan = out.join("plan.toml");
    let toml = "[[phase]]\nname = \"steady\"\nqps = 2000\nduration_s = 6\nsend_rate = 0\n";
    std::fs::write(&plan, toml).unwrap();
    let (code, table) = loadgen(
        &[
            "run",
            "--users",
            "0..4000",
            "--server",
            &server,
            "--plan",
            plan.to_str().unwrap(),
            "--send-rate",
            "0",
            "--threads",
            "1",
            "--quiet",
            "--max-error-rate",
            "0.001",
            "--out",
            out.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "{table}");
    let s = summary(&out);
    let p = &s["phases"][0];
    let achieved = f(&p["achieved_qps"]);
    assert!(
        (achieved - 2000.0).abs() <= 40.0,
        "achieved {achieved}/s, target 2000/s"
    );
    assert_eq!(p["errors"], 0);
    assert_eq!(p["timeouts"], 0);
    let (sent, answered) = (p["sent"].as_u64().unwrap(), p["answered"].as_u64().unwrap());
    assert!(
        answered + 2 >= sent && answered <= sent,
        "sent {sent} answered {answered}"
    );
    assert_eq!(s["connections"]["connected"], 4000);
    // The host is sampled beside the load generator's own log.
    assert!(out.join("net.jsonl").exists() && out.join("tuning.txt").exists());
    let lines = std::fs::read_to_string(out.join("loadgen.jsonl")).unwrap();
    let steady: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["phase"] == "steady")
        .collect();
    assert!(
        (5..=8).contains(&steady.len()),
        "{} lines in the phase",
        steady.len()
    );
    assert!(table.contains("steady"), "no table on stdout");

    // The same load with an impossible p99 bound must fail.
    let out2 = scratch!("threshold");
    let (code, table) = loadgen(
        &[
            "run",
            "--users",
            "0..500",
            "--server",
            &server,
            "--phase",
            "p:500:2s",
            "--send-rate",
            "0",
            "--threads",
            "1",
            "--quiet",
            "--max-p99-ms",
            "0.001",
            "--out",
            out2.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    assert_eq!(code, 1, "{table}");
    assert!(table.contains("threshold missed"), "{table}");
    assert_eq!(summary(&out2)["verdict"]["passed"], false);
}

// A known stall of the server (floor's FLOOR_STALL) must show in p99 and max: latency
// runs from the scheduled send time, so requests due during the stall are not omitted.
#[test]
fn a_server_stall_shows_in_p99_and_max() {
    let _g = serial::lock();
    let Some(floor) = floor_bin("a_server_stall_shows_in_p99_and_max") else {
        return;
    };
    let port = free_port();
    // floor stops answering 3 s after its start, for 1.5 s; the phase covers it.
    let _floor = start_floor(&floor, port, Some("3:1500"));
    let out = scratch!("stall");
    let (code, table) = loadgen(
        &[
            "run",
            "--users",
            "0..1000",
            "--server",
            &format!("127.0.0.1:{port}"),
            "--phase",
            "s:1000:7s",
            "--send-rate",
            "0",
            "--threads",
            "1",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "{table}");
    let p = &summary(&out)["phases"][0];
    let (p99, max) = (f(&p["latency_ms"]["p99"]), f(&p["latency_ms"]["max"]));
    // ~1.5 s of 7 s is stalled: over 20% of requests wait, the first ~1.5 s.
    assert!(max >= 1300.0, "max {max} ms does not show a 1500 ms stall");
    assert!(p99 >= 1000.0, "p99 {p99} ms does not show a 1500 ms stall");
    assert_eq!(p["timeouts"], 0);
}

/// The real `redpacket-server` of this build (built beside the tests' binaries if needed).
fn server_program() -> PathBuf {
    static BIN: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    match BIN.get_or_init(|| redpacket_loadgen::siblings::server(None)) {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// Starts the real server (`redpacket-server`) listening on `port`; returns it once
/// bound.
fn start_server(port: u16, dir: &Path) -> Proc {
    start_server_with_control(port, dir).0
}

/// As [`start_server`], also returning the control address.
fn start_server_with_control(port: u16, dir: &Path) -> (Proc, String) {
    let ready = dir.join(format!(
        "ready-{port}-{}.json",
        Instant::now().elapsed().as_nanos()
    ));
    let _ = std::fs::remove_file(&ready);
    let mut p = Proc::spawn(
        Command::new(server_program())
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--control",
                "127.0.0.1:0",
            ])
            .args(["--stats-out", "off", "--ready-file"])
            .arg(&ready)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let v = p.ready_json(&ready, Duration::from_secs(20));
    let control = v["control"].as_str().unwrap().to_string();
    (p, control)
}

// The real server dies mid-run (SIGKILL): the load generator counts the lost
// connections and requests, reconnects when asked once a server is back on the same
// port, and finishes on time either way.
#[test]
fn a_killed_server_is_reported_and_reconnected_when_asked() {
    let _g = serial::lock();
    let port = free_port();
    let server = format!("127.0.0.1:{port}");
    for reconnect in [true, false] {
        let out = scratch!(if reconnect { "kill-reconnect" } else { "kill" });
        let mut first = start_server(port, &out);
        let out_s = out.to_str().unwrap().to_string();
        let server_c = server.clone();
        let runner = std::thread::spawn(move || {
            let mut args = vec![
                "run",
                "--users",
                "0..1000",
                "--server",
                &server_c,
                "--phase",
                "k:1000:9s",
                "--send-rate",
                "0",
                "--threads",
                "1",
                "--quiet",
                "--timeout",
                "1s",
                "--max-error-rate",
                "0.01",
                "--out",
                &out_s,
            ];
            if reconnect {
                args.push("--reconnect");
            }
            loadgen(&args, Duration::from_secs(60))
        });
        std::thread::sleep(Duration::from_millis(3000));
        let _ = first.kill();
        let _ = first.wait();
        std::thread::sleep(Duration::from_millis(1000));
        let _second = start_server(port, &out);
        let (code, table) = runner.join().unwrap();
        assert_eq!(
            code, 1,
            "a lost server must miss --max-error-rate 0.01: {table}"
        );
        let s = summary(&out);
        let c = &s["connections"];
        assert_eq!(c["disconnects"], 1000, "{c}");
        let e = &s["phases"][0]["error_kinds"];
        assert!(e["not_connected"].as_u64().unwrap() > 0, "{e}");
        if reconnect {
            assert!(
                c["connects"].as_u64().unwrap() >= 1900,
                "did not reconnect: {c}"
            );
            assert_eq!(c["connected"], 1000, "{c}");
        } else {
            assert_eq!(c["connects"], 1000, "{c}");
            assert_eq!(c["connected"], 0, "{c}");
        }
    }
}

// Against the real server (started by the demo): campaigns, grabs and sends run, and
// the money clients saw equals the server's /stats to the cent. The layout of
// results/<run-id>/ is the one the report reads.
#[test]
fn demo_against_the_real_server_reconciles_money_exactly() {
    let _g = serial::lock();
    let results = scratch!("demo");
    let (code, table) = loadgen(
        &[
            "demo",
            "--users",
            "2000",
            "--results",
            results.to_str().unwrap(),
            "--run-id",
            "t-demo",
            "--time-scale",
            "0.15",
            "--scale",
            "0.5",
        ],
        Duration::from_secs(90),
    );
    assert_eq!(code, 0, "{table}");
    let run = results.join("t-demo");
    // The demo ends with the report made and says where it is and how to re-make it.
    for f in ["report.html", "report.md", "charts/qps.svg"] {
        assert!(run.join(f).is_file(), "the demo did not write {f}");
    }
    let html = run.join("report.html").display().to_string();
    assert!(table.contains(&format!("report: {html}")), "{table}");
    assert!(table.contains("--bin redpacket-report -- "), "{table}");
    let run_json: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    let names: Vec<&str> = run_json["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["connect", "idle", "warm", "2k", "4k"]);
    assert_eq!(run_json["schema"], 1);
    let host = run_json["hosts"][0].as_str().unwrap().to_string();
    for f in [
        "loadgen.jsonl",
        "summary.json",
        "server.jsonl",
        "server-summary.json",
        "net.jsonl",
        "tuning.txt",
    ] {
        assert!(run.join(&host).join(f).exists(), "{f} missing");
    }
    let s = summary(&run.join(&host));
    let m = &s["money"];
    assert_eq!(m["reconciled"], true, "{m}");
    assert!(m["client_won_cents"].as_u64().unwrap() > 0, "{m}");
    assert!(m["client_grabbed_cents"].as_u64().unwrap() > 0, "{m}");
    assert_eq!(m["client_won_cents"], m["server_won_cents"]);
    assert_eq!(m["client_grabbed_cents"], m["server_grabbed_cents"]);
    let bad: u64 = s["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["error_kinds"]["bad_answer"].as_u64().unwrap())
        .sum();
    assert_eq!(bad, 0, "answers failed their checks");
    for p in s["phases"].as_array().unwrap() {
        let (target, achieved) = (f(&p["target_qps"]), f(&p["achieved_qps"]));
        assert!(
            (achieved - target).abs() <= 0.02 * target,
            "phase {}: {achieved}/s for {target}/s",
            p["name"]
        );
        assert_eq!(p["errors"], 0, "{p}");
        assert_eq!(p["timeouts"], 0, "{p}");
    }
}

// --procs 2 against the real server: two child processes, one merged output, and the
// money of both children reconciled exactly with the server.
#[test]
fn procs_split_users_and_merge_figures() {
    let _g = serial::lock();
    let run_dir = scratch!("procs");
    // The host folder of a run folder: the live view writes live.jsonl above it.
    let out = run_dir.join("h1");
    let port = free_port();
    let (_server, control) = start_server_with_control(port, &run_dir);
    let (code, table) = loadgen(
        &[
            "run",
            "--users",
            "0..2000",
            "--server",
            &format!("127.0.0.1:{port}"),
            "--server-control",
            &control,
            "--procs",
            "2",
            "--phase",
            "m:1000:4s:campaigns",
            "--threads",
            "1",
            "--out",
            out.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "{table}");
    let s = summary(&out);
    // The live view showed the merged seconds: live.jsonl holds every record's shakes.
    let sum = |path: &std::path::Path| -> u64 {
        std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["sent"]
                    .as_u64()
                    .unwrap()
            })
            .sum()
    };
    let live = sum(&run_dir.join("live.jsonl"));
    assert!(live > 0);
    assert_eq!(live, sum(&out.join("loadgen.jsonl")));
    let p = &s["phases"][0];
    let achieved = f(&p["achieved_qps"]);
    assert!((achieved - 1000.0).abs() <= 20.0, "achieved {achieved}/s");
    assert_eq!(p["answered"], p["sent"], "{p}");
    assert!(f(&p["latency_ms"]["max"]) > 0.0);
    assert_eq!(s["connections"]["connects"], 2000);
    assert_eq!(s["money"]["reconciled"], true, "{}", s["money"]);
    assert!(s["money"]["client_grabbed_cents"].as_u64().unwrap() > 0);
}

// Two server instances given their ranges (as the fleet's plan gives them), 0..600 and
// 600..1800, and a client driving users 300..1200 over two processes: a third of them
// log in to the first instance and two thirds to the second, as each one's /stats says.
#[test]
fn ranged_servers_get_the_users_of_their_ranges() {
    let _g = serial::lock();
    let out = scratch!("ranged");
    let (a, b) = (free_port(), free_port());
    let (_sa, control_a) = start_server_with_control(a, &out);
    let (_sb, control_b) = start_server_with_control(b, &out);
    let servers = format!("127.0.0.1:{a}=0..600,127.0.0.1:{b}=600..1800");
    let (code, table) = loadgen(
        &[
            "run",
            "--users",
            "300..1200",
            "--server",
            &servers,
            "--procs",
            "2",
            "--phase",
            "r:300:2s",
            "--send-rate",
            "0",
            "--threads",
            "1",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "{table}");
    assert_eq!(summary(&out)["connections"]["connects"], 900);
    for (control, logins) in [(&control_a, 300), (&control_b, 600)] {
        let stats = redpacket_loadgen::run::fetch_stats(control.parse().unwrap()).unwrap();
        assert_eq!(stats.connections.logins, logins, "{control}");
    }
}

// The rate changes live over HTTP (/qps?qps=X) and the per-second lines follow; users
// connect from a list of source addresses.
#[test]
fn the_rate_changes_live_and_source_addresses_are_used() {
    let _g = serial::lock();
    let Some(floor) = floor_bin("the_rate_changes_live_and_source_addresses_are_used") else {
        return;
    };
    let port = free_port();
    let _floor = start_floor(&floor, port, None);
    let control = free_port();
    let out = scratch!("live");
    let out_s = out.to_str().unwrap().to_string();
    let server = format!("127.0.0.1:{port}");
    let ctl = format!("127.0.0.1:{control}");
    let runner = std::thread::spawn(move || {
        loadgen(
            &[
                "run",
                "--users",
                "0..1000",
                "--server",
                &server,
                "--source-addrs",
                "127.0.0.2-127.0.0.3",
                "--phase",
                "live:400:7s",
                "--send-rate",
                "0",
                "--threads",
                "1",
                "--quiet",
                "--control",
                &ctl,
                "--out",
                &out_s,
            ],
            Duration::from_secs(60),
        )
    });
    // Wait for the phase, then raise the rate.
    // Each try waits first, as the phase starts after the ramp.
    wait::poll(Duration::from_secs(20), Duration::ZERO, || {
        std::thread::sleep(Duration::from_millis(200));
        let mut s = std::net::TcpStream::connect(("127.0.0.1", control)).ok()?;
        use std::io::{Read, Write};
        let _ = write!(s, "GET /qps?qps=1200 HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer.starts_with("HTTP/1.1 200").then_some(())
    })
    .expect("no load phase within 20 s");
    let (code, table) = runner.join().unwrap();
    assert_eq!(code, 0, "{table}");
    let lines: Vec<Value> = std::fs::read_to_string(out.join("loadgen.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v["phase"] == "live")
        .collect();
    let fast: Vec<&Value> = lines
        .iter()
        .filter(|v| f(&v["target_qps"]) == 1200.0)
        .collect();
    assert!(
        fast.len() >= 3,
        "the new rate shows in too few lines: {}",
        fast.len()
    );
    let full = &fast[fast.len() - 2];
    let sent = f(&full["sent"]);
    assert!(
        (sent - 1200.0).abs() <= 60.0,
        "sent {sent} in a second at 1200/s"
    );
    assert_eq!(summary(&out)["connections"]["connected"], 1000);
    let by = &lines[lines.len() - 1]["connections_by_addr"];
    assert_eq!(
        (by["127.0.0.2"].as_u64(), by["127.0.0.3"].as_u64()),
        (Some(500), Some(500)),
        "{by}"
    );
}

/// The value of the sample `series` (name and labels, as written) in a `/metrics` page.
fn metric(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{page}"))
        .parse()
        .unwrap_or_else(|e| panic!("{series}: {e}"))
}

// GET /metrics on --control, scraped every 100 ms while a run goes, with threads and
// with --procs 2 (the parent's figures hold its children's): counters never go back,
// the phase shows, and the last scrape is at most a second's worth (the record's step)
// behind summary.json, for shakes sent and for the latency histogram's count of
// answered shakes.
#[test]
fn metrics_follow_the_run_and_agree_with_the_summary() {
    let _g = serial::lock();
    let Some(floor) = floor_bin("metrics_follow_the_run_and_agree_with_the_summary") else {
        return;
    };
    for procs in ["1", "2"] {
        metrics_of_a_run(&floor, procs);
    }
}

fn metrics_of_a_run(floor: &Path, procs: &str) {
    let port = free_port();
    let _floor = start_floor(floor, port, None);
    let control: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let out = scratch!("metrics").join(format!("procs-{procs}"));
    let out_s = out.to_str().unwrap().to_string();
    let server = format!("127.0.0.1:{port}");
    let ctl = control.to_string();
    let procs_s = procs.to_string();
    const RATE: f64 = 500.0;
    let runner = std::thread::spawn(move || {
        loadgen(
            &[
                "run",
                "--users",
                "0..500",
                "--server",
                &server,
                "--phase",
                "m:500:3s",
                "--send-rate",
                "0",
                "--threads",
                "1",
                "--procs",
                &procs_s,
                "--quiet",
                "--control",
                &ctl,
                "--out",
                &out_s,
            ],
            Duration::from_secs(60),
        )
    });
    let sent = "redpacket_loadgen_requests_total{kind=\"shake\"}";
    let count = "redpacket_loadgen_shake_latency_seconds_count";
    let mut pages: Vec<String> = Vec::new();
    while !runner.is_finished() {
        if let Ok((200, page)) =
            redpacket_loadgen::http::get(control, "/metrics", Duration::from_secs(1))
        {
            pages.push(page);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, table) = runner.join().unwrap();
    assert_eq!(code, 0, "--procs {procs}: {table}");
    assert!(pages.len() >= 10, "only {} scrapes", pages.len());
    for w in pages.windows(2) {
        for series in [sent, count, "redpacket_loadgen_scheduled_total"] {
            assert!(
                metric(&w[0], series) <= metric(&w[1], series),
                "{series} went back"
            );
        }
    }
    assert!(
        pages.iter().any(
            |p| p.contains("redpacket_loadgen_phase_info{phase=\"m\"} 1\n")
                && metric(p, "redpacket_loadgen_target_qps") == RATE
        ),
        "no scrape during the phase"
    );
    let last = pages.last().unwrap();
    let s = summary(&out);
    let phases = s["phases"].as_array().unwrap();
    let total = |k: &str| phases.iter().map(|p| f(&p[k])).sum::<f64>();
    let (sent_total, answered) = (total("sent"), total("answered"));
    assert!(sent_total > 2.0 * RATE, "sent {sent_total}");
    let second = RATE * 1.2;
    let scraped = metric(last, sent);
    assert!(
        scraped <= sent_total && sent_total - scraped <= second,
        "--procs {procs}: scraped {scraped} shakes sent, summary.json {sent_total}"
    );
    let counted = metric(last, count);
    assert!(
        counted <= answered && answered - counted <= second,
        "--procs {procs}: histogram count {counted}, answered {answered}"
    );
    let inf = metric(
        last,
        "redpacket_loadgen_shake_latency_seconds_bucket{le=\"+Inf\"}",
    );
    assert_eq!(inf, counted);
}

/// A wrong server: logs users in, then answers every shake for another user, or with
/// money on a "none left" answer.
fn start_lying_server() -> u16 {
    use redpacket_protocol::{decode, result, Frame};
    use std::io::{Read, Write};
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { break };
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 256];
                let mut n_shakes = 0u32;
                while let Ok(n) = s.read(&mut chunk) {
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Ok(Some(d)) = decode(&buf) {
                        buf.drain(..d.len);
                        let answer = match d.frame {
                            Frame::LoginRequest { user } => {
                                Frame::LoginResponse { user, result: 0 }
                            }
                            Frame::ShakeRequest { user } => {
                                n_shakes += 1;
                                if n_shakes.is_multiple_of(2) {
                                    Frame::ShakeResponse {
                                        user: user + 1,
                                        result: result::NONE,
                                        packet: 0,
                                        amount: 0,
                                    }
                                } else {
                                    Frame::ShakeResponse {
                                        user,
                                        result: result::NONE,
                                        packet: 0,
                                        amount: 50,
                                    }
                                }
                            }
                            _ => continue,
                        };
                        if s.write_all(answer.encode(0).as_bytes()).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    port
}

// Every answer is checked: wrong user ids and money on a "none" answer are counted as
// bad answers (not as served requests) and fail the error-rate threshold.
#[test]
fn wrong_answers_are_caught() {
    let _g = serial::lock();
    let port = start_lying_server();
    let out = scratch!("lies");
    let (code, table) = loadgen(
        &[
            "run",
            "--users",
            "0..20",
            "--server",
            &format!("127.0.0.1:{port}"),
            "--phase",
            "l:100:2s",
            "--send-rate",
            "0",
            "--threads",
            "1",
            "--quiet",
            "--max-error-rate",
            "0.5",
            "--out",
            out.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    assert_eq!(code, 1, "{table}");
    let p = &summary(&out)["phases"][0];
    let sent = p["sent"].as_u64().unwrap();
    assert!(sent >= 190, "{p}");
    assert_eq!(p["error_kinds"]["bad_answer"], p["sent"], "{p}");
    assert_eq!(p["answered"], 0, "{p}");
}

// No server at all: the ramp gives up at its deadline with one line saying why.
#[test]
fn no_server_fails_with_the_reason() {
    let _g = serial::lock();
    let port = free_port();
    let out = scratch!("none");
    let started = Instant::now();
    let mut c = Command::new(LOADGEN)
        .args([
            "run",
            "--users",
            "0..50",
            "--server",
            &format!("127.0.0.1:{port}"),
            "--connect-deadline",
            "2s",
        ])
        .args([
            "--phase",
            "a:10:1s",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut err = String::new();
    use std::io::Read;
    c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let st = c.wait().unwrap();
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(
        err.contains("no user could log in") && err.contains("refused"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

// --start-at: two child processes connect at once, then the load starts at the given
// instant and not before; the phases' recorded times are that instant plus the
// durations before them, as a fleet's run.json computes them.
#[test]
fn start_at_begins_the_load_at_the_instant() {
    let _g = serial::lock();
    let out = scratch!("start-at");
    let port = free_port();
    let (_server, control) = start_server_with_control(port, &out);
    let at = (unix_now() + 3.0).floor() + 0.5;
    let (code, table) = loadgen(
        &[
            "run",
            "--users",
            "0..1000",
            "--server",
            &format!("127.0.0.1:{port}"),
            "--server-control",
            &control,
            "--procs",
            "2",
            "--threads",
            "1",
            "--start-at",
            &format!("{at}"),
            "--phase",
            "a:500:2s",
            "--phase",
            "b:1000:2s",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "{table}");
    let s = summary(&out);
    assert_eq!(f(&s["start_at"]), at);
    assert_eq!(s["users_not_connected_at_start"], 0, "{s}");
    let phases = s["phases"].as_array().unwrap();
    let mut due = at;
    for p in phases {
        let (start, end) = (f(&p["start"]), f(&p["end"]));
        println!(
            "phase {}: starts {:+.4} s, ends {:+.4} s from the instant plus the durations",
            p["name"],
            start - due,
            end - due - 2.0
        );
        assert!((0.0..0.1).contains(&(start - due)), "{p}");
        due += 2.0;
        assert!((0.0..0.1).contains(&(end - due)), "{p}");
    }
    // Nothing was due before the instant; everything due after it is in the phases.
    let lines = jsonl(&out.join("loadgen.jsonl"));
    let before: u64 = lines
        .iter()
        .filter(|l| f(&l["t"]) <= at)
        .map(|l| l["scheduled"].as_u64().unwrap() + l["sent"].as_u64().unwrap())
        .sum();
    assert_eq!(before, 0, "requests before the start instant");
    assert!(lines.iter().filter(|l| f(&l["t"]) <= at).count() >= 2);
    let after: u64 = lines.iter().map(|l| l["scheduled"].as_u64().unwrap()).sum();
    let in_phases: u64 = phases
        .iter()
        .map(|p| p["scheduled"].as_u64().unwrap())
        .sum();
    assert_eq!(after, in_phases);
    assert!((in_phases as f64 - 3000.0).abs() <= 30.0, "{in_phases}");
    // The children's whole-phase histograms, merged by the parent, are in the folder.
    let h: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("histograms.json")).unwrap())
            .unwrap();
    for (hp, p) in h["phases"].as_array().unwrap().iter().zip(phases) {
        assert_eq!(hp["name"], p["name"]);
        assert_eq!(hp["count"], p["results"]["total"], "{hp} {p}");
        assert!(hp["hdr"].as_str().unwrap().starts_with("HISTF"));
    }
}

// A ramp longer than the wait: the load starts at the instant anyway and the summary
// says how many users were not in yet. An instant already past, or days away, is a
// usage error.
#[test]
fn start_at_does_not_wait_for_a_slow_ramp_and_refuses_bad_instants() {
    let _g = serial::lock();
    let out = scratch!("start-at-ramp");
    let port = free_port();
    let _server = start_server(port, &out);
    let at = unix_now() + 1.5;
    let (code, table) = loadgen(
        &[
            "run",
            "--users",
            "0..3000",
            "--server",
            &format!("127.0.0.1:{port}"),
            "--connect-rate",
            "1000",
            "--threads",
            "1",
            "--start-at",
            &format!("{at:.3}"),
            "--phase",
            "a:500:3s",
            "--no-money-check",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "{table}");
    assert!(
        table.contains("not yet connected when load began"),
        "{table}"
    );
    let s = summary(&out);
    let late = s["users_not_connected_at_start"].as_u64().unwrap();
    assert!((500..=2500).contains(&late), "{late} users late of 3000");
    let p = &s["phases"][0];
    assert!((f(&p["start"]) - at).abs() < 0.1, "{p}");
    // The rest kept connecting during the phase.
    assert_eq!(s["connections"]["connected"], 3000);
    for bad in [
        format!("{:.0}", unix_now() - 10.0),
        format!("{:.0}", unix_now() + 3.0 * 86_400.0),
    ] {
        let o = Command::new(LOADGEN)
            .args(["run", "--server", "127.0.0.1:9", "--start-at", &bad])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "--start-at {bad}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("--start-at") && err.lines().count() == 1,
            "{err}"
        );
    }
}

/// Runs the load generator to completion with `args`; (exit code, stdout, stderr).
fn output(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(LOADGEN).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_exit_codes_json_and_the_port_arithmetic() {
    for args in [
        &["check"][..],
        &["check", "--users", "0"],
        &["check", "--users", "10", "--procs", "0"],
        &["check", "--users", "10", "--servers", "0"],
        &["check", "--users", "10", "--source-addrs", "nonsense"],
    ] {
        let (code, out, err) = output(args);
        assert_eq!(code, Some(2), "{args:?}: {out}{err}");
        assert!(!err.trim().is_empty(), "{args:?} says why");
    }
    // 100 000 users over one server exceed the ports of two addresses on any host
    // (a port range holds at most 65 535).
    let (code, out, err) = output(&[
        "check",
        "--users",
        "100000",
        "--procs",
        "8",
        "--source-addrs",
        "127.0.0.2-127.0.0.3",
        "--json",
    ]);
    assert_eq!(code, Some(1), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["role"], "loadgen");
    assert_eq!(v["ok"], false);
    let ports = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "ephemeral_ports")
        .unwrap();
    assert_eq!(ports["ok"], false, "{ports}");
    assert!(
        ports["value"]
            .as_str()
            .unwrap()
            .contains("x 2 source x 1 server"),
        "{ports}"
    );
    assert_eq!(ports["kind"], "limit", "{ports}");
    assert!(
        v["first_to_raise"]
            .as_str()
            .unwrap()
            .starts_with("ephemeral_ports: "),
        "{v}"
    );
    let range = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "net.ipv4.ip_local_port_range")
        .unwrap();
    assert_eq!(
        range["kind"], "advice",
        "the count is the ports item's: {range}"
    );
    let (code, out, _) = output(&["check", "--users", "100000", "--procs", "8"]);
    assert_eq!(code, Some(1));
    assert!(out.contains("--source-addrs with"), "{out}");
    // Ten users fit any test host: exit 0 whatever the advice; --strict fails exactly
    // when there is some.
    let (code, out, err) = output(&["check", "--users", "10", "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (&v["ok"], &v["strict"]),
        (&Value::Bool(true), &Value::Bool(false))
    );
    let advice = v["advice"].as_array().unwrap().len();
    let (code, out, _) = output(&["check", "--users", "10", "--json", "--strict"]);
    let s: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["strict"], true);
    assert_eq!(s["can_hold"], v["can_hold"]);
    assert_eq!(code, Some(if advice > 0 { 1 } else { 0 }), "{out}");
}

#[test]
fn run_refuses_what_this_host_cannot_hold_before_connecting() {
    // Four thousand million users: open files, ports and memory all fall short, so the
    // run stops with exit 2 and one line naming a flag that helps.
    let (code, out, err) = output(&[
        "run",
        "--users",
        "0..4000000000",
        "--server",
        "127.0.0.1:1",
        "--quiet",
        "--out",
        scratch!("refuse").join("out").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(err.contains("cannot hold 4000000000 users"), "{err}");
    assert!(
        err.contains("--procs") || err.contains("--source-addrs"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
