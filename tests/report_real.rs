//! The report over a real run of the server: a short run of `redpacket-server` with a
//! scripted client (`fixtures/real.rs`), then the report library on its folder.

use std::fs;

#[path = "fixtures/real.rs"]
mod real;

use redpacket_testkit::scratch;

/// A run folder made by a real short run of the server; the report's numbers agree
/// with the server's own final account.
#[test]
fn real_short_run_of_the_server() {
    let dir = scratch!("real");
    real::real_run(&dir);
    let out = redpacket_report::report(&dir).unwrap();
    let t = &out.text;
    // The sampler is not inside the server yet: exactly that is reported missing.
    let run = redpacket_report::load(&dir).unwrap();
    assert_eq!(run.problems, ["host server1: net.jsonl is missing"], "{t}");
    assert!(
        t.contains("server1 final ledger: shake packets balanced"),
        "{t}"
    );
    let account: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("server1/server-summary.json")).unwrap())
            .unwrap();
    let lines: Vec<redpacket_formats::LoadgenLine> =
        fs::read_to_string(dir.join("client1/loadgen.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let sent: u64 = lines.iter().map(|l| l.sent).sum();
    let got: u64 = lines.iter().map(|l| l.got).sum();
    assert_eq!(account["stats"]["requests"]["shake"].as_u64(), Some(sent));
    assert_eq!(account["stats"]["shake"]["won"].as_u64(), Some(got));
    // Phase figures come from the server's per-second lines and the client's.
    let a = redpacket_report::analyze::analyze(&run);
    let load = a.phases.iter().find(|p| p.name == "load").unwrap();
    // Timing on a busy machine moves seconds between phases, so the exact checks are
    // over the whole run: every served shake of the server's lines is in the series.
    let total = |name: &str| a.series.get(name).map_or(0.0, |m| m.values().sum::<f64>());
    let won_none = account["stats"]["shake"]["won"].as_u64().unwrap()
        + account["stats"]["shake"]["none"].as_u64().unwrap();
    assert_eq!(total("server.served"), won_none as f64);
    assert_eq!(total("client.sent"), sent as f64);
    assert!(load.server_qps.unwrap().mean > 0.0 && load.client_qps.unwrap().mean > 0.0);
    assert!(a.capacity.is_some());
    for c in &out.charts {
        assert!(fs::metadata(c).unwrap().len() > 1000, "{}", c.display());
    }
    println!("{t}");
    if let Some(keep) = std::env::var_os("REPORT_KEEP_REAL") {
        let _ = fs::remove_dir_all(&keep);
        fs::rename(&dir, keep).unwrap();
    } else {
        fs::remove_dir_all(&dir).unwrap();
    }
}
