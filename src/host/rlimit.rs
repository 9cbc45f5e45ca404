//! The open-files limit (RLIMIT_NOFILE): one descriptor per connection, so it is the
//! first thing that stops a process from holding many users.
//!
//! Both programs raise their soft limit to the hard one at start; only root (or a
//! limits.conf / `LimitNOFILE=` entry) can raise the hard one, up to `fs.nr_open`.

/// Descriptors kept back for everything but connections: listeners, the control
/// server, epoll, stdio, log and result files.
pub const FD_RESERVE: u64 = 64;

/// The soft and hard open-files limits, as they are now. `RLIM_INFINITY` reads as
/// `u64::MAX`.
pub fn nofile() -> (u64, u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return (0, 0);
    }
    (r.rlim_cur, r.rlim_max)
}

/// Raises the soft open-files limit to the hard one; returns (soft, hard) after.
pub fn raise_nofile() -> (u64, u64) {
    let (soft, hard) = nofile();
    if soft < hard {
        let want = libc::rlimit {
            rlim_cur: hard,
            rlim_max: hard,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            return (hard, hard);
        }
    }
    (soft, hard)
}

/// Connections one process can hold with `nofile` descriptors (at least 1).
pub fn conns_for(nofile: u64) -> u64 {
    conns_for_with(nofile, FD_RESERVE)
}

/// Connections one process can hold with `nofile` descriptors when `reserve` of them are
/// kept for other things (at least 1).
pub fn conns_for_with(nofile: u64, reserve: u64) -> u64 {
    nofile.saturating_sub(reserve).max(1)
}

/// Descriptors the server keeps back beyond [`FD_RESERVE`]: the control server's
/// connections (its cap, the burst it may accept before evicting, its listener and a
/// spare) and each worker's own (runtime, listener, spare). One home for the figure the
/// server's default `--max-conns` and `check` both use.
pub fn server_set_apart(control_max_conns: u64, workers: usize) -> u64 {
    control_max_conns + crate::control::EVICT_BURST as u64 + 2 + 4 * workers as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_reaches_the_hard_limit() {
        let (soft, hard) = raise_nofile();
        assert!(soft > 0);
        assert_eq!(soft, hard, "soft limit raised to hard");
        assert_eq!(nofile(), (soft, hard));
        assert_eq!(conns_for(20_000), 19_936);
        assert_eq!(conns_for(10), 1);
    }
}
