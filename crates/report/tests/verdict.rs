//! The verdict against thresholds (each source and their order), report.json against
//! the page's table, exact per-second percentiles from merged histograms, and a run
//! without run.json.

#[path = "fixtures/run.rs"]
mod fixture;

use std::fs;
use std::path::Path;

use redpacket_formats::histograms::{self, new_latency_histogram};
use redpacket_formats::{Latency, LoadgenLine};
use serde_json::Value;

use fixture::{edit_json, report_bin as bin, temp_dir, write_run};

/// Runs the report binary with `args` on `dir`; returns (terminal text, report.json).
fn report(dir: &Path, args: &[&str]) -> (String, Value) {
    let o = bin().args(args).arg(dir).output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let json: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    (String::from_utf8(o.stdout).unwrap(), json)
}

fn phase<'a>(j: &'a Value, name: &str) -> &'a Value {
    j["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no phase {name} in {j}"))
}

/// Defaults, then run.json's run-wide limits, a phase's own, and flags, each over the
/// one before; a phase over its p99 is named first, with its figure and the limit.
#[test]
fn thresholds_from_each_source_in_order_and_the_failures_named_first() {
    let dir = temp_dir("sources");
    write_run(&dir, "fixture-sources", 1.0);

    // Defaults: the peak phase sheds, so its errors and timeouts fail it.
    let (t, j) = report(&dir, &[]);
    let first = t.lines().next().unwrap();
    assert_eq!(
        first,
        "Verdict: FAILED: peak: 120 errors + 60 timeouts = 180 of 5,400,000 due (0.0033%) > 0%",
        "{t}"
    );
    assert!(
        t.contains("highest rate held under the thresholds: 60,000 shakes/s (phase 60k)"),
        "{t}"
    );
    assert!(
        t.contains(
            "thresholds: p99 <= 50 ms (default), p99.9 not judged (default), achieved rate at \
             most 1 % under target (default), errors + timeouts at most 0 of the shakes due \
             (default)"
        ),
        "{t}"
    );
    assert_eq!(j["verdict"]["passed"], false);
    let f = &j["verdict"]["failures"][0];
    assert_eq!(
        (&f["phase"], &f["threshold"], &f["limit"]),
        (
            &Value::from("peak"),
            &Value::from("max_error_rate"),
            &Value::from(0.0)
        )
    );
    assert!((f["value"].as_f64().unwrap() - 180.0 / 5_400_000.0).abs() < 1e-12);
    assert_eq!(phase(&j, "connect")["passed"], Value::Null);
    assert_eq!(phase(&j, "60k")["passed"], true);

    // run.json allows a few errors (0.1 %): every phase passes, the source says run.json.
    fixture::passed(&dir.join("client1"));
    let (t, j) = report(&dir, &[]);
    assert_eq!(t.lines().next().unwrap(), "Verdict: PASSED", "{t}");
    assert!(t.contains("(phase peak)"), "{t}");
    assert_eq!(
        j["thresholds"]["max_error_rate"],
        serde_json::json!({"value": 0.001, "source": "run_json"})
    );

    // A phase's own p99 over the run's: 60k fails it, named with its figure and limit.
    edit_json(&dir.join("run.json"), |v| {
        v["thresholds"]["max_p99_ms"] = serde_json::json!(20.0);
        v["phases"][2]["thresholds"] = serde_json::json!({"max_p99_ms": 1.5});
    });
    let (t, j) = report(&dir, &[]);
    assert_eq!(
        t.lines().next().unwrap(),
        "Verdict: FAILED: 60k: p99 1.60 ms > 1.50 ms",
        "{t}"
    );
    assert!(
        t.contains("thresholds of phase 60k: p99 <= 1.5 ms (phase)"),
        "{t}"
    );
    assert!(t.contains("thresholds: p99 <= 20 ms (run.json)"), "{t}");
    let p = phase(&j, "60k");
    assert_eq!(p["passed"], false);
    assert_eq!(p["thresholds"]["max_p99_ms"]["source"], "phase");
    assert_eq!(p["failures"][0]["value"], 1.6);
    assert_eq!(phase(&j, "peak")["thresholds"]["max_p99_ms"]["value"], 20.0);

    // Flags over everything: the phase's 1.5 ms gives way to --max-p99-ms 2, and a
    // p99.9 limit judges p99.9 too.
    let (t, j) = report(&dir, &["--max-p99-ms", "2", "--max-p999-ms", "3"]);
    assert_eq!(
        t.lines().next().unwrap(),
        "Verdict: FAILED: 30k: p99.9 3.20 ms > 3.00 ms; 60k: p99.9 3.20 ms > 3.00 ms; peak: \
         p99.9 3.20 ms > 3.00 ms",
        "{t}"
    );
    assert!(
        t.contains("no phase held its target under the thresholds"),
        "{t}"
    );
    assert_eq!(
        phase(&j, "60k")["thresholds"]["max_p99_ms"],
        serde_json::json!({"value": 2.0, "source": "flag"})
    );
    // A rate tolerance no phase meets: each named with how far short it fell.
    let (t, _) = report(
        &dir,
        &["--rate-tolerance-pct", "0", "--max-error-rate", "1"],
    );
    let first = t.lines().next().unwrap();
    assert!(
        first.contains("60k: achieved 59,994 shakes/s < 60,000 (60,000 less 0%), 0.01% short"),
        "{t}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

/// The phase table's cells of `label` in report.md, by phase column.
fn md_row(md: &str, label: &str) -> Vec<String> {
    let line = md
        .lines()
        .find(|l| l.starts_with(&format!("| {label} |")))
        .unwrap_or_else(|| panic!("no row {label:?} in report.md"));
    line.trim_matches('|')
        .split('|')
        .skip(1)
        .map(|c| c.trim().to_string())
        .collect()
}

/// A cell's text against a number: equal once rounded as the cell shows it.
fn same(cell: &str, v: &Value, what: &str) {
    if cell == "-" {
        assert!(v.is_null(), "{what}: page -, json {v}");
        return;
    }
    let shown: f64 = cell.replace(',', "").parse().unwrap();
    let decimals = cell.split('.').nth(1).map_or(0, str::len) as i32;
    let v = v
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: json {v}, page {cell}"));
    assert!(
        (v - shown).abs() <= 0.5 * 10f64.powi(-decimals) + 1e-9,
        "{what}: json {v}, page {cell}"
    );
}

/// report.json carries the page's figures: every phase, every documented field, the
/// same numbers the table in report.md shows.
#[test]
fn report_json_has_the_figures_of_the_page() {
    let dir = temp_dir("json");
    write_run(&dir, "fixture-json", 1.0);
    let out = redpacket_report::report(&dir).unwrap();
    let md = fs::read_to_string(&out.markdown).unwrap();
    let j: Value = serde_json::from_str(&out.json_text).unwrap();
    assert_eq!(
        j,
        serde_json::from_str::<Value>(&fs::read_to_string(&out.json).unwrap()).unwrap()
    );
    assert_eq!(j["schema"], 1);
    assert_eq!(j["run_id"], "fixture-json");
    assert_eq!(j["users_connected"], 10_000);
    let names: Vec<&str> = j["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["connect", "30k", "60k", "peak"]);
    for (label, path) in [
        ("seconds", "/seconds"),
        ("target QPS", "/target_qps"),
        ("client sent QPS (mean)", "/client/sent_qps"),
        ("client answered QPS (mean)", "/client/answered_qps"),
        ("client QPS CV % (inner seconds)", "/client/qps_cv_pct"),
        ("p50", "/client/p50_ms"),
        ("p99", "/client/p99_ms"),
        ("p99.9", "/client/p999_ms"),
        ("max", "/client/max_ms"),
        ("errors", "/client/errors"),
        ("timeouts", "/client/timeouts"),
        ("client got (vs won)", "/client/got"),
        ("server shake QPS (mean)", "/server/shake_qps"),
        ("server served QPS (mean)", "/server/served_qps"),
        ("shake won", "/server/won"),
        ("shake overloaded", "/server/overloaded"),
        (
            "users logged in (load generators, loadgen.jsonl)",
            "/users_connected",
        ),
    ] {
        let cells = md_row(&md, label);
        for (i, p) in j["phases"].as_array().unwrap().iter().enumerate() {
            same(
                &cells[i],
                &p.pointer(path).unwrap().clone(),
                &format!("{label} of {}", names[i]),
            );
        }
    }
    // The achieved rate judged is the summary's where there is one, as the page shows.
    let achieved = md_row(&md, "client achieved QPS (summary)");
    for (i, p) in j["phases"].as_array().unwrap().iter().enumerate() {
        same(&achieved[i], &p["client"]["achieved_qps"], "achieved");
        assert_eq!(p["money_balanced"], true, "{}", names[i]);
        // The fixture has no footprint.jsonl: its processes' CPU was not measured.
        assert_eq!(
            p["cpu_cores"],
            serde_json::json!({"server": null, "loadgen": null})
        );
        assert_eq!(
            p["cpu_us_per_request"],
            serde_json::json!({"server": null, "loadgen": null})
        );
    }
    // The verdict is the page's first line.
    assert!(md.contains("**Verdict: FAILED: peak: 120 errors"), "{md}");
    assert_eq!(j["verdict"]["outcome"], "failed");
    assert_eq!(j["verdict"]["failures"].as_array().unwrap().len(), 1);
    assert_eq!(j["verdict"]["highest_rate_held"]["phase"], "60k");

    // `--json` prints the same file.
    let o = bin().arg("--json").arg(&dir).output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    let printed: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(printed, j);
    fs::remove_dir_all(&dir).unwrap();
}

/// Two load generators whose lines carry each second's histogram: the report's
/// per-second p50/p99/p99.9/max are those of one histogram of every sample of the
/// second (not the worst process's); a second where a line has no histogram (an older
/// writer) keeps the worst line's figure.
#[test]
fn per_second_percentiles_are_merged_exactly() {
    let dir = temp_dir("per-second");
    write_run(&dir, "fixture-per-second", 1.0);
    let c1 = dir.join("client1");
    let c2 = dir.join("client2");
    fs::create_dir_all(&c2).unwrap();
    edit_json(&dir.join("run.json"), |v| {
        v["hosts"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"name": "client2", "role": "loadgen"}));
    });
    let read = |p: &Path| -> Vec<LoadgenLine> {
        fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let lines = read(&c1.join("loadgen.jsonl"));
    let mut x = 5u64;
    let mut rnd = move |n: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % n
    };
    // Per second: each process's histogram and the one of both together.
    let (mut one, mut two) = (Vec::new(), Vec::new());
    let mut want = std::collections::BTreeMap::new();
    // The second whose client2 line has no histogram, and the worst line's p99 there.
    let plain = 100;
    let mut plain_p99 = 0.0;
    for (i, l) in lines.iter().enumerate() {
        let (mut a, mut b, mut all) = (
            new_latency_histogram(),
            new_latency_histogram(),
            new_latency_histogram(),
        );
        for _ in 0..2_000 {
            let v = 300 + rnd(700);
            a.record(v).unwrap();
            all.record(v).unwrap();
        }
        for k in 0..300 {
            // client2: slower, with a tail of 20-80 ms in 1 % of its answers.
            let v = if k % 100 == 0 {
                20_000 + rnd(60_000)
            } else {
                1_000 + rnd(4_000)
            };
            b.record(v).unwrap();
            all.record(v).unwrap();
        }
        let mut l1 = l.clone();
        l1.latency_ms = Latency::of(&a);
        l1.latency_hist = histograms::encode(&a).unwrap();
        let mut l2 = l.clone();
        l2.latency_ms = Latency::of(&b);
        if i == plain {
            plain_p99 = l1.latency_ms.p99.unwrap().max(l2.latency_ms.p99.unwrap());
        } else {
            l2.latency_hist = histograms::encode(&b).unwrap();
            want.insert(l.t.round() as i64, Latency::of(&all));
        }
        one.push(l1);
        two.push(l2);
    }
    let write = |p: &Path, v: &[LoadgenLine]| {
        let text: String = v
            .iter()
            .map(|l| serde_json::to_string(l).unwrap() + "\n")
            .collect();
        fs::write(p, text).unwrap();
    };
    write(&c1.join("loadgen.jsonl"), &one);
    write(&c2.join("loadgen.jsonl"), &two);
    for f in ["net.jsonl", "summary.json", "tuning.txt"] {
        fs::copy(c1.join(f), c2.join(f)).unwrap();
    }
    // client1's summary holds the clients' money; client2 saw none of its own.
    edit_json(&c2.join("summary.json"), |v| {
        v["money"] = serde_json::json!({})
    });

    let run = redpacket_report::load(&dir).unwrap();
    assert!(run.problems.is_empty(), "{:?}", run.problems);
    let a = redpacket_report::analyze::analyze(&run);
    assert_eq!(a.series.latency_merged, lines.len() - 1);
    assert_eq!(a.series.latency_undecodable, 0);
    let series = |k: &str| a.series.get(&format!("client.lat.{k}")).unwrap();
    for (sec, w) in &want {
        for (k, v) in [
            ("p50", w.p50),
            ("p99", w.p99),
            ("p999", w.p999),
            ("max", w.max),
        ] {
            assert_eq!(series(k).get(sec).copied(), v, "{k} of second {sec}");
        }
    }
    // The merged p99 sits between the two processes' own: not the worst process's.
    let (sec, w) = want.iter().nth(50).unwrap();
    let worst = two[50]
        .latency_ms
        .p99
        .unwrap()
        .max(one[50].latency_ms.p99.unwrap());
    assert!(w.p99.unwrap() < worst, "{w:?} vs {worst}");
    assert_eq!(series("p99")[sec], w.p99.unwrap());
    // The second without client2's histogram: the worst line's value, as before.
    let k = lines[plain].t.round() as i64;
    assert_eq!(series("p99")[&k], plain_p99);

    // A histogram that is not one (hostile or broken) fails the verdict, and its second
    // keeps the worst line's figure.
    two[10].latency_hist = "AAAA".into();
    write(&c2.join("loadgen.jsonl"), &two);
    let run = redpacket_report::load(&dir).unwrap();
    let a = redpacket_report::analyze::analyze(&run);
    assert_eq!(a.series.latency_undecodable, 1);
    let t = redpacket_report::render::terminal(&run, &a);
    assert!(
        t.lines()
            .next()
            .unwrap()
            .contains("1 per-second latency histogram(s) of loadgen.jsonl cannot be decoded"),
        "{t}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

/// A load generator's own folder, as `redpacket-loadgen run` leaves it (no run.json, no
/// server): the phases keep their names, each loaded phase is judged, and the verdict
/// claims nothing the data does not hold.
#[test]
fn a_plain_loadgen_run_keeps_its_phases_and_claims_only_what_was_measured() {
    let dir = temp_dir("plain");
    write_run(&dir, "fixture-plain", 1.0);
    fs::remove_file(dir.join("run.json")).unwrap();
    fs::remove_dir_all(dir.join("server1")).unwrap();
    let host = dir.join("client1");
    let (t, j) = report(&dir, &[]);
    let names: Vec<&str> = j["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["connect", "30k", "60k", "peak"], "{t}");
    assert!(!t.contains("no phase ran without an error"), "{t}");
    assert!(t.contains("Hosts in phase 30k"), "{t}");
    assert!(
        t.lines()
            .next()
            .unwrap()
            .starts_with("Verdict: FAILED: peak: 120 errors"),
        "{t}"
    );
    assert!(
        t.contains("highest rate held under the thresholds: 60,000 shakes/s (phase 60k)"),
        "{t}"
    );
    // With errors allowed, it passes on what was measured: the load generator's side.
    let (t, j) = report(&dir, &["--max-error-rate", "0.001"]);
    assert!(t.starts_with("Verdict: PASSED\n"), "{t}");
    assert_eq!(j["verdict"]["passed"], true);
    // The limits the load generator was given (its summary.json) are judged here: a
    // p99 of 1 ms fails every loaded phase; a flag still wins over them.
    edit_json(&host.join("summary.json"), |v| {
        v["verdict"]["max_p99_ms"] = serde_json::json!(1.0);
        v["verdict"]["max_error_rate"] = serde_json::json!(0.001);
    });
    let (t, j) = report(&dir, &[]);
    assert!(
        t.starts_with(
            "Verdict: FAILED: 30k: p99 1.60 ms > 1.00 ms; 60k: p99 1.60 ms > 1.00 ms; peak"
        ),
        "{t}"
    );
    assert!(t.contains("thresholds: p99 <= 1 ms (summary.json)"), "{t}");
    assert_eq!(j["thresholds"]["max_error_rate"]["source"], "loadgen");
    let (t, _) = report(&dir, &["--max-p99-ms", "2"]);
    assert!(t.starts_with("Verdict: PASSED\n"), "{t}");
    // Without a summary either, the phases come from the lines.
    fs::remove_file(host.join("summary.json")).unwrap();
    let (t, j) = report(&dir, &[]);
    let names: Vec<&str> = j["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["connect", "30k", "60k", "peak"], "{t}");
    assert_eq!(phase(&j, "60k")["target_qps"], 60_000.0);
    fs::remove_dir_all(&dir).unwrap();
}

/// Rows equal to another in every phase are shown once and rows of zeros folded away,
/// both named under the table; with shedding (the fixture's peak at full scale) they
/// are all shown.
#[test]
fn the_phase_table_shows_equal_rows_once_and_folds_zeros() {
    let dir = temp_dir("short");
    // Without the phases next to the one over the server's cap (peak), nothing is shed
    // and no line at a phase's edge borders a second that was.
    write_run(&dir, "fixture-short", 1.0);
    edit_json(&dir.join("run.json"), |v| {
        v["phases"].as_array_mut().unwrap().truncate(2);
    });
    let out = redpacket_report::report(&dir).unwrap();
    let md = fs::read_to_string(&out.markdown).unwrap();
    for gone in [
        "\n| client served QPS (mean) |",
        "\n| server served QPS (mean) |",
        "\n| packets won |",
        "\n| errors |",
        "\n| timeouts |",
        "\n| shake overloaded |",
        "\n| TCP retransmits |",
    ] {
        assert!(!md.contains(gone), "{gone} in {md}");
    }
    for kept in [
        "\n| client answered QPS (mean) |",
        "\n| server shake QPS (mean) |",
        "\n| shake won |",
    ] {
        assert!(md.contains(kept), "{kept} missing in {md}");
    }
    assert!(
        out.text.contains(
            "[Shown once, equal in every phase: client served QPS (mean) = client answered \
             QPS (mean); server served QPS (mean) = server shake QPS (mean); packets won = \
             shake won]"
        ),
        "{}",
        out.text
    );
    assert!(
        out.text.contains(
            "[Zero in every phase, not shown: errors, timeouts, shake overloaded, TCP \
             retransmits"
        ),
        "{}",
        out.text
    );
    // report.json keeps every figure, zeros included.
    let j: Value = serde_json::from_str(&out.json_text).unwrap();
    assert_eq!(phase(&j, "30k")["client"]["errors"], 0.0);
    assert_eq!(phase(&j, "30k")["server"]["overloaded"], 0.0);
    assert_eq!(j["verdict"]["passed"], true);

    // Shedding at full scale: every row is there.
    write_run(&dir, "fixture-short", 1.0);
    let out = redpacket_report::report(&dir).unwrap();
    let md = fs::read_to_string(&out.markdown).unwrap();
    for row in [
        "\n| client served QPS (mean) |",
        "\n| server served QPS (mean) |",
        "\n| errors |",
        "\n| shake overloaded |",
    ] {
        assert!(md.contains(row), "{row} missing in {md}");
    }
    assert!(out.text.contains("packets won = shake won"), "{}", out.text);
    fs::remove_dir_all(&dir).unwrap();
}
