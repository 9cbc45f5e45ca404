//! Parsers for the kernel's text counters that `sysinfo` does not read: pure functions
//! from text to numbers.
//!
//! `/proc/net/dev` (sysinfo's interface counters have no drop counts and cost ~20x more
//! per reading: seven sysfs files and an address dump per interface), `/proc/net/snmp`,
//! `/proc/net/netstat`, `/proc/net/sockstat`, and what the demo's
//! footprint needs: `/proc/PID/{stat,statm}` (a process's RSS, CPU time and parent: the
//! demo finds its children by their parent, one small file each), `/proc/meminfo`
//! (`Slab`, which sysinfo does not give) and `/proc/slabinfo`. They take the whole file
//! as a string so they can be tested on captured text (see `crates/sys/fixtures/proc/`), and
//! they skip what they do not understand instead of failing: a kernel that adds a column
//! must not stop the sampler.

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

/// Reads `/proc/net/sockstat` now (all zeros when it cannot be read).
pub fn read_sockstat() -> SockStat {
    sockstat(&std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default())
}

/// Slab caches whose size follows the connection count: TCP sockets, their inodes,
/// files, dentries and epoll entries, bind buckets, and the small kmalloc caches socket
/// structures land in when SLUB merges a named cache into one of them.
pub const SOCKET_SLABS: &[&str] = &[
    "TCP",
    "request_sock_TCP",
    "tcp_bind_bucket",
    "tcp_bind2_bucket",
    "sock_inode_cache",
    "filp",
    "dentry",
    "eventpoll_epi",
    "eventpoll_pwq",
    "skbuff_head_cache",
    "kmalloc-64",
    "kmalloc-128",
    "kmalloc-192",
    "kmalloc-256",
    "kmalloc-512",
    "kmalloc-1k",
];

/// `/proc/slabinfo` (version 2.x): cache name to the bytes its slabs occupy
/// (`num_slabs x pagesperslab x page`), which counts partly filled slabs as the kernel
/// does, unlike `num_objs x objsize`.
pub fn slabinfo(text: &str, page: u64) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with("slabinfo") || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        // name active num objsize perslab pagesperslab : tunables l b s : slabdata a n s
        if f.len() < 15 || f[6] != ":" || f[12] != "slabdata" {
            continue;
        }
        if let (Ok(pages), Ok(slabs)) = (f[5].parse::<u64>(), f[14].parse::<u64>()) {
            out.insert(
                f[0].to_string(),
                slabs.saturating_mul(pages).saturating_mul(page),
            );
        }
    }
    out
}

/// `/proc/meminfo`: field to bytes (`kB` values multiplied out; counts kept as they are).
pub fn meminfo(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let mut w = v.split_whitespace();
        let Some(Ok(n)) = w.next().map(str::parse::<u64>) else {
            continue;
        };
        let n = if w.next() == Some("kB") { n * 1024 } else { n };
        out.insert(k.trim().to_string(), n);
    }
    out
}

/// One process as `/proc/PID/{statm,stat}` show it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessStat {
    /// Resident set, bytes.
    pub rss_bytes: u64,
    /// User + system CPU seconds since it started.
    pub cpu_s: f64,
    pub ppid: u32,
}

/// User + system CPU seconds and the parent pid from a `/proc/PID/stat` line, with
/// `tick` clock ticks per second. The command name may hold spaces and parentheses:
/// fields are counted after its last `)`.
pub fn stat_cpu_ppid(stat: &str, tick: f64) -> Option<(f64, u32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ppid: u32 = f.get(1)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(((utime + stime) as f64 / tick, ppid))
}

/// The page size and clock ticks per second (sysconf; 4096 and 100 if it fails).
pub fn page_and_tick() -> (u64, f64) {
    // SAFETY: sysconf only reads configuration values.
    let (page, tick) = unsafe {
        (
            libc::sysconf(libc::_SC_PAGESIZE),
            libc::sysconf(libc::_SC_CLK_TCK),
        )
    };
    (
        u64::try_from(page).ok().filter(|&p| p > 0).unwrap_or(4096),
        if tick > 0 { tick as f64 } else { 100.0 },
    )
}

/// Reads process `pid` now (`None`: gone, or not readable).
pub fn read_process(pid: u32) -> Option<ProcessStat> {
    let (page, tick) = page_and_tick();
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let rss_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (cpu_s, ppid) = stat_cpu_ppid(&stat, tick)?;
    Some(ProcessStat {
        rss_bytes: rss_pages * page,
        cpu_s,
        ppid,
    })
}

/// Pids whose parent is `parent`, in order.
pub fn children_of(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let tick = page_and_tick().1;
    let mut out: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| stat_cpu_ppid(&s, tick))
                .is_some_and(|(_, ppid)| ppid == parent)
        })
        .collect();
    out.sort_unstable();
    out
}

/// `/proc/meminfo` now (empty when it cannot be read).
pub fn read_meminfo() -> BTreeMap<String, u64> {
    meminfo(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default())
}

/// `/proc/slabinfo` now, the [`SOCKET_SLABS`] caches only (empty without root).
pub fn read_socket_slabs() -> BTreeMap<String, u64> {
    let page = page_and_tick().0;
    std::fs::read_to_string("/proc/slabinfo")
        .map(|t| slabinfo(&t, page))
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| SOCKET_SLABS.contains(&k.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_DEV: &str = include_str!("../fixtures/proc/net_dev.txt");
    const SNMP: &str = include_str!("../fixtures/proc/snmp.txt");
    const NETSTAT: &str = include_str!("../fixtures/proc/netstat.txt");
    const SOCKSTAT: &str = include_str!("../fixtures/proc/sockstat.txt");

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
    fn slabinfo_counts_whole_slabs_and_skips_the_header() {
        let text = "slabinfo - version: 2.1\n\
# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>\n\
TCP                  143    143   2368   13    8 : tunables    0    0    0 : slabdata     11     11      0\n\
dentry            217308 217308    192   21    1 : tunables    0    0    0 : slabdata  10348  10348      0\n\
broken 1 2 3\n";
        let s = slabinfo(text, 4096);
        assert_eq!(s["TCP"], 11 * 8 * 4096);
        assert_eq!(s["dentry"], 10_348 * 4096);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn meminfo_multiplies_kilobytes() {
        let m = meminfo(
            "MemTotal:       24684092 kB\nSlab:  1000 kB\nHugePages_Total:       0\nbad line\n",
        );
        assert_eq!(m["MemTotal"], 24_684_092 * 1024);
        assert_eq!(m["Slab"], 1_024_000);
        assert_eq!(m["HugePages_Total"], 0);
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "4242 (a (weird) name) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 5 1000 200";
        let (cpu, ppid) = stat_cpu_ppid(line, 100.0).unwrap();
        assert_eq!(ppid, 17);
        assert!((cpu - 3.0).abs() < 1e-9, "{cpu}");
        assert!(stat_cpu_ppid("garbage", 100.0).is_none());
    }

    #[test]
    fn this_process_reads_itself() {
        let me = read_process(std::process::id()).unwrap();
        assert!(me.rss_bytes > 0);
        assert!(me.ppid > 0);
    }
}
