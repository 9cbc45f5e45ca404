//! The hosts' clocks against the controller's, as `run.json` records them (the fleet
//! measures each host's offset over a round trip before the run starts).
//!
//! Every process cuts its per-second records on whole seconds of its own host's clock,
//! and the report adds the hosts' records second by second. A host whose clock is off by
//! `d` milliseconds puts `d / 1000` of each second's counts into the neighbouring second:
//! at 5 ms that is half a percent of a second's figures, below what the per-second
//! series can show; beyond it, the hosts' seconds visibly stop lining up.
//!
//! The host read its clock somewhere inside the round trip, so its offset is known only
//! to within half of it, and the two legs are not alike (over SSH the way out starts a
//! session and a shell, the way back carries a few bytes): hosts that share the
//! controller's clock measure a few milliseconds off over a 20 ms round trip. So a host
//! is named only when it is off by more than [`SKEW_MS`] even at the near end of that
//! margin, with its offset ± half the round trip; nothing is said otherwise.

use super::numbers::{fmt_num, MANY};
use redpacket_formats::{HostEntry, RunMeta};

/// An offset from the controller's clock surely beyond this, milliseconds, is shown.
pub const SKEW_MS: f64 = 5.0;

/// How the line naming skewed hosts begins.
const HEAD: &str = "clock skew over 5 ms (host minus controller ± half the round trip, \
                    measured at the start; a host's per-second records shift by as much)";

/// One line naming every host whose clock is surely more than [`SKEW_MS`] off the
/// controller's (|offset| - rtt/2 beyond it; a host without a round trip is judged on its
/// offset alone), the farthest first (past [`MANY`] hosts, the farthest few and how many
/// more); empty when no host is or none was measured.
pub fn skew_lines(meta: &RunMeta) -> Vec<String> {
    let mut off: Vec<(&str, f64, Option<f64>)> = meta
        .hosts
        .iter()
        .filter_map(|h| match h {
            HostEntry::Full(h) => Some(h),
            HostEntry::Name(_) => None,
        })
        .filter_map(|h| {
            let o = h.clock_offset_ms.filter(|o| o.is_finite())?;
            let rtt = h.clock_rtt_ms.filter(|r| r.is_finite() && *r >= 0.0);
            let margin = rtt.unwrap_or(0.0) / 2.0;
            (o.abs() - margin > SKEW_MS).then_some((h.name.as_str(), o, rtt))
        })
        .collect();
    if off.is_empty() {
        return Vec::new();
    }
    off.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(b.0)));
    let more = off.len().saturating_sub(MANY);
    let mut named: Vec<String> = off
        .iter()
        .take(MANY)
        .map(|(name, o, rtt)| {
            let sign = if *o > 0.0 { "+" } else { "" };
            match rtt {
                Some(r) => format!(
                    "{name} {sign}{} ± {} ms",
                    fmt_num(*o, 1),
                    fmt_num(r / 2.0, 1)
                ),
                None => format!("{name} {sign}{} ms", fmt_num(*o, 1)),
            }
        })
        .collect();
    if more > 0 {
        named.push(format!("and {more} more"));
    }
    vec![format!("{HEAD}: {}", named.join(", "))]
}

#[cfg(test)]
mod tests {
    use super::*;
    use redpacket_formats::HostInfo;

    fn host(name: &str, offset: Option<f64>, rtt: Option<f64>) -> HostEntry {
        HostEntry::Full(HostInfo {
            name: name.into(),
            role: "loadgen".into(),
            address: String::new(),
            clock_offset_ms: offset,
            clock_rtt_ms: rtt,
        })
    }

    fn meta(hosts: Vec<HostEntry>) -> RunMeta {
        RunMeta {
            hosts,
            ..RunMeta::default()
        }
    }

    #[test]
    fn nothing_when_every_host_is_within() {
        let m = meta(vec![
            host("srv1", Some(0.2), Some(3.0)),
            host("cli1", Some(-4.9), Some(1.0)),
            host("cli2", Some(5.0), None),
            // A shared clock over a slow, lopsided round trip: within its margin.
            host("cli5", Some(7.67), Some(18.9)),
            host("cli6", Some(-9.0), Some(8.0)),
            host("cli3", None, None),
            HostEntry::Name("cli4".into()),
        ]);
        assert!(skew_lines(&m).is_empty());
        assert!(skew_lines(&RunMeta::default()).is_empty());
    }

    #[test]
    fn hosts_past_the_limit_are_named_farthest_first_with_half_the_round_trip() {
        let m = meta(vec![
            host("srv1", Some(0.1), Some(2.0)),
            host("cli1", Some(12.34), Some(0.8)),
            host("cli2", Some(-40.0), Some(3.0)),
            host("cli3", Some(7.0), None),
            // 8 ms, but within 3.5 ms of the controller: not surely past 5 ms.
            host("cli4", Some(8.0), Some(7.0)),
        ]);
        let v = skew_lines(&m);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0],
            format!("{HEAD}: cli2 -40.0 ± 1.5 ms, cli1 +12.3 ± 0.4 ms, cli3 +7.0 ms")
        );
    }

    #[test]
    fn the_line_states_the_limit_it_applies() {
        assert!(HEAD.contains(&format!("over {SKEW_MS} ms")), "{HEAD}");
    }

    #[test]
    fn many_hosts_are_cut_to_the_farthest() {
        let hosts = (0..MANY + 3)
            .map(|i| host(&format!("cli{i}"), Some(10.0 + i as f64), Some(1.0)))
            .collect();
        let v = skew_lines(&meta(hosts));
        assert_eq!(v.len(), 1);
        assert!(
            v[0].contains(&format!("cli{} +{}.0", MANY + 2, 12 + MANY)),
            "{}",
            v[0]
        );
        assert!(!v[0].contains("cli0 "), "{}", v[0]);
        assert!(v[0].ends_with(", and 3 more"), "{}", v[0]);
    }

    #[test]
    fn unmeasurable_figures_are_ignored() {
        let m = meta(vec![host("cli1", Some(f64::NAN), Some(1.0))]);
        assert!(skew_lines(&m).is_empty());
        let m = meta(vec![host("cli1", Some(9.0), Some(f64::INFINITY))]);
        assert_eq!(skew_lines(&m), vec![format!("{HEAD}: cli1 +9.0 ms")]);
    }
}
