//! A fresh folder per test: `<target>/tmp/<test binary>-<tag>-<pid>`, emptied first, so
//! a rerun never reads an earlier run's files and what a failed test left behind is easy
//! to find (and goes with `cargo clean`). Tests remove it when they pass if they like;
//! nothing here removes it, so a failure can be looked at.
//!
//! [`scratch!`](crate::scratch!) fills in the target's temporary folder and the test
//! binary's name, which cargo gives the test's crate at build time, not this one.

use std::path::{Path, PathBuf};

/// `base/<binary>-<tag>-<pid>`, empty.
pub fn fresh_in(base: &Path, binary: &str, tag: &str) -> PathBuf {
    let d = base.join(format!("{binary}-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("cannot make {}: {e}", d.display()));
    d
}

/// A fresh, empty folder for the tag (an `&str`) under the target's temporary folder
/// (`CARGO_TARGET_TMPDIR`), named after the calling test binary:
/// `redpacket_testkit::scratch!("rate")`. Only in integration tests and benches.
#[macro_export]
macro_rules! scratch {
    ($tag:expr) => {
        $crate::scratch::fresh_in(
            ::std::path::Path::new(env!("CARGO_TARGET_TMPDIR")),
            env!("CARGO_CRATE_NAME"),
            $tag,
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_is_fresh_each_time() {
        let base = std::env::temp_dir();
        let d = fresh_in(&base, "testkit", "fresh");
        assert!(d.ends_with(format!("testkit-fresh-{}", std::process::id())));
        std::fs::write(d.join("old"), "x").unwrap();
        let again = fresh_in(&base, "testkit", "fresh");
        assert_eq!(again, d);
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
