//! What a test does when something it needs (a program, a file, a privilege) is missing:
//! one rule for every test of the workspace, so that a test that cannot run never passes
//! quietly.
//!
//! Under `CI=true` the test fails with the reason. Elsewhere it fails too, unless
//! `REDPACKET_ALLOW_SKIP=1`, when it passes and prints `SKIPPED: <test>: <reason>` on
//! stderr. (Stable libtest has no "skipped" outcome, and what a passing test prints is
//! shown only under `--nocapture`, so a skip must be asked for to be allowed.)

/// Whether the environment variable `k` is set to something other than empty, `false`
/// or `0`.
fn env_set(k: &str) -> bool {
    std::env::var(k).is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// A prerequisite of `test` is missing: panics, or returns when the skip is allowed
/// (the caller then returns at once).
#[track_caller]
pub fn missing_prerequisite(test: &str, reason: &str) {
    if env_set("CI") {
        panic!("{test}: {reason} (CI=true: a test that cannot run fails)");
    }
    if !env_set("REDPACKET_ALLOW_SKIP") {
        panic!("{test}: {reason} (set REDPACKET_ALLOW_SKIP=1 to skip it outside CI)");
    }
    eprintln!("SKIPPED: {test}: {reason}");
}

/// The prerequisite `found`, or `None` when it is missing and the skip is allowed
/// (see [`missing_prerequisite`]): `let Some(x) = require(test, find()) else { return };`.
#[track_caller]
pub fn require<T>(test: &str, found: Result<T, String>) -> Option<T> {
    match found {
        Ok(v) => Some(v),
        Err(reason) => {
            missing_prerequisite(test, &reason);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The variables are read, never set, here: tests of one binary share the
    // environment. What the rule does in this environment is checked against it.
    #[test]
    fn present_is_some_and_missing_follows_the_environment() {
        assert_eq!(require::<u8>("t", Ok(7)), Some(7));
        let allowed = !env_set("CI") && env_set("REDPACKET_ALLOW_SKIP");
        let missing = std::panic::catch_unwind(|| require::<u8>("t", Err("none".into())));
        match missing {
            Ok(v) => assert!(allowed && v.is_none()),
            Err(_) => assert!(!allowed),
        }
    }
}
