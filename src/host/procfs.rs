//! Parsers for the kernel's text counters: pure functions from text to numbers.
//!
//! They take the whole file as a string so they can be tested on captured text (see
//! `tests/fixtures/proc/`), and they skip what they do not understand instead of
//! failing: a kernel that adds a column must not stop the sampler.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One interface's cumulative counters from `/proc/net/dev`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IfaceCounters {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errs: u64,
    pub rx_drop: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errs: u64,
    pub tx_drop: u64,
}

/// `/proc/net/dev`: interface name to counters, in the file's order.
pub fn net_dev(text: &str) -> Vec<(String, IfaceCounters)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let n: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        if n.len() < 12 {
            continue; // the two header lines, or a line we cannot read
        }
        out.push((
            name.trim().to_string(),
            IfaceCounters {
                rx_bytes: n[0],
                rx_packets: n[1],
                rx_errs: n[2],
                rx_drop: n[3],
                tx_bytes: n[8],
                tx_packets: n[9],
                tx_errs: n[10],
                tx_drop: n[11],
            },
        ));
    }
    out
}

/// `/proc/net/snmp` and `/proc/net/netstat`: pairs of lines, a header of names and a
/// line of values, both starting with the same `Prefix:`. Returns `Prefix.Name -> value`
/// (values are signed: `Tcp.MaxConn` is -1).
pub fn keyed_pairs(text: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let (Some((p1, names)), Some((p2, values))) =
            (names.split_once(':'), values.split_once(':'))
        else {
            continue;
        };
        if p1 != p2 {
            continue;
        }
        for (k, v) in names.split_whitespace().zip(values.split_whitespace()) {
            if let Ok(v) = v.parse::<i64>() {
                out.insert(format!("{p1}.{k}"), v);
            }
        }
    }
    out
}

/// `/proc/net/sockstat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SockStat {
    /// All sockets in use (every protocol).
    pub sockets_used: u64,
    pub tcp_inuse: u64,
    pub tcp_orphan: u64,
    pub tcp_tw: u64,
    pub tcp_alloc: u64,
    /// TCP memory in pages (compare with `net.ipv4.tcp_mem`, also in pages).
    pub tcp_mem_pages: u64,
}

pub fn sockstat(text: &str) -> SockStat {
    let mut s = SockStat::default();
    for line in text.lines() {
        let Some((proto, rest)) = line.split_once(':') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        for kv in f.chunks(2) {
            let [k, v] = kv else { continue };
            let Ok(v) = v.parse::<u64>() else { continue };
            match (proto, *k) {
                ("sockets", "used") => s.sockets_used = v,
                ("TCP", "inuse") => s.tcp_inuse = v,
                ("TCP", "orphan") => s.tcp_orphan = v,
                ("TCP", "tw") => s.tcp_tw = v,
                ("TCP", "alloc") => s.tcp_alloc = v,
                ("TCP", "mem") => s.tcp_mem_pages = v,
                _ => {}
            }
        }
    }
    s
}

/// One CPU line of `/proc/stat`, in clock ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTicks {
    pub busy: u64,
    pub total: u64,
}

/// `/proc/stat`: the aggregate `cpu` line first, then `cpu0`, `cpu1`, ...
/// Idle is `idle + iowait`; everything else up to `steal` is busy (guest time is
/// already inside user and nice, so it is not added twice).
pub fn proc_stat(text: &str) -> (CpuTicks, Vec<CpuTicks>) {
    let mut all = CpuTicks::default();
    let mut cores = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some(name) = f.next() else { continue };
        if !name.starts_with("cpu") {
            continue;
        }
        let n: Vec<u64> = f.take(8).filter_map(|x| x.parse().ok()).collect();
        if n.len() < 4 {
            continue;
        }
        let total: u64 = n.iter().sum();
        let idle = n[3] + n.get(4).copied().unwrap_or(0);
        let t = CpuTicks {
            busy: total - idle,
            total,
        };
        if name == "cpu" {
            all = t;
        } else {
            cores.push(t);
        }
    }
    (all, cores)
}

/// `/proc/<pid>/stat`: utime + stime in clock ticks. The command name (field 2) may
/// hold spaces and parentheses, so fields are counted after the last `)`.
pub fn self_stat_ticks(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state is field 3 of the man page, so utime (14) is index 11.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `/proc/<pid>/status`: `VmRSS` in KiB.
pub fn vm_rss_kib(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// `ethtool -S IFACE`: `name: value` lines under a `NIC statistics:` header.
pub fn ethtool_stats(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_DEV: &str = include_str!("../../tests/fixtures/proc/net_dev.txt");
    const SNMP: &str = include_str!("../../tests/fixtures/proc/snmp.txt");
    const NETSTAT: &str = include_str!("../../tests/fixtures/proc/netstat.txt");
    const SOCKSTAT: &str = include_str!("../../tests/fixtures/proc/sockstat.txt");
    const STAT: &str = include_str!("../../tests/fixtures/proc/stat.txt");
    const SELF_STAT: &str = include_str!("../../tests/fixtures/proc/self_stat.txt");
    const STATUS: &str = include_str!("../../tests/fixtures/proc/self_status.txt");
    const ETHTOOL: &str = include_str!("../../tests/fixtures/proc/ethtool_s.txt");

    #[test]
    fn net_dev_reads_every_interface() {
        let d = net_dev(NET_DEV);
        let names: Vec<&str> = d.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["lo", "ifb0", "ifb1", "eth0"]);
        let eth0 = d[3].1;
        assert_eq!(eth0.rx_bytes, 298460400);
        assert_eq!(eth0.rx_packets, 9317);
        assert_eq!(eth0.tx_bytes, 523192);
        assert_eq!(eth0.tx_packets, 4925);
        assert_eq!(d[0].1.rx_packets, 31);
    }

    #[test]
    fn net_dev_skips_garbage() {
        assert!(net_dev("x: 1 2 3\nnonsense\n").is_empty());
    }

    #[test]
    fn snmp_and_netstat_pair_names_with_values() {
        let s = keyed_pairs(SNMP);
        assert_eq!(s["Tcp.CurrEstab"], 2);
        assert_eq!(s["Tcp.ActiveOpens"], 56);
        assert_eq!(s["Tcp.OutRsts"], 68);
        assert_eq!(s["Tcp.MaxConn"], -1);
        let n = keyed_pairs(NETSTAT);
        assert_eq!(n["TcpExt.ListenOverflows"], 0);
        assert!(n["TcpExt.TW"] >= 0);
        assert!(n.contains_key("IpExt.InOctets"));
    }

    #[test]
    fn sockstat_reads_tcp_line() {
        let s = sockstat(SOCKSTAT);
        assert_eq!(s.sockets_used, 21);
        assert_eq!(s.tcp_inuse, 3);
        assert_eq!(s.tcp_alloc, 3);
        assert_eq!(s.tcp_mem_pages, 146);
    }

    #[test]
    fn proc_stat_splits_busy_and_idle() {
        let (all, cores) = proc_stat(STAT);
        assert_eq!(cores.len(), 2);
        assert_eq!(all.total, 15792 + 5778 + 102717 + 1043 + 173 + 1967);
        assert_eq!(all.busy, all.total - 102717 - 1043);
        assert_eq!(cores[0].busy, 7483 + 2333 + 19 + 931);
    }

    #[test]
    fn self_stat_survives_odd_command_names() {
        assert_eq!(self_stat_ticks(SELF_STAT), Some(0));
        let odd = "12 (a) b (c) R 1 1 1 0 -1 0 0 0 0 0 70 30 0 0 20 0 1 0 1 1 1";
        assert_eq!(self_stat_ticks(odd), Some(100));
        assert_eq!(self_stat_ticks("garbage"), None);
    }

    #[test]
    fn status_and_ethtool() {
        assert_eq!(vm_rss_kib(STATUS), Some(2040));
        let e = ethtool_stats(ETHTOOL);
        assert_eq!(e["rx_missed_errors"], 12);
        assert_eq!(e.len(), 5);
    }
}
