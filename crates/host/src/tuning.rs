//! `tuning.txt`: the host's limits that decide how many connections and packets it can
//! take, as they were during the run.
//!
//! A run that stalls at 28 000 connections is explained by `ip_local_port_range`, one
//! that stalls at 1 024 by `RLIMIT_NOFILE`; keeping the values beside the numbers saves
//! guessing later. The format is `key = value` per line, `#` comments, so that people
//! read it and [`parse`] reads it back for the report.

use std::fs;
use std::io;
use std::path::Path;

use crate::conf::Conf;
use redpacket_sys::{rlimit, sysctl, system};

/// The sysctls that matter for a million connections, in the order they are written.
pub const SYSCTLS: &[&str] = &[
    "fs.file-max",
    "fs.nr_open",
    "net.core.somaxconn",
    "net.core.netdev_max_backlog",
    "net.core.rmem_max",
    "net.core.wmem_max",
    "net.core.rmem_default",
    "net.core.wmem_default",
    "net.core.busy_poll",
    "net.core.busy_read",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_tw_reuse",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_max_tw_buckets",
    "net.ipv4.tcp_max_orphans",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.tcp_mem",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.netfilter.nf_conntrack_max",
    "vm.max_map_count",
    "kernel.osrelease",
];

/// Builds the text of `tuning.txt` for this host, now.
pub fn tuning_text() -> String {
    let mut s = String::from("# redpacket tuning snapshot, schema 1: key = value\n");
    let host = sysctl::read("kernel.hostname").unwrap_or_else(|| "?".into());
    s.push_str(&format!("host = {host}\n"));
    // The list above, then any other key the sysctl/ files set.
    let (server, client) = (Conf::server(), Conf::client());
    let mut keys: Vec<&str> = SYSCTLS.to_vec();
    for k in server.keys.iter().chain(&client.keys) {
        if !keys.contains(&k.key.as_str()) {
            keys.push(&k.key);
        }
    }
    for key in keys {
        let v = sysctl::read(key).unwrap_or_else(|| "unavailable".into());
        s.push_str(&format!("{key} = {v}\n"));
    }
    let show = |v: u64| match v {
        0 => "unavailable".to_string(),
        u64::MAX => "unlimited".to_string(),
        v => v.to_string(),
    };
    let (soft, hard) = rlimit::nofile();
    s.push_str(&format!(
        "rlimit.nofile.soft = {}\nrlimit.nofile.hard = {}\n",
        show(soft),
        show(hard)
    ));
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    s.push_str(&format!("nproc = {nproc}\n"));
    let mem = system::memory();
    s.push_str(&format!(
        "mem.total_kib = {}\nmem.available_kib = {}\n",
        show(mem.total / 1024),
        show(mem.available / 1024)
    ));
    s
}

/// Writes [`tuning_text`] to `path`.
pub fn write_tuning(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    fs::write(path, tuning_text())
}

#[cfg(test)]
mod tests {
    use super::*;
    use redpacket_formats::tuning::parse;

    #[test]
    fn snapshot_has_every_key_and_reads_back() {
        let text = tuning_text();
        let kv = parse(&text);
        for key in SYSCTLS {
            assert!(kv.iter().any(|(k, _)| k == key), "{key} missing");
        }
        let get = |k: &str| kv.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
        assert!(get("rlimit.nofile.soft").is_some());
        assert_ne!(get("nproc").as_deref(), Some("0"));
        // Tabs in multi-value sysctls are folded to single spaces.
        let range = get("net.ipv4.ip_local_port_range").unwrap();
        assert!(!range.contains('\t'));
    }
}
