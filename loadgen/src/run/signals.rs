//! Ctrl-C and SIGTERM: the parent of a run stops at the next step and still writes
//! what it measured; a `--procs` child ignores Ctrl-C and stops when its parent says.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether SIGINT or SIGTERM arrived since the run began.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Relaxed)
}

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Relaxed);
}

/// Installs the handlers for a run's parent, or makes a child ignore Ctrl-C.
pub fn install(child: bool) {
    if child {
        // Ctrl-C reaches the whole process group: a child stops when its parent says.
        // SAFETY: setting a signal's disposition to "ignore".
        unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
        return;
    }
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}
