//! The live view of a run equals the report's per-second figures for the same seconds:
//! every committed run's records are fed to the view in time order (as they would have
//! arrived) and each second it gives out is compared with `report.json`'s `seconds`.

use redpacket_live::{Fleet, Role};
use std::fs;
use std::path::{Path, PathBuf};

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results/examples");
    let mut runs: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("run.json").is_file())
        .collect();
    runs.sort();
    assert!(runs.len() >= 2, "committed runs in {}", dir.display());
    runs
}

/// A copy of the run's records (no report files) to report on.
fn copy_records(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if p.is_dir() && name != "charts" {
            copy_records(&p, &to.join(&name));
        } else if p.is_file() && !name.starts_with("report.") {
            fs::copy(&p, to.join(&name)).unwrap();
        }
    }
}

/// (host name for the view, role, file) of every per-second file in the run: a host's
/// `loadgen.jsonl` as the host, each server file as `<host>/<instance>` (one unit per
/// process, as the demo shows them) or `<host>`.
fn streams(run: &Path) -> Vec<(String, Role, PathBuf)> {
    let mut out = Vec::new();
    for e in fs::read_dir(run).unwrap() {
        let h = e.unwrap().path();
        if !h.is_dir() || h.ends_with("charts") {
            continue;
        }
        let host = h.file_name().unwrap().to_str().unwrap().to_string();
        if h.join("loadgen.jsonl").is_file() {
            out.push((host.clone(), Role::Loadgen, h.join("loadgen.jsonl")));
        }
        if h.join("server.jsonl").is_file() {
            out.push((
                format!("{host}/server"),
                Role::Server,
                h.join("server.jsonl"),
            ));
        }
        for i in fs::read_dir(&h).unwrap() {
            let i = i.unwrap().path();
            if i.join("server.jsonl").is_file() {
                let unit = format!("{host}/{}", i.file_name().unwrap().to_str().unwrap());
                out.push((unit, Role::Server, i.join("server.jsonl")));
            }
        }
    }
    out
}

#[test]
fn every_second_of_the_live_view_equals_the_reports() {
    for run in examples() {
        let tmp = redpacket_testkit::scratch!(run.file_name().unwrap().to_str().unwrap());
        copy_records(&run, &tmp);
        let out = redpacket_report::report(&tmp).unwrap();
        let report: serde_json::Value = serde_json::from_str(&out.json_text).unwrap();
        let seconds: std::collections::BTreeMap<i64, &serde_json::Value> = report["seconds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["t"].as_i64().unwrap(), s))
            .collect();

        // Every record, in the order of its stamp, as it would have arrived.
        let streams = streams(&tmp);
        let mut records = Vec::new();
        for (unit, _, path) in &streams {
            for line in fs::read_to_string(path).unwrap().lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let t = v["t"].as_f64().unwrap();
                records.push((t, unit.clone(), line.to_string()));
            }
        }
        records.sort_by(|a, b| a.0.total_cmp(&b.0));
        let last_loadgen = records
            .iter()
            .filter(|r| streams.iter().any(|s| s.0 == r.1 && s.1 == Role::Loadgen))
            .map(|r| r.0)
            .fold(0.0, f64::max);
        let mut fleet = Fleet::new(
            streams
                .iter()
                .map(|(u, r, _)| (u.as_str(), *r, vec!["f".into()])),
            records[0].0,
        );
        fleet.end_at(last_loadgen);
        let mut lines = Vec::new();
        for (t, unit, line) in &records {
            fleet.feed(unit, "f", line, t + 0.2);
            lines.extend(fleet.ready(t + 0.2));
        }
        lines.extend(fleet.ready(f64::MAX));
        assert_eq!(fleet.late, 0, "{}", run.display());
        assert!(
            lines.len() > 10,
            "{}: {} seconds",
            run.display(),
            lines.len()
        );

        let mut compared = 0;
        for l in &lines {
            let Some(s) = seconds.get(&l.t) else {
                assert_eq!(l.sent, 0, "{}: second {} only live", run.display(), l.t);
                continue;
            };
            // A second no load generator wrote a record of has no client figures in the
            // report; the live line has zeros and names the missing hosts.
            let f = |k: &str| s[k].as_f64();
            let at = format!("{} second {}", run.display(), l.t);
            assert_eq!(f("sent").unwrap_or(0.0), l.sent as f64, "sent, {at}");
            assert_eq!(
                f("answered").unwrap_or(0.0),
                l.answered as f64,
                "answered, {at}"
            );
            assert_eq!(f("errors").unwrap_or(0.0), l.errors as f64, "errors, {at}");
            assert_eq!(
                f("timeouts").unwrap_or(0.0),
                l.timeouts as f64,
                "timeouts, {at}"
            );
            assert_eq!(f("users").unwrap_or(0.0), l.users as f64, "users, {at}");
            assert_eq!(f("p50_ms"), l.p50_ms, "p50, {at}");
            assert_eq!(f("p99_ms"), l.p99_ms, "p99, {at}");
            assert_eq!(f("p999_ms"), l.p999_ms, "p99.9, {at}");
            let shake: u64 = l.servers.values().sum();
            assert_eq!(
                f("server_shake").unwrap_or(0.0),
                shake as f64,
                "servers, {at}"
            );
            compared += 1;
        }
        assert!(
            compared > 10,
            "{}: {compared} seconds compared",
            run.display()
        );
        fs::remove_dir_all(&tmp).unwrap();
    }
}
