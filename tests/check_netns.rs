//! `redpacket-server check` in a network namespace this test makes: a per-namespace key
//! set low there is reported short, as advice (failing only `--strict`), then, with the
//! namespace keys of sysctl/server.conf applied, fine. Only per-namespace keys are ever
//! written; the namespace is deleted when the test ends, also when it fails.

use std::process::Command;

use redpacket_host::conf::{Conf, Scope};

const BIN: &str = env!("CARGO_BIN_EXE_redpacket-server");

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false")
}

/// Deletes the namespace on drop, whatever happened.
struct Netns(String);

impl Netns {
    /// Creates a namespace, or says why it cannot (no `ip`, no CAP_NET_ADMIN).
    fn create() -> Result<Netns, String> {
        let name = format!("rpchk-{}", std::process::id());
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .map_err(|e| format!("cannot run `ip` (apt-get install -y iproute2): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ip netns add {name}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Netns(name))
    }

    fn exec(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .output()
            .unwrap()
    }

    /// `sysctl -w KEY=VALUE` inside the namespace; only per-namespace keys.
    fn sysctl(&self, key: &str, value: &str) {
        let out = self.exec(&["sysctl", "-w", &format!("{key}={value}")]);
        assert!(
            out.status.success(),
            "sysctl -w {key}={value} in {}: {}",
            self.0,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `redpacket-server check --connections N --json [--strict]` inside the namespace.
    fn check(&self, n: u64, strict: bool) -> (i32, serde_json::Value) {
        let n = n.to_string();
        let mut args = vec![BIN, "check", "--connections", &n, "--json"];
        if strict {
            args.push("--strict");
        }
        let out = self.exec(&args);
        let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), v)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
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
    let ns = match Netns::create() {
        Ok(ns) => ns,
        Err(why) if in_ci() => panic!("CI is set but no network namespace can be made: {why}"),
        Err(why) => {
            eprintln!("SKIPPED check_reports_a_low_namespace_key_short_then_fine: {why}");
            return;
        }
    };
    let n = 1000;

    ns.sysctl("net.core.somaxconn", "128");
    let (code, before) = ns.check(n, false);
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
    let (code, strict) = ns.check(n, true);
    assert_eq!(code, 1, "a short key fails --strict: {strict}");
    assert_eq!(strict["ok"], false);
    assert_eq!(strict["can_hold"], before["can_hold"]);

    // Apply every per-namespace key of the file, as a tuned namespace would have them.
    let conf = Conf::server();
    for k in conf.keys.iter().filter(|k| k.scope == Scope::Netns) {
        ns.sysctl(&k.key, &k.value);
    }
    let (code, after) = ns.check(n, true);
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
