//! The run's clocks: unix seconds for what is written down, and `--start-at`'s instant
//! (checked when the flags are, then turned into a monotonic instant to wait for).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Now, in unix seconds.
pub fn unix_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The monotonic instant at which the wall clock will read `unix` (now, if it is past).
pub(super) fn instant_at(unix: f64) -> Instant {
    let ahead = unix - unix_f64();
    let now = Instant::now();
    if ahead > 0.0 && ahead.is_finite() {
        now + Duration::from_secs_f64(ahead)
    } else {
        now
    }
}

/// Checks a `--start-at` instant against the clock when the program starts: it must be
/// still to come, and less than a day away (a later one is a mistake, such as
/// milliseconds given for seconds).
pub fn check_start_at(at: f64, now: f64) -> Result<(), String> {
    if !at.is_finite() {
        return Err(format!("--start-at {at}: not a unix time in seconds"));
    }
    if at <= now {
        return Err(format!(
            "--start-at {at}: that instant is {:.3} s in the past (the clock reads {now:.3}); \
             give a unix time still to come, e.g. $(( $(date +%s) + 30 ))",
            now - at
        ));
    }
    if at - now > 86_400.0 {
        return Err(format!(
            "--start-at {at}: that is {:.0} s from now, more than a day; unix seconds \
             are expected (the clock reads {now:.0})",
            at - now
        ));
    }
    Ok(())
}
