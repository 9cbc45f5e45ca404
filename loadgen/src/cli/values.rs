//! The value parsers of the flags: durations, ranges and rates, refused with a message
//! that shows a value that would do.

use crate::plan;
use std::time::Duration;

/// A duration, or `0` (with or without a unit) for none.
pub(super) fn duration_or_zero(s: &str) -> Result<Duration, String> {
    if s.trim().trim_end_matches(|c: char| c.is_ascii_alphabetic()) == "0" {
        return Ok(Duration::ZERO);
    }
    duration(s)
}

/// A duration such as `5s`, `500ms` or `2m`.
pub(super) fn duration(s: &str) -> Result<Duration, String> {
    plan::parse_duration(s)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("bad duration {s:?}: try 5s, 500ms or 2m"))
}

/// `A..B` with B not below A.
pub(super) fn range_u64(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("bad range {s:?}: expected A..B"))?;
    let (a, b) = (
        a.parse::<u64>().map_err(|e| e.to_string())?,
        b.parse::<u64>().map_err(|e| e.to_string())?,
    );
    if b < a {
        return Err(format!("bad range {s:?}: B below A"));
    }
    Ok((a, b))
}

/// A rate such as `3000` or `2.5k`.
pub(super) fn rate(s: &str) -> Result<f64, String> {
    plan::parse_rate(s).ok_or_else(|| format!("bad rate {s:?}: try 3000 or 2.5k"))
}
