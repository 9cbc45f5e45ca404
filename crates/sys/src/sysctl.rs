//! Live kernel settings, read from `/proc/sys` (sysinfo does not read sysctls).
//!
//! A key is read in the network namespace of the calling process: per-namespace keys
//! (`net.core.somaxconn`) show that namespace's value, and host-wide `net.*` keys
//! (`net.ipv4.tcp_mem`) are not visible inside a namespace other than the host's.

/// The `/proc/sys` path of a dotted key (`net.core.somaxconn`).
pub fn path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

/// A key's value with runs of blanks (tabs in multi-number values) folded to one
/// space; `None` when this kernel or namespace has no such key.
pub fn read(key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path(key)).ok()?;
    Some(normalize(&text))
}

/// Folds blanks: `"4096\t131072  6291456\n"` -> `"4096 131072 6291456"`.
pub fn normalize(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A key holding one number.
pub fn read_u64(key: &str) -> Option<u64> {
    read(key)?.parse().ok()
}

/// `net.ipv4.ip_local_port_range`: (lowest, highest) ephemeral port.
pub fn port_range() -> Option<(u64, u64)> {
    let v = read("net.ipv4.ip_local_port_range")?;
    let mut it = v.split(' ').map(|x| x.parse::<u64>().ok());
    Some((it.next()??, it.next()??))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_proc_sys_and_values_fold() {
        assert_eq!(path("net.core.somaxconn"), "/proc/sys/net/core/somaxconn");
        assert_eq!(normalize("4096\t131072  6291456\n"), "4096 131072 6291456");
        assert!(read_u64("net.core.somaxconn").is_some_and(|v| v > 0));
        let (lo, hi) = port_range().expect("every Linux has a port range");
        assert!(lo <= hi);
        assert_eq!(read("net.no.such_key"), None);
    }
}
