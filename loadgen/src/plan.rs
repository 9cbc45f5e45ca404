//! The plan: phases run one after another in one process, so connections survive.
//!
//! A plan always starts with the connect ramp (no requests until every user is logged
//! in or the ramp's deadline passes); then come load phases, each a shake rate held for
//! a duration, optionally starting the server's campaigns. The default plan follows the
//! old tests (30k, 60k, peak) scaled by `--scale`; a TOML file and/or repeated
//! `--phase NAME:RATE:DURATION[:campaigns]` replace it.

use serde::{Deserialize, Serialize};

/// The old tests' campaign rates, per server: shake packets and sends per second.
pub const DEFAULT_CAMPAIGN_QPS: f64 = 200.0;

/// One load phase.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    pub name: String,
    /// Target shake requests per second, all users together.
    pub qps: f64,
    /// Seconds the phase lasts.
    pub duration_s: f64,
    /// Shake packets per second the server is asked to issue (`/yaohongbao`), per
    /// server; 0 = none. Needs `--server-control`.
    #[serde(default)]
    pub shake_campaign_qps: f64,
    /// User-to-user packets per second the server is asked to create (`/fahongbao`),
    /// per server; 0 = none. Needs `--server-control`.
    #[serde(default)]
    pub send_campaign_qps: f64,
    /// Client sends (0x0007) per second, all users together; `None` = `--send-rate`.
    #[serde(default)]
    pub send_rate: Option<f64>,
}

impl Phase {
    pub fn new(name: &str, qps: f64, duration_s: f64) -> Phase {
        Phase {
            name: name.to_string(),
            qps,
            duration_s,
            shake_campaign_qps: 0.0,
            send_campaign_qps: 0.0,
            send_rate: None,
        }
    }

    pub fn with_campaigns(mut self, shake: f64, send: f64) -> Phase {
        self.shake_campaign_qps = shake;
        self.send_campaign_qps = send;
        self
    }

    fn check(&self) -> Result<(), String> {
        let ok = |x: f64| (0.0..=MAX_RATE).contains(&x);
        if self.name.is_empty() || self.name == "connect" {
            return Err(format!("phase name {:?} is empty or reserved", self.name));
        }
        if !ok(self.qps) || !ok(self.shake_campaign_qps) || !ok(self.send_campaign_qps) {
            return Err(format!(
                "phase {:?}: rates must be in [0, {MAX_RATE}]",
                self.name
            ));
        }
        if !(self.duration_s.is_finite() && self.duration_s > 0.0 && self.duration_s <= 86_400.0) {
            return Err(format!(
                "phase {:?}: duration must be in (0, 86400] s",
                self.name
            ));
        }
        if let Some(r) = self.send_rate {
            if !ok(r) {
                return Err(format!(
                    "phase {:?}: send_rate must be in [0, {MAX_RATE}]",
                    self.name
                ));
            }
        }
        Ok(())
    }
}

/// A TOML plan file: `[[phase]]` tables with the fields of [`Phase`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    phase: Vec<Phase>,
}

/// The old tests' plan: 30k, 60k, then a peak of 140k shakes/s, each `duration_s` long,
/// rates multiplied by `scale`, campaigns at 200/s in each. The first two phases are
/// named after the rate they run at (`3k` and `6k` at scale 0.1), the last `peak`.
pub fn default_plan(scale: f64, duration_s: f64) -> Vec<Phase> {
    [
        (None, 30_000.0),
        (None, 60_000.0),
        (Some("peak"), 140_000.0),
    ]
    .iter()
    .map(|(n, q)| {
        let rate = q * scale;
        let name = n.map(str::to_string).unwrap_or_else(|| rate_name(rate));
        Phase::new(&name, rate, duration_s)
            .with_campaigns(DEFAULT_CAMPAIGN_QPS, DEFAULT_CAMPAIGN_QPS)
    })
    .collect()
}

/// A rate as a short phase name: `3k`, `1.5k`, `500`.
fn rate_name(rate: f64) -> String {
    if rate >= 1000.0 {
        let k = (rate / 100.0).round() / 10.0;
        format!("{k}k")
    } else {
        format!("{}", rate.round())
    }
}

/// Parses `NAME:RATE:DURATION[:campaigns]`; RATE accepts a `k` suffix, DURATION an `s`
/// or `m` suffix. `campaigns` starts both server campaigns at 200/s.
pub fn parse_phase(s: &str) -> Result<Phase, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let usage =
        || format!("bad --phase {s:?}: expected NAME:RATE:DURATION[:campaigns], e.g. 3k:3000:20s");
    if !(3..=4).contains(&parts.len()) {
        return Err(usage());
    }
    let qps = parse_rate(parts[1]).ok_or_else(usage)?;
    let duration_s = parse_duration(parts[2]).ok_or_else(usage)?;
    let mut p = Phase::new(parts[0], qps, duration_s);
    match parts.get(3) {
        None => {}
        Some(&"campaigns") | Some(&"c") => {
            p = p.with_campaigns(DEFAULT_CAMPAIGN_QPS, DEFAULT_CAMPAIGN_QPS)
        }
        Some(_) => return Err(usage()),
    }
    p.check()?;
    Ok(p)
}

/// Reads a TOML plan.
pub fn parse_toml(text: &str) -> Result<Vec<Phase>, String> {
    let f: PlanFile = toml::from_str(text).map_err(|e| format!("bad plan file: {e}"))?;
    for p in &f.phase {
        p.check()?;
    }
    if f.phase.is_empty() {
        return Err("plan file has no [[phase]]".into());
    }
    Ok(f.phase)
}

/// The highest rate accepted anywhere (flags, plan files, `/qps`), requests/s: far
/// beyond what a host can send, and low enough that a schedule's period (1e9 / rate
/// ns) always moves its clock forward.
pub const MAX_RATE: f64 = 1e8;

/// `3000`, `2.5k`, `1m` (million) requests per second, at most [`MAX_RATE`].
pub fn parse_rate(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, mul) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1e3),
        b'm' | b'M' => (&s[..s.len() - 1], 1e6),
        _ => (s, 1.0),
    };
    let v = num.parse::<f64>().ok()? * mul;
    (v.is_finite() && (0.0..=MAX_RATE).contains(&v)).then_some(v)
}

/// `20`, `20s`, `1.5m`, `500ms` as seconds.
pub fn parse_duration(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, mul) = if let Some(n) = s.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v = num.parse::<f64>().ok()? * mul;
    (v.is_finite() && v > 0.0).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_plan_scales_rates_only() {
        let p = default_plan(0.1, 30.0);
        let names: Vec<_> = p.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["3k", "6k", "peak"]);
        let full: Vec<_> = default_plan(1.0, 30.0)
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(full, ["30k", "60k", "peak"]);
        assert_eq!(rate_name(1500.0), "1.5k");
        assert_eq!(rate_name(500.0), "500");
        assert_eq!(p[0].qps, 3000.0);
        assert_eq!(p[2].qps, 14000.0);
        assert!(p
            .iter()
            .all(|p| p.duration_s == 30.0 && p.shake_campaign_qps == 200.0));
    }

    #[test]
    fn rates_are_bounded() {
        assert_eq!(parse_rate("100m"), Some(1e8));
        assert_eq!(parse_rate("1e300"), None);
        assert_eq!(parse_rate("101m"), None);
        assert_eq!(parse_rate("-1"), None);
        assert_eq!(parse_rate("NaN"), None);
        assert!(parse_toml("[[phase]]\nname = \"a\"\nqps = 1e300\nduration_s = 1\n").is_err());
    }

    #[test]
    fn phase_flags_parse() {
        let p = parse_phase("warm:2.5k:1m").unwrap();
        assert_eq!(
            (p.name.as_str(), p.qps, p.duration_s),
            ("warm", 2500.0, 60.0)
        );
        assert_eq!(p.shake_campaign_qps, 0.0);
        let p = parse_phase("x:100:500ms:campaigns").unwrap();
        assert_eq!((p.duration_s, p.send_campaign_qps), (0.5, 200.0));
        for bad in [
            "x:1",
            "x:-1:5",
            "x:1:0",
            "connect:1:1",
            "x:1:1:what",
            ":1:1",
        ] {
            assert!(parse_phase(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn toml_plans_parse_and_check() {
        let p = parse_toml(
            "[[phase]]\nname = \"a\"\nqps = 100\nduration_s = 2\n\
             [[phase]]\nname = \"b\"\nqps = 50.5\nduration_s = 1\nshake_campaign_qps = 200\nsend_rate = 10\n",
        )
        .unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].send_rate, Some(10.0));
        assert!(parse_toml("[[phase]]\nname = \"a\"\nqps = 1\nduration_s = 0\n").is_err());
        assert!(
            parse_toml("[[phase]]\nname = \"a\"\nqps = 1\nduration_s = 1\nbogus = 2\n").is_err()
        );
    }
}
