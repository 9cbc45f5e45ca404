//! How one key of a `sysctl/*.conf` file is judged against the live value: pure
//! arithmetic, so every rule is tested without a kernel.

use crate::conf::{numbers, Check, ConfKey};

/// The outcome for one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The live value, or `absent`.
    pub value: String,
    /// The value wanted for the connections asked (scaled when the key says so).
    pub wanted: String,
    pub ok: bool,
    pub judged: bool,
    /// The most connections this key allows as it is, for a key whose value scales with
    /// the count (`scale=conn`, in a file with a target): `Some(0)` when its live value
    /// cannot be read as the file's numbers. `None` for every other key: a fixed
    /// setting does not bound the count, whatever its value (`check` shows it as
    /// advice).
    pub holds: Option<u64>,
}

/// Scales a file value for `asked` connections: ceil(value * asked / target).
pub fn scale(value: i64, asked: u64, target: u64) -> i64 {
    let v = i128::from(value.max(0)) * i128::from(asked);
    let t = i128::from(target.max(1));
    i64::try_from((v + t - 1) / t).unwrap_or(i64::MAX)
}

/// Judges `key` with the live value `live` (`None`: the kernel or this namespace has
/// no such key) for `asked` connections of a file whose values are for `target`.
pub fn judge(key: &ConfKey, live: Option<&str>, asked: u64, target: Option<u64>) -> Verdict {
    let file = key.numbers();
    let (wanted_nums, wanted) = match (key.scale_conn, target) {
        (true, Some(t)) => {
            let w: Vec<i64> = file.iter().map(|&v| scale(v, asked, t)).collect();
            let s = w.iter().map(i64::to_string).collect::<Vec<_>>().join(" ");
            (w, s)
        }
        _ => (file.clone(), key.value.clone()),
    };
    let Some(live) = live else {
        return Verdict {
            value: "absent".into(),
            wanted,
            ok: true,
            judged: false,
            holds: None,
        };
    };
    let value = redpacket_sys::sysctl::normalize(live);
    let mut v = Verdict {
        value: value.clone(),
        wanted,
        ok: true,
        judged: key.check != Check::Info,
        holds: None,
    };
    let live_nums =
        numbers(&value).filter(|n| key.check == Check::Equal || n.len() == wanted_nums.len());
    v.ok = match key.check {
        Check::Info => true,
        Check::Equal => match (&live_nums, numbers(&v.wanted)) {
            (Some(l), Some(w)) => *l == w,
            _ => value == v.wanted,
        },
        Check::AtLeast => live_nums
            .as_ref()
            .is_some_and(|l| l.iter().zip(&wanted_nums).all(|(l, w)| l >= w)),
        Check::AtMost => live_nums
            .as_ref()
            .is_some_and(|l| l.iter().zip(&wanted_nums).all(|(l, w)| l <= w)),
        Check::Range => matches!(
            (live_nums.as_deref(), wanted_nums.as_slice()),
            (Some([llo, lhi]), [wlo, whi]) if llo <= wlo && lhi >= whi
        ),
    };
    v.holds = match (key.scale_conn, target, &live_nums) {
        // live_i >= ceil(f_i * n / t)  <=>  n <= floor(live_i * t / f_i)
        (true, Some(t), Some(l)) if v.judged => l
            .iter()
            .zip(&file)
            .filter(|(_, &f)| f > 0)
            .map(|(&l, &f)| {
                let n = i128::from(l.max(0)) * i128::from(t) / i128::from(f);
                u64::try_from(n).unwrap_or(u64::MAX)
            })
            .min(),
        (true, Some(_), None) if v.judged => Some(0),
        _ => None,
    };
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::Scope;

    fn key(check: Check, value: &str, scale_conn: bool) -> ConfKey {
        ConfKey {
            key: "k.k".into(),
            value: value.into(),
            scope: Scope::Netns,
            check,
            scale_conn,
            limits: "x".into(),
            line: 1,
        }
    }

    fn j(check: Check, file: &str, live: &str) -> Verdict {
        judge(&key(check, file, false), Some(live), 1000, Some(1000))
    }

    #[test]
    fn at_least_and_at_most_go_element_wise() {
        assert!(j(Check::AtLeast, "65535", "65535").ok);
        assert!(j(Check::AtLeast, "65535", "70000").ok);
        let short = j(Check::AtLeast, "65535", "4096");
        assert!(!short.ok && short.judged);
        assert_eq!(
            short.holds, None,
            "a fixed value that is short does not bound the count"
        );
        assert_eq!(j(Check::AtLeast, "65535", "70000").holds, None);
        assert!(j(Check::AtLeast, "1 2 3", "1\t2  3\n").ok);
        assert!(!j(Check::AtLeast, "1 2 3", "1 1 9").ok);
        assert!(
            !j(Check::AtLeast, "1 2 3", "9 9").ok,
            "a different count is short"
        );
        assert!(!j(Check::AtLeast, "5", "lots").ok);
        assert!(j(Check::AtMost, "10", "5").ok);
        assert!(!j(Check::AtMost, "10", "60").ok);
        assert!(!j(Check::AtMost, "10 10", "5 11").ok);
    }

    #[test]
    fn equal_compares_numbers_as_numbers_and_text_as_text() {
        assert!(j(Check::Equal, "1", "1").ok);
        assert!(j(Check::Equal, "1 2", "1\t2").ok);
        assert!(!j(Check::Equal, "1", "2").ok);
        assert!(j(Check::Equal, "bbr", "bbr").ok);
        assert!(!j(Check::Equal, "bbr", "cubic").ok);
    }

    #[test]
    fn range_must_contain_the_wanted_one() {
        assert!(j(Check::Range, "1024 65535", "1024 65535").ok);
        assert!(j(Check::Range, "10000 60000", "1024 65535").ok);
        assert!(!j(Check::Range, "1024 65535", "32768 60999").ok);
        assert!(!j(Check::Range, "1024 65535", "1024 60999").ok);
        assert!(!j(Check::Range, "1024 65535", "1024").ok);
    }

    #[test]
    fn info_is_shown_never_judged_and_absent_keys_are_not_judged() {
        let v = j(Check::Info, "0", "50");
        assert!(v.ok && !v.judged && v.holds.is_none());
        assert_eq!(v.value, "50");
        let v = judge(&key(Check::AtLeast, "5", false), None, 1, Some(1));
        assert!(v.ok && !v.judged);
        assert_eq!(v.value, "absent");
    }

    #[test]
    fn scale_conn_scales_the_wanted_value_and_gives_a_capacity() {
        let k = key(Check::AtLeast, "2000000 3000000", true);
        // Asked 10 000 of a file for 1 000 000: a hundredth, rounded up.
        let v = judge(&k, Some("20000 30001"), 10_000, Some(1_000_000));
        assert_eq!(v.wanted, "20000 30000");
        assert!(v.ok);
        // floor(20000 * 1e6 / 2e6) = 10000 and floor(30001e6 / 3e6) = 10000.
        assert_eq!(v.holds, Some(10_000));
        let v = judge(&k, Some("19999 30000"), 10_000, Some(1_000_000));
        assert!(!v.ok);
        assert_eq!(v.holds, Some(9_999), "the capacity agrees with the verdict");
        let v = judge(&k, Some("lots"), 10_000, Some(1_000_000));
        assert!(!v.ok);
        assert_eq!(
            v.holds,
            Some(0),
            "an unreadable counted value allows nothing"
        );
        assert_eq!(scale(3, 1, 2), 2, "rounds up");
        assert_eq!(scale(i64::MAX, u64::MAX, 1), i64::MAX, "saturates");
        // Unscaled, the file's value stands whatever the count.
        let v = judge(
            &key(Check::AtLeast, "100", false),
            Some("100"),
            5_000_000,
            Some(10),
        );
        assert_eq!(v.wanted, "100");
        assert!(v.ok);
    }
}
