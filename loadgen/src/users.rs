//! User id ranges and how they are cut: across servers, processes and worker threads.
//!
//! One rule for an even cut, the fleet's: a range is split into contiguous slices of
//! nearly equal size, in order, the first slices taking one extra user when it does not
//! divide evenly. Servers are given either bare (`ADDR`: the run's users cut evenly over
//! them) or each with its own range (`ADDR=START..END`, as the fleet's plan gives them);
//! [`Targets::new`] is the one place that turns either into "user u connects to server
//! s". Kept pure so the sharding every host relies on is tested once, here.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// Users `start..end` (end excluded), as on the command line: `0..60000`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserRange {
    pub start: u32,
    pub end: u32,
}

impl UserRange {
    pub fn new(start: u32, end: u32) -> UserRange {
        UserRange { start, end }
    }
    pub fn len(&self) -> u32 {
        self.end.saturating_sub(self.start)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn contains(&self, user: u32) -> bool {
        (self.start..self.end).contains(&user)
    }
}

impl fmt::Display for UserRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

impl FromStr for UserRange {
    type Err = String;
    /// `A..B` (B excluded) or a bare count `N` meaning `0..N`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("bad user range {s:?}: expected START..END (END excluded) or a count");
        let (a, b) = match s.split_once("..") {
            Some((a, b)) => (
                a.trim().parse::<u32>().map_err(|_| bad())?,
                b.trim().parse::<u32>().map_err(|_| bad())?,
            ),
            None => (0, s.trim().parse::<u32>().map_err(|_| bad())?),
        };
        if b <= a {
            return Err(format!("empty user range {s:?}: END must be above START"));
        }
        Ok(UserRange::new(a, b))
    }
}

/// Splits `range` into `n` contiguous slices in order, sizes differing by at most one
/// (the first `len % n` slices get the extra user). `n == 0` gives no slices.
pub fn split_even(range: UserRange, n: usize) -> Vec<UserRange> {
    if n == 0 {
        return Vec::new();
    }
    let len = u64::from(range.len());
    let n64 = n as u64;
    let (base, extra) = (len / n64, len % n64);
    let mut out = Vec::with_capacity(n);
    let mut at = u64::from(range.start);
    for i in 0..n64 {
        let size = base + u64::from(i < extra);
        out.push(UserRange::new(at as u32, (at + size) as u32));
        at += size;
    }
    out
}

/// Which of `n` slices of `range` (as cut by [`split_even`]) holds `user`.
pub fn slice_of(range: UserRange, n: usize, user: u32) -> Option<usize> {
    if n == 0 || !range.contains(user) {
        return None;
    }
    let len = u64::from(range.len());
    let n64 = n as u64;
    let (base, extra) = (len / n64, len % n64);
    let off = u64::from(user - range.start);
    let big = (base + 1) * extra;
    let i = if off < big {
        off / (base + 1)
    } else {
        extra + (off - big) / base.max(1)
    };
    Some(i as usize)
}

/// One `--server` entry: an address, with or without the users it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerTarget {
    pub addr: SocketAddr,
    /// The server's whole range of users (`ADDR=START..END`); `None` for a bare `ADDR`,
    /// whose share is cut evenly from the run's users.
    pub users: Option<UserRange>,
}

impl ServerTarget {
    /// A bare address: its users come from the even cut.
    pub fn bare(addr: SocketAddr) -> ServerTarget {
        ServerTarget { addr, users: None }
    }
}

impl fmt::Display for ServerTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.users {
            Some(r) => write!(f, "{}={r}", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

impl FromStr for ServerTarget {
    type Err = String;
    /// `ADDR` or `ADDR=START..END` (END excluded; a bare count `N` means `0..N`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, users) = match s.split_once('=') {
            Some((a, r)) => (a, Some(r.parse::<UserRange>()?)),
            None => (s, None),
        };
        let addr = addr.trim().parse::<SocketAddr>().map_err(|_| {
            format!("bad server {s:?}: expected IP:PORT or IP:PORT=START..END, e.g. 127.0.0.1:1025=0..5000")
        })?;
        Ok(ServerTarget { addr, users })
    }
}

/// Where each user connects: servers by contiguous user ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Targets {
    /// Each server's range, in the order the servers were given.
    pub shards: Vec<(UserRange, SocketAddr)>,
}

impl Targets {
    /// The rule for `--server`. Bare addresses: `all` (the whole run's users) cut evenly
    /// over them in order. Addresses with ranges: as given, which must not overlap and
    /// must hold every user of `users` (this process's); a range may reach beyond
    /// `users` (it is the server's whole range, of which this run drives a part). The
    /// two forms do not mix.
    pub fn new(
        servers: &[ServerTarget],
        all: UserRange,
        users: UserRange,
    ) -> Result<Targets, String> {
        if servers.is_empty() {
            return Err("--server needs at least one address".into());
        }
        let ranged = servers.iter().filter(|s| s.users.is_some()).count();
        if ranged == 0 {
            let addrs = servers.iter().map(|s| s.addr);
            return Ok(Targets {
                shards: split_even(all, servers.len())
                    .into_iter()
                    .zip(addrs)
                    .collect(),
            });
        }
        if ranged < servers.len() {
            let bare: Vec<String> = servers
                .iter()
                .filter(|s| s.users.is_none())
                .map(|s| s.addr.to_string())
                .collect();
            return Err(format!(
                "--server: give every server its range of users (ADDR=START..END) or none; {} has none",
                bare.join(", ")
            ));
        }
        let shards: Vec<(UserRange, SocketAddr)> = servers
            .iter()
            .filter_map(|s| s.users.map(|r| (r, s.addr)))
            .collect();
        let given = || {
            servers
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut sorted = shards.clone();
        sorted.sort_by_key(|(r, _)| (r.start, r.end));
        for w in sorted.windows(2) {
            let ((a, x), (b, y)) = (w[0], w[1]);
            if b.start < a.end {
                return Err(format!(
                    "--server ranges overlap: {x}={a} and {y}={b} both hold users {}",
                    UserRange::new(b.start, a.end.min(b.end))
                ));
            }
        }
        // The first users of `users` that no range holds, if any.
        let mut at = users.start;
        for (r, _) in &sorted {
            if at >= users.end || r.start > at {
                break;
            }
            at = at.max(r.end);
        }
        if at < users.end {
            let next = sorted
                .iter()
                .map(|(r, _)| r.start)
                .find(|s| *s > at)
                .unwrap_or(users.end)
                .min(users.end);
            return Err(format!(
                "--server ranges leave users {} of --users {users} without a server (given: {})",
                UserRange::new(at, next),
                given()
            ));
        }
        Ok(Targets { shards })
    }

    pub fn server_for(&self, user: u32) -> Option<SocketAddr> {
        self.shards
            .iter()
            .find(|(r, _)| r.contains(user))
            .map(|(_, a)| *a)
    }

    /// Distinct server addresses that hold at least one of `users`: the count the
    /// host's limits (`check --servers`) are judged by.
    pub fn servers_of(&self, users: UserRange) -> usize {
        let mut addrs: Vec<SocketAddr> = self
            .shards
            .iter()
            .filter(|(r, _)| r.start.max(users.start) < r.end.min(users.end))
            .map(|(_, a)| *a)
            .collect();
        addrs.sort();
        addrs.dedup();
        addrs.len()
    }

    /// Users of every server together (the run's users, when bare).
    pub fn total_users(&self) -> u64 {
        self.shards.iter().map(|(r, _)| u64::from(r.len())).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_and_counts() {
        assert_eq!("0..60000".parse(), Ok(UserRange::new(0, 60000)));
        assert_eq!("500".parse(), Ok(UserRange::new(0, 500)));
        assert!("5..5".parse::<UserRange>().is_err());
        assert!("9..3".parse::<UserRange>().is_err());
        assert!("a..3".parse::<UserRange>().is_err());
    }

    #[test]
    fn even_split_is_contiguous_ordered_and_complete() {
        for (len, n) in [(10u32, 3usize), (9, 3), (2, 5), (60000, 7), (1, 1)] {
            let r = UserRange::new(100, 100 + len);
            let parts = split_even(r, n);
            assert_eq!(parts.len(), n);
            assert_eq!(parts[0].start, r.start);
            assert_eq!(parts[n - 1].end, r.end);
            for w in parts.windows(2) {
                assert_eq!(w[0].end, w[1].start);
                assert!(w[0].len() >= w[1].len() && w[0].len() - w[1].len() <= 1);
            }
        }
        assert_eq!(
            split_even(UserRange::new(0, 10), 3),
            vec![
                UserRange::new(0, 4),
                UserRange::new(4, 7),
                UserRange::new(7, 10)
            ]
        );
    }

    #[test]
    fn slice_of_agrees_with_split_even() {
        for (len, n) in [(10u32, 3usize), (9, 3), (2, 5), (1000, 7), (7, 7)] {
            let r = UserRange::new(5, 5 + len);
            for (i, part) in split_even(r, n).iter().enumerate() {
                for u in part.start..part.end {
                    assert_eq!(slice_of(r, n, u), Some(i), "len {len} n {n} user {u}");
                }
            }
            assert_eq!(slice_of(r, n, 4), None);
            assert_eq!(slice_of(r, n, 5 + len), None);
        }
    }

    fn t(s: &str) -> ServerTarget {
        s.parse().unwrap()
    }

    fn targets(list: &str, users: &str) -> Result<Targets, String> {
        let servers: Vec<ServerTarget> = list.split(',').map(t).collect();
        let users: UserRange = users.parse().unwrap();
        Targets::new(&servers, users, users)
    }

    #[test]
    fn server_targets_parse_bare_or_ranged_and_print_back() {
        let a: SocketAddr = "198.18.0.10:1025".parse().unwrap();
        assert_eq!(t("198.18.0.10:1025"), ServerTarget::bare(a));
        assert_eq!(
            t("198.18.0.10:1025=0..1334"),
            ServerTarget {
                addr: a,
                users: Some(UserRange::new(0, 1334))
            }
        );
        assert_eq!(
            t("198.18.0.10:1025=500").users,
            Some(UserRange::new(0, 500))
        );
        assert_eq!(t("[::1]:7=3..9").addr, "[::1]:7".parse().unwrap());
        for s in [
            "198.18.0.10:1025",
            "198.18.0.10:1025=1334..2667",
            "[::1]:7=3..9",
        ] {
            assert_eq!(t(s).to_string(), s);
            assert_eq!(t(&t(s).to_string()), t(s));
        }
        for bad in [
            "host:1025",
            "198.18.0.10",
            "198.18.0.10:1025=",
            "198.18.0.10:1025=5..5",
            "198.18.0.10:1025=a..b",
        ] {
            assert!(bad.parse::<ServerTarget>().is_err(), "{bad}");
        }
        let e = "localhost:1=0..5".parse::<ServerTarget>().unwrap_err();
        assert!(e.contains("IP:PORT=START..END"), "{e}");
    }

    #[test]
    fn bare_servers_share_the_run_evenly_in_order() {
        let tg = targets("127.0.0.1:1,127.0.0.1:2,127.0.0.1:3", "100..110").unwrap();
        let got: Vec<u16> = (100..110)
            .map(|u| tg.server_for(u).unwrap().port())
            .collect();
        assert_eq!(got, [1, 1, 1, 1, 2, 2, 2, 3, 3, 3]);
        assert_eq!(tg.server_for(99), None);
        assert_eq!(tg.server_for(110), None);
        // A process's slice of a larger run: the cut is the run's, not the slice's.
        let servers = [t("127.0.0.1:1"), t("127.0.0.1:2")];
        let tg = Targets::new(&servers, UserRange::new(0, 10), UserRange::new(5, 10)).unwrap();
        assert_eq!(tg.server_for(5).unwrap().port(), 2);
        assert_eq!(tg.servers_of(UserRange::new(5, 10)), 1);
        assert_eq!(tg.total_users(), 10);
    }

    #[test]
    fn ranged_servers_hold_the_users_they_are_given() {
        // A client's slice 0..2667 over two instances of 0..2000 and 2000..4000.
        let tg = targets(
            "198.18.0.10:1025=0..2000,198.18.0.10:1026=2000..4000",
            "0..2667",
        )
        .unwrap();
        assert_eq!(tg.server_for(0).unwrap().port(), 1025);
        assert_eq!(tg.server_for(1999).unwrap().port(), 1025);
        assert_eq!(tg.server_for(2000).unwrap().port(), 1026);
        assert_eq!(tg.server_for(2666).unwrap().port(), 1026);
        assert_eq!(tg.server_for(3999).unwrap().port(), 1026);
        assert_eq!(tg.server_for(4000), None);
        assert_eq!(tg.servers_of(UserRange::new(0, 2667)), 2);
        assert_eq!(tg.servers_of(UserRange::new(0, 2000)), 1);
        assert_eq!(tg.total_users(), 4000);
        // Order given is kept (campaigns pair them with --server-control), any order works.
        let tg = targets("127.0.0.1:2=5..10,127.0.0.1:1=0..5", "0..10").unwrap();
        assert_eq!(
            tg.shards[0],
            (UserRange::new(5, 10), "127.0.0.1:2".parse().unwrap())
        );
        assert_eq!(tg.server_for(4).unwrap().port(), 1);
        // The ranges may leave out users this run does not drive.
        assert!(targets("127.0.0.1:1=0..5,127.0.0.1:2=8..10", "0..5").is_ok());
        assert!(targets("127.0.0.1:1=0..5,127.0.0.1:2=8..10", "8..10").is_ok());
    }

    #[test]
    fn ranged_servers_must_not_overlap_and_must_cover_the_users() {
        let e = targets("127.0.0.1:1=0..6,127.0.0.1:2=5..10", "0..10").unwrap_err();
        assert!(e.contains("overlap") && e.contains("users 5..6"), "{e}");
        let e = targets("127.0.0.1:2=5..10,127.0.0.1:1=0..60", "0..10").unwrap_err();
        assert!(e.contains("overlap") && e.contains("users 5..10"), "{e}");
        let e = targets("127.0.0.1:1=0..4,127.0.0.1:2=6..10", "0..10").unwrap_err();
        assert!(e.contains("users 4..6 of --users 0..10"), "{e}");
        assert!(e.contains("127.0.0.1:1=0..4,127.0.0.1:2=6..10"), "{e}");
        let e = targets("127.0.0.1:1=2..10", "0..10").unwrap_err();
        assert!(e.contains("users 0..2 "), "{e}");
        let e = targets("127.0.0.1:1=0..8", "0..10").unwrap_err();
        assert!(e.contains("users 8..10 "), "{e}");
        let e = targets("127.0.0.1:1=20..30", "0..10").unwrap_err();
        assert!(e.contains("users 0..10 "), "{e}");
    }

    #[test]
    fn bare_and_ranged_servers_do_not_mix() {
        let e = targets("127.0.0.1:1=0..5,127.0.0.1:2", "0..10").unwrap_err();
        assert!(e.contains("127.0.0.1:2 has none"), "{e}");
        assert!(!e.contains('\n'));
        assert!(Targets::new(&[], UserRange::new(0, 1), UserRange::new(0, 1)).is_err());
    }
}
