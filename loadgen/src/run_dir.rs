//! Naming a run's folder: `results/<UTC time>-<kind>[-N]/<host>/`.
//!
//! `run` (without `--out`) and `demo` lay their files out the same way, the layout
//! `results/README.md` describes and the report reads, so both name folders here: a run
//! id from the UTC time, a suffix when a run of the same second exists, and this host's
//! name for the host folder.

use std::path::{Path, PathBuf};

/// A UTC run id like `20261126-142501-demo`.
pub fn default_run_id(unix: u64) -> String {
    run_id(unix, "demo")
}

/// A UTC run id like `20261126-142501-<kind>`.
pub fn run_id(unix: u64, kind: &str) -> String {
    let (days, secs) = (unix / 86_400, unix % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}-{kind}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `results/<id>`, or `results/<id>-2`, `-3`, ... when a run of the same second exists.
pub fn fresh_run_dir(results: &Path, id: &str) -> PathBuf {
    let mut dir = results.join(id);
    let mut n = 2;
    while dir.exists() {
        dir = results.join(format!("{id}-{n}"));
        n += 1;
    }
    dir
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// This host's name (the host folder's), or `localhost` when it cannot be read.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty() && !s.contains('/'))
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_utc_timestamps() {
        assert_eq!(default_run_id(0), "19700101-000000-demo");
        assert_eq!(default_run_id(1_795_703_101), "20261126-142501-demo");
        assert_eq!(default_run_id(951_782_400), "20000229-000000-demo");
        assert_eq!(run_id(0, "run"), "19700101-000000-run");
    }
}
