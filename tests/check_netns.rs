//! `redpacket-server check` in a network namespace this test makes: a per-namespace key
//! set low there is reported short, as advice (failing only `--strict`), then, with the
//! namespace keys of sysctl/server.conf applied, fine. Only per-namespace keys are ever
//! written; the namespace is deleted when the test ends, also when it fails. Where no
//! namespace can be made (no `ip`, not root) the test follows the kit's prereq rule.

use redpacket_host::conf::{Conf, Scope};
use redpacket_testkit::netns::Netns;
use redpacket_testkit::prereq;

const BIN: &str = env!("CARGO_BIN_EXE_redpacket-server");

/// `ARGS` run inside the namespace.
fn exec(ns: &Netns, args: &[&str]) -> std::process::Output {
    ns.command(args[0]).args(&args[1..]).output().unwrap()
}

/// `sysctl -w KEY=VALUE` inside the namespace; only per-namespace keys.
fn sysctl(ns: &Netns, key: &str, value: &str) {
    let out = exec(ns, &["sysctl", "-w", &format!("{key}={value}")]);
    assert!(
        out.status.success(),
        "sysctl -w {key}={value} in {}: {}",
        ns.name(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `redpacket-server check --connections N --json [--strict]` inside the namespace.
fn check(ns: &Netns, n: u64, strict: bool) -> (i32, serde_json::Value) {
    let n = n.to_string();
    let mut args = vec![BIN, "check", "--connections", &n, "--json"];
    if strict {
        args.push("--strict");
    }
    let out = exec(ns, &args);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

fn item<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no item {name}: {report}"))
}

fn short(report: &serde_json::Value) -> Vec<String> {
    report["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["judged"] == true && i["ok"] == false)
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn check_reports_a_low_namespace_key_short_then_fine() {
    let test = "check_reports_a_low_namespace_key_short_then_fine";
    let Some(ns) = prereq::require(test, Netns::create("rpchk")) else {
        return;
    };
    let n = 1000;

    sysctl(&ns, "net.core.somaxconn", "128");
    let (code, before) = check(&ns, n, false);
    let som = item(&before, "net.core.somaxconn");
    assert_eq!(som["value"], "128", "{som}");
    assert_eq!(som["ok"], false, "{som}");
    assert_eq!(som["scope"], "netns");
    assert_eq!(
        som["kind"], "advice",
        "somaxconn does not bound the count: {som}"
    );
    let advice = |r: &serde_json::Value| -> Vec<String> {
        r["advice"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        advice(&before)
            .iter()
            .any(|a| a.starts_with("net.core.somaxconn is 128, wanted >= 65535: ")),
        "{before}"
    );
    // Without --strict the counted limits alone decide.
    let holds = before["can_hold"].as_u64() >= before["asked"].as_u64();
    assert_eq!(before["ok"], holds, "{before}");
    assert_eq!(code, if holds { 0 } else { 1 }, "{before}");
    assert!(
        !before["first_to_raise"]
            .as_str()
            .unwrap()
            .starts_with("net.core.somaxconn"),
        "advice is never raised first: {before}"
    );
    // With --strict, the short advice fails it.
    let (code, strict) = check(&ns, n, true);
    assert_eq!(code, 1, "a short key fails --strict: {strict}");
    assert_eq!(strict["ok"], false);
    assert_eq!(strict["can_hold"], before["can_hold"]);

    // Apply every per-namespace key of the file, as a tuned namespace would have them.
    let conf = Conf::server();
    for k in conf.keys.iter().filter(|k| k.scope == Scope::Netns) {
        sysctl(&ns, &k.key, &k.value);
    }
    let (code, after) = check(&ns, n, true);
    assert_eq!(item(&after, "net.core.somaxconn")["ok"], true, "{after}");
    for k in conf.keys.iter().filter(|k| k.scope == Scope::Netns) {
        assert_eq!(
            item(&after, &k.key)["ok"],
            true,
            "{} after applying: {after}",
            k.key
        );
    }
    // What is still short is host-wide (not this test's to change) and was short before.
    let (was, now) = (short(&before), short(&after));
    for name in &now {
        assert_ne!(item(&after, name)["scope"], "netns", "{name}: {after}");
        assert!(was.contains(name), "{name} became short: {after}");
    }
    // Under --strict every short judged item fails the check: limits and advice alike.
    assert_eq!(code == 0, now.is_empty(), "exit {code} with short {now:?}");
    assert_eq!(after["ok"] == true, code == 0);
    assert!(advice(&after)
        .iter()
        .all(|a| !a.starts_with("net.core.somaxconn")));
    assert_eq!(
        after["ok"] == true,
        after["can_hold"].as_u64() >= after["asked"].as_u64() && advice(&after).is_empty()
    );
}
