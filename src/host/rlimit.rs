//! What this host allows: read at start, so the server says plainly how many
//! connections it can hold and what to raise, instead of failing obscurely later.

use std::fmt::Write as _;

/// Descriptors kept back for listeners, the control server, logs and the like.
pub const FD_RESERVE: u64 = 64;

/// The limits that bound how many users one process can hold.
#[derive(Clone, Debug, Default)]
pub struct HostLimits {
    /// RLIMIT_NOFILE soft limit after raising it to the hard limit.
    pub nofile: u64,
    pub nofile_hard: u64,
    /// `net.core.somaxconn`: the kernel's cap on a listen backlog.
    pub somaxconn: Option<u64>,
    /// `net.ipv4.ip_local_port_range`: ephemeral ports (for clients of this host).
    pub port_range: Option<(u16, u16)>,
    /// `fs.file-max`: descriptors for the whole system.
    pub file_max: Option<u64>,
    /// MemAvailable, bytes.
    pub mem_available: Option<u64>,
}

/// Raises the soft open-files limit to the hard one; returns (soft, hard) after.
pub fn raise_nofile() -> (u64, u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read or write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return (0, 0);
        }
        if r.rlim_cur < r.rlim_max {
            let want = libc::rlimit {
                rlim_cur: r.rlim_max,
                rlim_max: r.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                r.rlim_cur = r.rlim_max;
            }
        }
    }
    (r.rlim_cur, r.rlim_max)
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Parses `/proc/meminfo` for MemAvailable, in bytes.
pub fn parse_mem_available(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

impl HostLimits {
    /// Reads this host's limits, raising the soft open-files limit on the way.
    pub fn read() -> HostLimits {
        let (nofile, nofile_hard) = raise_nofile();
        HostLimits {
            nofile,
            nofile_hard,
            somaxconn: read_trim("/proc/sys/net/core/somaxconn").and_then(|s| s.parse().ok()),
            port_range: read_trim("/proc/sys/net/ipv4/ip_local_port_range").and_then(|s| {
                let mut it = s.split_whitespace().map(|x| x.parse::<u16>());
                Some((it.next()?.ok()?, it.next()?.ok()?))
            }),
            file_max: read_trim("/proc/sys/fs/file-max").and_then(|s| s.parse().ok()),
            mem_available: read_trim("/proc/meminfo").and_then(|m| parse_mem_available(&m)),
        }
    }

    /// Connections this process can hold: open files less a reserve.
    pub fn max_conns(&self) -> u64 {
        self.nofile.saturating_sub(FD_RESERVE).max(1)
    }

    /// A plain account of what bounds the server, with what to raise for `goal` users.
    pub fn report(&self, goal: u64, backlog: i32) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "open files {} (hard {}): room for {} connections",
            self.nofile,
            self.nofile_hard,
            self.max_conns()
        );
        if self.max_conns() < goal {
            let _ = write!(
                s,
                "; for {goal} raise nofile to {} (limits.conf / LimitNOFILE=, fs.nr_open)",
                goal + FD_RESERVE
            );
        }
        if let Some(m) = self.somaxconn {
            let _ = write!(s, "; somaxconn {m}");
            if (m as i64) < i64::from(backlog) {
                let _ = write!(
                    s,
                    " caps the backlog of {backlog}: raise net.core.somaxconn"
                );
            }
        }
        if let Some(f) = self.file_max {
            if f < goal {
                let _ = write!(s, "; fs.file-max {f} is below {goal}");
            }
        }
        if let Some(m) = self.mem_available {
            let _ = write!(s, "; {} MiB memory available", m >> 20);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_parses() {
        let m = "MemTotal:  100 kB\nMemAvailable:    2048 kB\n";
        assert_eq!(parse_mem_available(m), Some(2048 * 1024));
        assert_eq!(parse_mem_available("nothing"), None);
    }

    #[test]
    fn the_report_names_what_to_raise() {
        let l = HostLimits {
            nofile: 20_000,
            nofile_hard: 20_000,
            somaxconn: Some(4096),
            ..Default::default()
        };
        let r = l.report(1_000_000, 65535);
        assert!(r.contains("raise nofile to 1000064"), "{r}");
        assert!(r.contains("net.core.somaxconn"), "{r}");
        assert_eq!(l.max_conns(), 20_000 - FD_RESERVE);
    }

    #[test]
    fn reading_this_host_works() {
        let l = HostLimits::read();
        assert!(l.nofile > 0);
        assert_eq!(l.nofile, l.nofile_hard, "soft limit raised to hard");
    }
}
