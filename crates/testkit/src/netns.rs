//! A network namespace made for one test: sysctls that only a namespace sees, addresses
//! that are not loopback. It is deleted when dropped, also when the test fails, so a
//! test never changes the host it runs on. Making one needs `ip` and CAP_NET_ADMIN;
//! [`Netns::create`] says why it could not, for [`crate::prereq`].

use std::ffi::OsStr;
use std::process::Command;

/// A network namespace named `<prefix>-<pid>`, deleted on drop.
pub struct Netns(String);

/// `ip ARGS`, or its error output.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip` (apt-get install -y iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    /// Creates the namespace, or says why it cannot (no `ip`, no CAP_NET_ADMIN).
    pub fn create(prefix: &str) -> Result<Netns, String> {
        let name = format!("{prefix}-{}", std::process::id());
        ip(&["netns", "add", &name])?;
        Ok(Netns(name))
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.0
    }

    /// `ip -n NAME ARGS`: configures the namespace (links, addresses).
    pub fn ip(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["-n", &self.0];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// `ip netns exec NAME PROGRAM`, to add arguments to and run: the program runs in the
    /// namespace.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).arg(program);
        c
    }

    /// Runs `f` on a thread that has joined the namespace (only that thread), so the
    /// sockets it opens live there.
    pub fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.0);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).expect("open the namespace");
            use std::os::fd::AsRawFd;
            // SAFETY: setns only changes this thread's network namespace.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("the thread in the namespace")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}
