//! The open-files limit (RLIMIT_NOFILE): one descriptor per connection, so it is the
//! first thing that stops a process from holding many users.
//!
//! Both programs raise their soft limit to the hard one at start; only root (or a
//! limits.conf / `LimitNOFILE=` entry) can raise the hard one, up to `fs.nr_open`.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_reaches_the_hard_limit() {
        let (soft, hard) = raise_nofile();
        assert!(soft > 0);
        assert_eq!(soft, hard, "soft limit raised to hard");
        assert_eq!(nofile(), (soft, hard));
    }
}
