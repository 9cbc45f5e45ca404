//! How the report writes its figures: grouped numbers, clock times, short axis numbers,
//! and how many of a kind it lists one by one.
//!
//! These sit at the bottom of the crate, below the run's data types, so that every part
//! that words a figure (the checks, the money, the tables, the charts) writes it the same
//! way without reaching into one another.

/// Past this many of a kind (server instances on a host, a client's source addresses),
/// the report sums them up instead of listing each: balanced ledgers in one line, the
/// least and the most of the addresses, no chart line per instance.
pub const MANY: usize = 8;

/// `1234567.891` with 2 decimals is `1,234,567.89`.
pub fn fmt_num(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let s = format!("{:.*}", decimals, v.abs());
    let (int, frac) = s.split_once('.').map_or((s.as_str(), ""), |(i, f)| (i, f));
    let mut grouped = String::new();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    let sign = if v < 0.0 && s.chars().any(|c| c.is_ascii_digit() && c != '0') {
        "-"
    } else {
        ""
    };
    if frac.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{frac}")
    }
}

/// A unix time as a person reads it in a report: `HH:MM:SS UTC`, and how far into the
/// run when `started` is known.
pub fn when(t: f64, started: f64) -> String {
    let s = t.max(0.0).round() as u64 % 86_400;
    let clock = format!("{:02}:{:02}:{:02} UTC", s / 3600, s / 60 % 60, s % 60);
    if started > 0.0 && t >= started {
        format!("{clock} ({:.0} s into the run)", t - started)
    } else {
        clock
    }
}

/// Axis numbers: `1.2k`, `3.4M`, `0.25`.
pub fn short(v: f64) -> String {
    let a = v.abs();
    let (x, suffix) = if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let s = if x.abs() >= 100.0 || x == x.trunc() {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    };
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(fmt_num(1234567.891, 2), "1,234,567.89");
        assert_eq!(fmt_num(999.0, 0), "999");
        assert_eq!(fmt_num(-1000.0, 0), "-1,000");
        assert_eq!(fmt_num(-0.001, 1), "0.0");
        assert_eq!(fmt_num(f64::NAN, 1), "-");
    }

    #[test]
    fn short_numbers() {
        assert_eq!(short(0.0), "0");
        assert_eq!(short(0.25), "0.25");
        assert_eq!(short(1500.0), "1.5k");
        assert_eq!(short(60_000.0), "60k");
        assert_eq!(short(2_000_000.0), "2M");
    }
}
