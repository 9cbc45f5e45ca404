//! One line of `net.jsonl`, and how it is built from two readings of `/proc`.
//!
//! The sampler writes these and the report reads them back, so the same types are the
//! schema on both sides. Every counter is given twice, as the kernel's cumulative value
//! and as a per-second rate over the line's `interval_s`, so a reader can use one line
//! alone and a lost line does not break the rates of the next.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use redpacket_sys::procfs::{IfaceCounters, SockStat};

/// Per-second rates of an interface's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IfaceRates {
    pub rx_bytes: f64,
    pub rx_packets: f64,
    pub rx_errs: f64,
    pub rx_drop: f64,
    pub tx_bytes: f64,
    pub tx_packets: f64,
    pub tx_errs: f64,
    pub tx_drop: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IfaceLine {
    pub total: IfaceCounters,
    pub per_second: IfaceRates,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuLine {
    /// Busy share of the whole machine, 0..=100.
    pub total_pct: f64,
    /// Busy share of each core, 0..=100, in `/proc/stat` order.
    pub cores_pct: Vec<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessLine {
    /// CPU time of the whole process (utime + stime) as % of one core; can exceed 100.
    pub cpu_pct: f64,
    /// Resident set size, KiB.
    pub rss_kib: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplerCost {
    /// CPU seconds used by the sampler thread since it started (getrusage RUSAGE_THREAD),
    /// its reads of the NIC counters included: it starts no process. (Lines written
    /// while it ran `ethtool -S` also have `children_cpu_s`, the CPU of those runs;
    /// it is ignored when read.)
    pub cpu_s: f64,
}

/// One line of `net.jsonl`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetLine {
    /// Unix seconds: the whole unix second the interval ends on, on every process and host alike, so
    /// records of many processes add up second by second (the last line, written at stop,
    /// ends when the process stopped).
    pub t: f64,
    /// Seconds since the previous reading; the rates are over this interval.
    pub interval_s: f64,
    /// Every interface of `/proc/net/dev`, by name.
    pub ifaces: BTreeMap<String, IfaceLine>,
    /// Cumulative TCP counters (and the gauge `CurrEstab`), see [`TCP_KEYS`].
    pub tcp: BTreeMap<String, i64>,
    /// Per-second rates of the counters in `tcp` (gauges left out).
    pub tcp_per_second: BTreeMap<String, f64>,
    pub sockstat: SockStat,
    pub cpu: CpuLine,
    pub process: ProcessLine,
    pub sampler: SamplerCost,
    /// NIC driver counters by interface (what `ethtool -S` prints, read with the ethtool
    /// ioctl), cumulative; absent where the driver has none (never loopback).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ethtool: BTreeMap<String, BTreeMap<String, u64>>,
}

/// The TCP counters kept, as `(file prefix.name, name in the line)`.
pub const TCP_KEYS: &[(&str, &str)] = &[
    ("Tcp.CurrEstab", "CurrEstab"),
    ("Tcp.ActiveOpens", "ActiveOpens"),
    ("Tcp.PassiveOpens", "PassiveOpens"),
    ("Tcp.AttemptFails", "AttemptFails"),
    ("Tcp.EstabResets", "EstabResets"),
    ("Tcp.InSegs", "InSegs"),
    ("Tcp.OutSegs", "OutSegs"),
    ("Tcp.RetransSegs", "RetransSegs"),
    ("Tcp.InErrs", "InErrs"),
    ("Tcp.OutRsts", "OutRsts"),
    ("TcpExt.ListenOverflows", "ListenOverflows"),
    ("TcpExt.ListenDrops", "ListenDrops"),
    ("TcpExt.SyncookiesSent", "SyncookiesSent"),
    ("TcpExt.TCPTimeouts", "TCPTimeouts"),
    ("TcpExt.TCPSynRetrans", "TCPSynRetrans"),
    ("TcpExt.TCPLostRetransmit", "TCPLostRetransmit"),
    ("TcpExt.TCPAbortOnData", "TCPAbortOnData"),
    ("TcpExt.TCPAbortOnClose", "TCPAbortOnClose"),
    ("TcpExt.TCPAbortOnMemory", "TCPAbortOnMemory"),
    ("TcpExt.TCPAbortOnTimeout", "TCPAbortOnTimeout"),
    ("TcpExt.TCPBacklogDrop", "TCPBacklogDrop"),
    ("TcpExt.TCPRcvQDrop", "TCPRcvQDrop"),
    ("TcpExt.TCPMemoryPressures", "TCPMemoryPressures"),
    ("TcpExt.PruneCalled", "PruneCalled"),
    ("TcpExt.TW", "TW"),
];

/// Gauges: reported as they are, no rate.
const TCP_GAUGES: &[&str] = &["CurrEstab"];

/// Picks [`TCP_KEYS`] out of the merged snmp + netstat maps.
pub fn pick_tcp(all: &BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    TCP_KEYS
        .iter()
        .filter_map(|(k, name)| all.get(*k).map(|v| (name.to_string(), *v)))
        .collect()
}

/// Per-second rates of the TCP counters between two readings.
pub fn tcp_rates(
    now: &BTreeMap<String, i64>,
    prev: &BTreeMap<String, i64>,
    dt: f64,
) -> BTreeMap<String, f64> {
    now.iter()
        .filter(|(k, _)| !TCP_GAUGES.contains(&k.as_str()))
        .filter_map(|(k, v)| {
            let p = prev.get(k)?;
            Some((k.clone(), rate((*v - *p).max(0) as u64, dt)))
        })
        .collect()
}

pub fn iface_rates(now: &IfaceCounters, prev: &IfaceCounters, dt: f64) -> IfaceRates {
    let r = |a: u64, b: u64| rate(a.saturating_sub(b), dt);
    IfaceRates {
        rx_bytes: r(now.rx_bytes, prev.rx_bytes),
        rx_packets: r(now.rx_packets, prev.rx_packets),
        rx_errs: r(now.rx_errs, prev.rx_errs),
        rx_drop: r(now.rx_drop, prev.rx_drop),
        tx_bytes: r(now.tx_bytes, prev.tx_bytes),
        tx_packets: r(now.tx_packets, prev.tx_packets),
        tx_errs: r(now.tx_errs, prev.tx_errs),
        tx_drop: r(now.tx_drop, prev.tx_drop),
    }
}

fn rate(delta: u64, dt: f64) -> f64 {
    if dt <= 0.0 {
        0.0
    } else {
        round2(delta as f64 / dt)
    }
}

/// Two decimals are plenty for rates and percentages, and keep lines short.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_divide_by_the_interval_and_skip_gauges() {
        let prev = BTreeMap::from([("CurrEstab".to_string(), 5), ("OutRsts".to_string(), 10)]);
        let now = BTreeMap::from([("CurrEstab".to_string(), 9), ("OutRsts".to_string(), 30)]);
        let r = tcp_rates(&now, &prev, 2.0);
        assert_eq!(r.get("OutRsts"), Some(&10.0));
        assert!(!r.contains_key("CurrEstab"));
        let a = IfaceCounters {
            rx_packets: 100,
            ..Default::default()
        };
        let b = IfaceCounters {
            rx_packets: 400,
            ..Default::default()
        };
        assert_eq!(iface_rates(&b, &a, 0.5).rx_packets, 600.0);
        // A counter that went back (interface re-created) gives 0, not a huge rate.
        assert_eq!(iface_rates(&a, &b, 1.0).rx_packets, 0.0);
    }

    #[test]
    fn a_line_round_trips_and_old_lines_still_read() {
        let mut l = NetLine {
            t: 1.5,
            interval_s: 1.0,
            ..Default::default()
        };
        l.tcp.insert("CurrEstab".into(), 3);
        let s = serde_json::to_string(&l).unwrap();
        assert!(!s.contains("ethtool"));
        let back: NetLine = serde_json::from_str(&s).unwrap();
        assert_eq!(back, l);
        let sparse: NetLine = serde_json::from_str(r#"{"t": 2.0, "new_field": 1}"#).unwrap();
        assert_eq!(sparse.t, 2.0);
        // Lines from before the counters were read in-process: their children's CPU is
        // dropped, the rest reads.
        let old: NetLine = serde_json::from_str(
            r#"{"t": 3.0, "sampler": {"cpu_s": 0.5, "children_cpu_s": 0.25}}"#,
        )
        .unwrap();
        assert_eq!(old.sampler.cpu_s, 0.5);
        assert!(!serde_json::to_string(&old).unwrap().contains("children"));
    }
}
