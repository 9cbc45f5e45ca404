//! Checks, before any socket opens, that this process can hold the users asked for.
//!
//! Three limits bite a load generator: open files (one per user, RLIMIT_NOFILE, whose
//! soft value we raise to the hard one), ephemeral ports (one per user per source
//! address and server address) and memory. Each failed check is one line saying what to
//! raise, or to split the users over `--procs N` processes.

/// File descriptors kept for everything but users (epoll sets, stdio, HTTP, files).
pub const SPARE_FDS: u64 = 64;
/// Memory budgeted per user in this process, bytes (engine state is ~100 B; the rest is
/// headroom for the allocator and the kernel's per-socket user-space share).
pub const BYTES_PER_USER: u64 = 1024;

/// Raises the soft open-files limit to the hard one; returns the soft limit now in force.
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    if lim.rlim_cur < lim.rlim_max {
        let want = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: want is a valid rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            return want.rlim_max;
        }
    }
    lim.rlim_cur
}

/// The ephemeral port range's size (`net.ipv4.ip_local_port_range`).
pub fn ephemeral_ports() -> u64 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|x| x.parse::<u64>().ok());
            let (lo, hi) = (it.next()??, it.next()??);
            Some(hi.saturating_sub(lo) + 1)
        })
        .unwrap_or(28_232)
}

/// MemAvailable from /proc/meminfo, bytes.
pub fn mem_available() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemAvailable:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// What one process is asked to hold and what it has.
#[derive(Clone, Copy, Debug)]
pub struct Need {
    /// Users this process connects.
    pub users: u64,
    /// Open files this process may have (after raising).
    pub nofile: u64,
    /// Ephemeral ports per (source address, server address) pair.
    pub ports: u64,
    /// Distinct source addresses (1 when the kernel chooses).
    pub sources: u64,
    /// Server addresses the users are spread over.
    pub servers: u64,
    /// Memory available, bytes, if known.
    pub mem: Option<u64>,
    /// Processes the users are split over.
    pub procs: u64,
}

/// `Err(one line)` when `need` cannot be met, saying what to change.
pub fn check(n: &Need) -> Result<(), String> {
    if n.users + SPARE_FDS > n.nofile {
        let procs = (n.users * n.procs).div_ceil(n.nofile.saturating_sub(SPARE_FDS).max(1));
        return Err(format!(
            "{} users need {} open files but this process may open {}: raise `ulimit -n` \
             (hard limit, e.g. /etc/security/limits.conf nofile) or use --procs {}",
            n.users,
            n.users + SPARE_FDS,
            n.nofile,
            procs.max(n.procs + 1)
        ));
    }
    // All processes share the host's ports: count every user of every process.
    let total = n.users * n.procs;
    let capacity = n.ports * n.sources * n.servers;
    if total > capacity {
        return Err(format!(
            "{total} users need {total} ephemeral ports but {} source address(es) x {} \
             server(s) x {} ports give {capacity}: add --source-addrs (e.g. 127.0.0.2-127.0.0.9) \
             or widen net.ipv4.ip_local_port_range",
            n.sources, n.servers, n.ports
        ));
    }
    if let Some(mem) = n.mem {
        let need = total * BYTES_PER_USER;
        if need > mem {
            return Err(format!(
                "{total} users need about {} MiB but only {} MiB is available: use fewer \
                 --users per host or add memory",
                need >> 20,
                mem >> 20
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(users: u64) -> Need {
        Need {
            users,
            nofile: 20_000,
            ports: 28_000,
            sources: 1,
            servers: 1,
            mem: Some(1 << 30),
            procs: 1,
        }
    }

    #[test]
    fn fits_or_says_what_to_raise() {
        assert!(check(&need(10_000)).is_ok());
        let e = check(&need(60_000)).unwrap_err();
        assert!(e.contains("--procs 4"), "{e}");
        let mut n = need(15_000);
        n.procs = 2;
        let e = check(&n).unwrap_err();
        assert!(e.contains("--source-addrs"), "{e}");
        n.sources = 2;
        assert!(check(&n).is_ok());
        let mut n = need(10_000);
        n.mem = Some(1 << 20);
        assert!(check(&n).unwrap_err().contains("MiB"));
    }

    #[test]
    fn reads_this_host() {
        assert!(raise_nofile() >= 64);
        assert!(ephemeral_ports() > 0);
    }
}
