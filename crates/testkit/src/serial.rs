//! The lock that runs tests one at a time within a test binary: tests that measure rates
//! and latencies, take most of the machine, or share a port range must not overlap, and
//! libtest runs the tests of a binary on parallel threads. (Test binaries themselves run
//! one after another under `cargo test`.)
//!
//! A test that fails while holding the lock poisons it; the next test takes it anyway,
//! since one failure must not fail every test after it.

use std::sync::{Mutex, MutexGuard, PoisonError};

static LOCK: Mutex<()> = Mutex::new(());

/// Waits for the other serial tests of this binary; they wait while the guard lives.
pub fn lock() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}
