//! Dividing a quantity among claimants in proportion to their demand.
//!
//! Fairness of the shake draw rests on this one function: each tick, new packets go to
//! workers (and inside a worker to SETs) in proportion to the shake requests each saw, so
//! a request's chance to win does not depend on which core or SET holds its connection.
//! The overload budget is divided the same way.
//!
//! Parts are whole packets, and a tick often has only a few to hand out, so how the
//! rounding falls matters: a fixed rule (largest remainder, ties to the first claimant)
//! hands the same claimant the odd packet tick after tick and skews win rates by tens of
//! percent. Rounding here is *systematic sampling* with a random offset: each part is the
//! floor or the ceiling of its exact share, the parts add up exactly, and over ticks each
//! claimant's expected part is its exact share.

/// Divides `total` among claimants in proportion to `weights`, so the parts add up to
/// `total` exactly; `offset` in `[0, 1)` (random, from the caller) decides where the
/// rounding falls. `caps[i]` bounds part `i`; what the caps refuse is returned. With
/// every weight zero, `total` is split evenly.
pub fn apportion(
    total: u64,
    weights: &[u64],
    caps: &[u64],
    offset: f64,
    out: &mut Vec<u64>,
) -> u64 {
    debug_assert_eq!(weights.len(), caps.len());
    out.clear();
    out.resize(weights.len(), 0);
    if weights.is_empty() {
        return total;
    }
    let mut left = total;
    // A few rounds: parts a cap cut short go back to the claimants still under their cap.
    for _ in 0..4 {
        if left == 0 {
            break;
        }
        let open: Vec<usize> = (0..weights.len()).filter(|&i| out[i] < caps[i]).collect();
        if open.is_empty() {
            break;
        }
        let wsum: u128 = open.iter().map(|&i| u128::from(weights[i])).sum();
        let weight = |i: usize| if wsum == 0 { 1 } else { u128::from(weights[i]) };
        let wsum = if wsum == 0 { open.len() as u128 } else { wsum };
        let mut given = 0u64;
        let mut rema: Vec<(u128, usize)> = Vec::with_capacity(open.len());
        for &i in &open {
            let exact = u128::from(left) * weight(i);
            let part = (exact / wsum) as u64;
            let room = caps[i] - out[i];
            let part = part.min(room);
            out[i] += part;
            given += part;
            if out[i] < caps[i] {
                rema.push((exact % wsum, i));
            }
        }
        // Units left by rounding down: one each to the claimants hit by points spaced one
        // unit apart (offset, offset + 1, ...) along their remainders laid end to end.
        // A remainder is under one unit, so no claimant gets two.
        let spare = u128::from(left - given);
        let start = ((offset.clamp(0.0, 1.0) * wsum as f64) as u128).min(wsum - 1);
        let (mut from, mut hit) = (0u128, 0u128);
        for &(rem, i) in &rema {
            let to = from + rem;
            let point = start + hit * wsum;
            if hit < spare && point >= from && point < to && weight(i) > 0 {
                out[i] += 1;
                given += 1;
                hit += 1;
            }
            from = to;
        }
        left -= given;
    }
    left
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn ap(total: u64, w: &[u64], caps: &[u64]) -> (Vec<u64>, u64) {
        let mut out = Vec::new();
        let left = apportion(total, w, caps, 0.0, &mut out);
        (out, left)
    }

    #[test]
    fn parts_follow_weights_and_add_up() {
        let (out, left) = ap(100, &[1, 3], &[u64::MAX, u64::MAX]);
        assert_eq!((out, left), (vec![25, 75], 0));
        let (out, left) = ap(10, &[1, 1, 1], &[u64::MAX; 3]);
        assert_eq!(out.iter().sum::<u64>() + left, 10);
        assert!(out.iter().all(|&x| x == 3 || x == 4));
    }

    #[test]
    fn rounding_is_unbiased_over_many_ticks() {
        // 10 units a tick at 3:1 is 7.5 : 2.5; a fixed rounding rule would give 8 : 2
        // every tick. With random offsets the averages come out exact.
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let (mut a, mut b) = (0u64, 0u64);
        let mut out = Vec::new();
        let ticks = 20_000;
        for _ in 0..ticks {
            let left = apportion(10, &[90, 30], &[u64::MAX; 2], rng.random(), &mut out);
            assert_eq!(left, 0);
            assert!(out == [8, 2] || out == [7, 3], "{out:?}");
            a += out[0];
            b += out[1];
        }
        let share = a as f64 / (a + b) as f64;
        assert!(
            (share - 0.75).abs() < 0.005,
            "first claimant's share {share}"
        );
    }

    #[test]
    fn zero_weights_split_evenly() {
        let (out, left) = ap(9, &[0, 0, 0], &[u64::MAX; 3]);
        assert_eq!((out, left), (vec![3, 3, 3], 0));
    }

    #[test]
    fn caps_hold_and_the_rest_flows_to_others_or_back() {
        let (out, left) = ap(100, &[1, 1], &[10, u64::MAX]);
        assert_eq!((out, left), (vec![10, 90], 0));
        let (out, left) = ap(100, &[1, 1], &[10, 20]);
        assert_eq!((out, left), (vec![10, 20], 70));
    }

    #[test]
    fn randomised_totals_are_conserved_and_proportional() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for _ in 0..5_000 {
            let n = rng.random_range(1..9);
            let w: Vec<u64> = (0..n).map(|_| rng.random_range(0..1000)).collect();
            let caps: Vec<u64> = (0..n)
                .map(|_| {
                    if rng.random_bool(0.3) {
                        rng.random_range(0..50)
                    } else {
                        u64::MAX
                    }
                })
                .collect();
            let total = rng.random_range(0..10_000);
            let (out, left) = ap(total, &w, &caps);
            assert_eq!(out.iter().sum::<u64>() + left, total);
            for i in 0..n {
                assert!(out[i] <= caps[i]);
            }
            if caps.iter().all(|&c| c == u64::MAX) {
                assert_eq!(left, 0);
                let ws: u64 = w.iter().sum();
                for i in 0..n {
                    let ideal = if ws == 0 {
                        total as f64 / n as f64
                    } else {
                        total as f64 * w[i] as f64 / ws as f64
                    };
                    assert!(
                        (out[i] as f64 - ideal).abs() <= 1.0,
                        "{out:?} {w:?} {total}"
                    );
                }
            }
        }
    }
}
