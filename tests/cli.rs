//! The `redpacket-server` binary as a user meets it: flags, exit codes, signals, files.

use redpacket_testkit::process::Proc;
use redpacket_testkit::{scratch, wait};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_redpacket-server");

#[test]
fn help_is_usable_and_exits_0() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--control",
        "--cores",
        "--max-qps",
        "--set-size",
        "--login-timeout",
        "--shake-amount",
        "--stats-out",
        "--host-dir",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}");
    }
}

/// Runs `redpacket-server ARGS`; returns (exit code, stdout, stderr).
fn server(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_says_what_the_program_is_and_lists_every_subcommand() {
    for args in [&["--help"][..], &["-h"], &["help"]] {
        let (code, out, err) = server(args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        let first = out.lines().next().unwrap_or("");
        assert!(
            first.starts_with("redpacket-server: ") && first.contains("red-packet server"),
            "{args:?} opens with {first:?}"
        );
        let commands = out
            .split("Commands:")
            .nth(1)
            .unwrap_or_else(|| panic!("{args:?}: no Commands section: {out}"));
        for sub in ["check", "help"] {
            assert!(
                commands.lines().any(|l| l.trim_start().starts_with(sub)),
                "{args:?} does not list {sub}: {out}"
            );
        }
    }
    let (code, out, err) = server(&["help", "check"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("--connections"), "{out}");
    assert!(out.starts_with("Can this host hold"), "{out}");
}

#[test]
fn bad_usage_exits_2() {
    for args in [
        &["bogus"][..],
        &["--bogus"],
        &["--listen"],
        &["--listen", "127.0.0.1:0", "check", "--connections", "5"],
        &["help", "bogus"],
        &["check", "--connections", "0"],
    ] {
        let (code, out, err) = server(args);
        assert_eq!(code, Some(2), "{args:?}: {out}{err}");
        assert!(!err.trim().is_empty(), "{args:?}: says why");
        assert!(out.is_empty(), "{args:?}: nothing on stdout: {out}");
    }
}

#[test]
fn impossible_flags_exit_2_with_one_line() {
    for args in [
        &["--cores", "99999"][..],
        &["--set-size", "0"],
        &["--max-qps", "lots"],
        &["--shake-amount", "300..10"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.trim().is_empty(), "{args:?}: says why");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn a_taken_port_exits_3() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(BIN)
        .args([
            "--listen",
            &addr,
            "--control",
            "127.0.0.1:0",
            "--stats-out",
            "off",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&addr), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[test]
fn sigterm_drains_and_writes_the_host_folder() {
    let dir = scratch!("term");
    let ready = dir.join("ready.json");
    let host = dir.join("host");
    let mut child = Proc::spawn(
        Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"])
            .arg("--ready-file")
            .arg(&ready)
            .arg("--host-dir")
            .arg(&host)
            .stderr(Stdio::null()),
    );
    let info = child.ready_json(&ready, Duration::from_secs(10));
    let listen: std::net::SocketAddr = info["listen"].as_str().unwrap().parse().unwrap();
    // One user logs in and shakes, so there is something to account for.
    {
        use redpacket_protocol::Frame;
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(listen).unwrap();
        s.write_all(Frame::LoginRequest { user: 1 }.encode(0).as_bytes())
            .unwrap();
        s.write_all(Frame::ShakeRequest { user: 1 }.encode(0).as_bytes())
            .unwrap();
        let mut b = [0u8; 48];
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.read_exact(&mut b).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1500));
    child.signal(libc::SIGTERM);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(host.join("server-summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["shake_balanced"], true);
    assert_eq!(summary["send_balanced"], true);
    assert_eq!(summary["stats"]["requests"]["shake"], 1);
    let lines = std::fs::read_to_string(host.join("server.jsonl")).unwrap();
    let last: redpacket_formats::server::SecondLine =
        serde_json::from_str(lines.lines().last().unwrap()).unwrap();
    assert_eq!(last.total.requests.shake, 1);
    assert!(host.join("tuning.txt").exists());
    assert!(host.join("net.jsonl").exists());
}

/// Starts the server with `--host-dir host` and `extra`; returns it and its listen address.
fn start_in(
    host: &std::path::Path,
    ready: &std::path::Path,
    extra: &[&str],
) -> (Proc, std::net::SocketAddr) {
    let mut child = Proc::spawn(
        Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"])
            .arg("--ready-file")
            .arg(ready)
            .arg("--host-dir")
            .arg(host)
            .args(extra)
            .stderr(Stdio::null()),
    );
    let info = child.ready_json(ready, Duration::from_secs(10));
    (child, info["listen"].as_str().unwrap().parse().unwrap())
}

/// Two instances on one host: each writes its own folder, only the first samples the
/// host, and the report reads the folder as one host with two instances.
#[test]
fn instances_share_a_host_folder() {
    use redpacket_protocol::Frame;
    use std::io::{Read, Write};
    let dir = scratch!("instances");
    let host = dir.join("server1");
    let mut servers = Vec::new();
    for i in 1..=2u32 {
        let ready = dir.join(format!("ready-{i}.json"));
        let (child, listen) = start_in(&host, &ready, &["--instance", &i.to_string()]);
        // User i logs in and shakes i times on instance i.
        let mut s = std::net::TcpStream::connect(listen).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.write_all(Frame::LoginRequest { user: i }.encode(0).as_bytes())
            .unwrap();
        for _ in 0..i {
            s.write_all(Frame::ShakeRequest { user: i }.encode(0).as_bytes())
                .unwrap();
        }
        let mut b = vec![0u8; 24 + 24 * i as usize];
        s.read_exact(&mut b).unwrap();
        servers.push(child);
    }
    std::thread::sleep(Duration::from_millis(1500));
    for mut server in servers {
        server.signal(libc::SIGTERM);
        assert_eq!(server.wait().unwrap().code(), Some(0));
    }
    for i in 1..=2u64 {
        let d = host.join(format!("instance-{i}"));
        let summary: redpacket_formats::ServerSummary =
            serde_json::from_str(&std::fs::read_to_string(d.join("server-summary.json")).unwrap())
                .unwrap();
        assert_eq!(summary.stats.requests.shake, i, "instance {i}");
        assert!(d.join("server.jsonl").exists());
        assert!(!d.join("net.jsonl").exists() && !d.join("tuning.txt").exists());
    }
    assert!(host.join("net.jsonl").exists() && host.join("tuning.txt").exists());
    assert!(!host.join("server.jsonl").exists());
    let run = redpacket_report::load(&dir).unwrap();
    assert_eq!(run.hosts.len(), 1);
    let h = &run.hosts[0];
    let instances: Vec<Option<u32>> = h.servers.iter().map(|s| s.instance).collect();
    assert_eq!(instances, [Some(1), Some(2)]);
    // Nothing of the host is missing; only the run's plan, which no program wrote here.
    assert_eq!(
        run.problems,
        ["run.json is missing: no phases, one phase spans the whole run"]
    );
    let m = redpacket_report::money::reconcile(&run).unwrap();
    assert_eq!((m.accounts, m.servers_balanced), (2, true), "{m:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The start-up log line about capacity, with `--max-conns N`: (level, message).
fn capacity_line(max_conns: &str) -> (String, String) {
    let dir = scratch!(&format!("cap-{max_conns}"));
    let (ready, log) = (dir.join("ready.json"), dir.join("stderr.log"));
    let mut child = Proc::spawn(
        Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"])
            .args(["--max-conns", max_conns, "--ready-file"])
            .arg(&ready)
            .env("RUST_LOG", "info")
            .stderr(std::fs::File::create(&log).unwrap()),
    );
    child.ready_json(&ready, Duration::from_secs(10));
    child.signal(libc::SIGTERM);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let line = text
        .lines()
        .find(|l| l.contains("capacity: "))
        .unwrap_or_else(|| panic!("no capacity line: {text}"));
    let (head, msg) = line.split_at(line.find("capacity: ").unwrap());
    let level = ["INFO", "WARN"]
        .into_iter()
        .find(|l| head.contains(l))
        .unwrap_or_else(|| panic!("no level: {line}"));
    (level.to_string(), msg.to_string())
}

#[test]
fn the_start_up_line_judges_max_conns_and_warns_only_when_short() {
    // Ten connections fit any host that runs the tests, advice or not.
    let (level, msg) = capacity_line("10");
    assert_eq!(level, "INFO", "{msg}");
    assert!(msg.contains(" of --max-conns 10 ("), "{msg}");
    assert!(msg.len() < 160, "{} characters: {msg}", msg.len());
    let held: u64 = msg["capacity: can hold ".len()..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{msg}"));
    assert!(held >= 10, "{msg}");
    // Ten thousand million need ~60 TB: a warning that names the limit and the command.
    let (level, msg) = capacity_line("10000000000");
    assert_eq!(level, "WARN", "{msg}");
    assert!(msg.contains(" of --max-conns 10000000000 ("), "{msg}");
    assert!(
        msg.ends_with(": redpacket-server check --connections 10000000000"),
        "{msg}"
    );
    assert!(msg.len() < 160, "{} characters: {msg}", msg.len());
}

/// Runs `redpacket-server check ARGS`; returns (exit code, stdout, stderr).
fn check(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN).arg("check").args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_refuses_bad_flags_with_2() {
    for args in [
        &[][..],
        &["--connections", "0"],
        &["--connections", "many"],
        &["--connections", "10", "--instances", "0"],
        &["--connections", "10", "--cores", "x"],
        &["--connections", "10", "--cores", "99999"],
        &["--connections", "10", "--listen", "127.0.0.1:0"],
    ] {
        let (code, out, err) = check(args);
        assert_eq!(code, Some(2), "{args:?}: {out}{err}");
        assert!(!err.trim().is_empty(), "{args:?}: says why");
        assert!(out.is_empty(), "{args:?}: nothing on stdout");
    }
    let (code, out, _) = check(&["--help"]);
    assert_eq!(code, Some(0));
    for flag in [
        "--connections",
        "--instances",
        "--cores",
        "--json",
        "--strict",
    ] {
        assert!(out.contains(flag), "check --help lacks {flag}");
    }
}

#[test]
fn check_json_is_one_object_and_its_verdict_is_the_exit_code() {
    // Ten thousand million connections need ~60 TB: short on any host there is.
    let (code, out, err) = check(&["--connections", "10000000000", "--json"]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(out.trim().lines().count(), 1, "one line: {out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["schema"], 1);
    assert_eq!(v["role"], "server");
    assert_eq!(v["asked"], 10_000_000_000u64);
    assert_eq!(v["ok"], false);
    assert_eq!(v["strict"], false);
    assert!(v["can_hold"].as_u64().unwrap() < 10_000_000_000);
    let items = v["items"].as_array().unwrap();
    let get = |name: &str| items.iter().find(|i| i["name"] == name).unwrap();
    // What to raise first is a limit, one that allows fewer than asked.
    let first = v["first_to_raise"].as_str().unwrap();
    let named = items
        .iter()
        .find(|i| first.starts_with(&format!("{}: ", i["name"].as_str().unwrap())))
        .unwrap_or_else(|| panic!("first_to_raise names no item: {first}"));
    assert_eq!(named["kind"], "limit", "{named}");
    assert_eq!(named["ok"], false, "{named}");
    let mem = get("memory");
    assert_eq!(mem["ok"], false, "the short value is reported short: {mem}");
    assert_eq!(mem["judged"], true);
    assert_eq!(mem["kind"], "limit");
    assert_eq!(get("rlimit.nofile.hard")["scope"], "process");
    assert_eq!(get("rlimit.nofile.hard")["kind"], "limit");
    assert_eq!(get("net.core.somaxconn")["kind"], "advice");
    assert_eq!(get("fs.file-max")["kind"], "limit");
    // Every key of sysctl/server.conf is there.
    for key in ["net.core.somaxconn", "fs.file-max"] {
        let i = get(key);
        assert!(i["limits"].as_str().is_some_and(|s| !s.is_empty()), "{i}");
    }
    for i in items {
        for field in [
            "name", "value", "wanted", "ok", "judged", "scope", "limits", "kind",
        ] {
            assert!(!i[field].is_null(), "{i} lacks {field}");
        }
    }
    // The advice lines are the advice items that are short, one string each.
    let advice: Vec<&str> = v["advice"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let short_advice: Vec<&serde_json::Value> = items
        .iter()
        .filter(|i| i["kind"] == "advice" && i["ok"] == false)
        .collect();
    assert_eq!(advice.len(), short_advice.len(), "{out}");
    for (line, i) in advice.iter().zip(short_advice) {
        let head = format!(
            "{} is {}, wanted ",
            i["name"].as_str().unwrap(),
            i["value"].as_str().unwrap()
        );
        assert!(line.starts_with(&head), "{line}");
        assert!(!line.contains('\n'));
    }
}

#[test]
fn check_advice_fails_only_with_strict() {
    // A thousand connections: the limits of any test host allow them.
    let (code, out, err) = check(&["--connections", "1000", "--json"]);
    let v: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    assert!(v["can_hold"].as_u64().unwrap() >= 1000, "{out}");
    assert_eq!(
        (code, &v["ok"]),
        (Some(0), &serde_json::json!(true)),
        "{out}"
    );
    assert_eq!(v["first_to_raise"], "");
    let advice = v["advice"].as_array().unwrap().len();
    let (code, out, _) = check(&["--connections", "1000", "--json", "--strict"]);
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["strict"], true);
    assert_eq!(s["can_hold"], v["can_hold"], "--strict changes no figure");
    assert_eq!(s["advice"], v["advice"]);
    assert_eq!(s["first_to_raise"], "");
    // Fails exactly when there is advice (this host's tuning decides which case runs).
    let want = if advice > 0 { 1 } else { 0 };
    assert_eq!(code, Some(want), "{out}");
    assert_eq!(s["ok"], advice == 0);
}

#[test]
fn check_prints_the_verdict_then_limits_then_advice() {
    let (code, out, _) = check(&["--connections", "10000000000", "--instances", "2"]);
    assert_eq!(code, Some(1));
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("SHORT: this host can hold "),
        "the verdict first: {out}"
    );
    assert!(lines[0].contains("(asked 10000000000)"), "{out}");
    assert!(lines[0].contains("raise first: "), "{out}");
    let at = |title: &str| lines.iter().position(|l| l.starts_with(title));
    let limits = at("limits (").expect(&out);
    let advice = at("advice (").expect(&out);
    assert!(limits < advice, "{out}");
    let memory = lines
        .iter()
        .position(|l| l.starts_with("SHORT") && l.contains("memory"))
        .expect(&out);
    assert!(limits < memory && memory < advice, "{out}");
    let somaxconn = lines
        .iter()
        .position(|l| l.contains(" net.core.somaxconn "))
        .expect(&out);
    assert!(advice < somaxconn, "{out}");
    let titles = ["limits (", "advice (", "shown, not judged:"];
    assert!(lines[1..].iter().all(|l| ["ok ", "SHORT", "info", "  "]
        .iter()
        .chain(&titles)
        .any(|s| l.starts_with(s))));
}

/// Waits until the last line of `path` (a `server.jsonl`) counts `shakes` shake
/// requests; returns the file's text then.
fn wait_shakes(path: &std::path::Path, shakes: u64) -> String {
    let what = format!("a line with {shakes} shakes in {}", path.display());
    wait::poll(Duration::from_secs(10), Duration::from_millis(50), || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let last = text
            .lines()
            .last()
            .and_then(|l| serde_json::from_str::<redpacket_formats::ServerLine>(l).ok());
        last.is_some_and(|l| l.total.requests.shake == shakes)
            .then_some(text)
    })
    .unwrap_or_else(|| panic!("waited 10 s for {what}"))
}

/// An instance killed with SIGKILL and started again with the same flags (as systemd
/// does): the second life appends to the first life's `server.jsonl`, records both
/// starts in `starts.jsonl`, says in its account that one life was lost, and the report
/// names the instance as not reconcilable while the other instance still balances.
#[test]
fn a_restart_after_sigkill_keeps_the_first_life_and_counts_it_lost() {
    use redpacket_formats::{Previous, ServerLine, ServerSummary, StartLine};
    use redpacket_protocol::Frame;
    use std::io::{Read, Write};
    let dir = scratch!("restart");
    let host = dir.join("server1");
    let shake = |listen: std::net::SocketAddr, user: u32, n: usize| {
        let mut s = std::net::TcpStream::connect(listen).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.write_all(Frame::LoginRequest { user }.encode(0).as_bytes())
            .unwrap();
        for _ in 0..n {
            s.write_all(Frame::ShakeRequest { user }.encode(0).as_bytes())
                .unwrap();
        }
        let mut b = vec![0u8; 24 + 24 * n];
        s.read_exact(&mut b).unwrap();
    };
    let stats = host.join("instance-1/server.jsonl");
    // Instance 2 runs through and stops cleanly.
    let (mut other, listen2) = start_in(&host, &dir.join("ready-2.json"), &["--instance", "2"]);
    shake(listen2, 2, 1);
    // Instance 1's first life: two shakes, two lines, then SIGKILL.
    let ready = dir.join("ready-1.json");
    let (mut first, listen) = start_in(&host, &ready, &["--instance", "1"]);
    let first_pid = first.id();
    shake(listen, 1, 2);
    let before = wait_shakes(&stats, 2);
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(!host.join("instance-1/server-summary.json").exists());
    // The second life, same flags: one shake, a line, then a clean stop.
    std::fs::remove_file(&ready).unwrap();
    let (mut second, listen) = start_in(&host, &ready, &["--instance", "1"]);
    shake(listen, 1, 1);
    wait_shakes(&stats, 1);
    for server in [&mut second, &mut other] {
        server.signal(libc::SIGTERM);
        assert_eq!(server.wait().unwrap().code(), Some(0));
    }

    let after = std::fs::read_to_string(&stats).unwrap();
    assert!(
        after.starts_with(&before),
        "the first life's lines are kept"
    );
    let lines: Vec<ServerLine> = after
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last_of_first: ServerLine = serde_json::from_str(before.lines().last().unwrap()).unwrap();
    assert_eq!(last_of_first.total.requests.shake, 2);
    assert_eq!(lines.last().unwrap().total.requests.shake, 1);
    let starts: Vec<StartLine> = std::fs::read_to_string(host.join("instance-1/starts.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(starts.len(), 2);
    assert_eq!((starts[0].life, starts[0].previous), (1, Previous::None));
    assert_eq!(starts[0].pid, first_pid);
    assert_eq!((starts[1].life, starts[1].previous), (2, Previous::Lost));
    assert_ne!(starts[1].pid, first_pid);
    let summary: ServerSummary = serde_json::from_str(
        &std::fs::read_to_string(host.join("instance-1/server-summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!((summary.life, summary.lives_lost), (2, 1));
    assert_eq!(summary.lost_lives[0].life, 1);
    assert!(summary.lost_lives[0].last_seen >= last_of_first.t);
    assert!(summary.lost_lives[0].restarted > summary.lost_lives[0].last_seen);
    assert_eq!(summary.stats.requests.shake, 1, "the second life's own");
    assert!(summary.shake_balanced && summary.send_balanced);
    // Instance 2 started once and lost nothing.
    let other: ServerSummary = serde_json::from_str(
        &std::fs::read_to_string(host.join("instance-2/server-summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!((other.life, other.lives_lost), (1, 0));

    let run = redpacket_report::load(&dir).unwrap();
    let m = redpacket_report::money::reconcile(&run).unwrap();
    assert!(m.servers_balanced, "{m:?}");
    assert_eq!(m.unreconciled_names, ["server1 instance 1"]);
    assert!(
        m.unreconciled[0].contains("(1 time(s)): the ledger of the earlier life is lost"),
        "{m:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
