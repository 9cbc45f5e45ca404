//! User id ranges and how they are cut: across servers, processes and worker threads.
//!
//! One rule everywhere, the fleet's: a range is split into contiguous slices of nearly
//! equal size, in order, the first slices taking one extra user when it does not divide
//! evenly. Kept pure so the sharding every host relies on is tested once, here.

use std::fmt;
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
}
