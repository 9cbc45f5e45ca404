//! Splitting a user-to-user red packet into random shares.
//!
//! The old server could hand out 0 cents and never checked that shares added up. Here a
//! split of `amount` cents into `k` shares is a uniformly random *composition*: `k - 1`
//! distinct cut points drawn from `1..amount`, so every share is at least one cent and
//! the shares add up to `amount` exactly, by construction.

use rand::Rng;
use redpacket_protocol::MAX_RECIPIENTS;

/// Shares of one packet, in the order recipients will grab them.
pub type Shares = [u32; MAX_RECIPIENTS];

/// Splits `amount` cents into `k` random shares (`1 <= k <= MAX_RECIPIENTS`), each at
/// least one cent; `None` when that is impossible (`amount < k`) or `k` is out of range.
pub fn split(amount: u32, k: usize, rng: &mut impl Rng) -> Option<Shares> {
    if k == 0 || k > MAX_RECIPIENTS || (amount as usize) < k {
        return None;
    }
    // Cut points in 1..amount, distinct; with k <= 3 a rejection loop is the cheapest way.
    let mut cuts = [0u32; MAX_RECIPIENTS + 1];
    let mut n = 0;
    while n < k - 1 {
        let c = rng.random_range(1..amount);
        if !cuts[..n].contains(&c) {
            cuts[n] = c;
            n += 1;
        }
    }
    cuts[n] = amount;
    cuts[..=n].sort_unstable();
    let mut shares = [0u32; MAX_RECIPIENTS];
    let mut prev = 0;
    for (share, cut) in shares.iter_mut().zip(&cuts[..k]) {
        *share = cut - prev;
        prev = *cut;
    }
    Some(shares)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn shares_are_at_least_one_cent_and_add_up_exactly() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..200_000 {
            let k = rng.random_range(1..=MAX_RECIPIENTS);
            let amount = match rng.random_range(0..3) {
                0 => k as u32,                             // the tightest case
                1 => rng.random_range(k as u32..100),      // small amounts
                _ => rng.random_range(k as u32..u32::MAX), // anything
            };
            let s = split(amount, k, &mut rng).unwrap();
            assert!(s[..k].iter().all(|&x| x >= 1), "{s:?}");
            assert!(s[k..].iter().all(|&x| x == 0), "{s:?}");
            let sum: u64 = s.iter().map(|&x| u64::from(x)).sum();
            assert_eq!(sum, u64::from(amount));
        }
    }

    #[test]
    fn impossible_splits_are_refused() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        assert_eq!(split(2, 3, &mut rng), None);
        assert_eq!(split(0, 1, &mut rng), None);
        assert_eq!(split(100, 0, &mut rng), None);
        assert_eq!(split(100, MAX_RECIPIENTS + 1, &mut rng), None);
        assert_eq!(split(3, 3, &mut rng), Some([1, 1, 1]));
    }

    #[test]
    fn shares_are_random_not_fixed() {
        // Over many splits of 300 cents in 3, the first share takes many values and
        // averages near a third of the amount (uniform compositions are symmetric).
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut seen = std::collections::HashSet::new();
        let mut total = 0u64;
        let n = 30_000;
        for _ in 0..n {
            let s = split(300, 3, &mut rng).unwrap();
            seen.insert(s[0]);
            total += u64::from(s[0]);
        }
        assert!(
            seen.len() > 250,
            "only {} distinct first shares",
            seen.len()
        );
        let mean = total as f64 / n as f64;
        assert!((mean - 100.0).abs() < 3.0, "mean first share {mean}");
    }
}
