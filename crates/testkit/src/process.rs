//! Child processes of a test: the workspace's binaries of this build, started so that
//! none outlives a failed test, signalled, and waited for within a time limit.
//!
//! A test that panics unwinds through its locals, so a [`Proc`] killed in `Drop` is
//! killed on every way out of the test; a plain `Child` would be left running and hold
//! its ports and CPU through the tests after it.

use std::io::Read;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use crate::wait;

/// The folder holding this build's binaries (`target/<profile>/`): a test executable
/// lives in its `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe.parent().expect("the executable has a folder");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// The binary `name` of another package of the workspace, from this build's profile
/// folder, or why it is not there. (A package's own binaries are
/// `env!("CARGO_BIN_EXE_<name>")`; cargo builds another package's only under
/// `cargo test --workspace`.)
pub fn workspace_bin(name: &str) -> Result<PathBuf, String> {
    let bin = profile_dir().join(name);
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "{} is missing: run `cargo test --workspace` (it builds every binary first)",
            bin.display()
        ))
    }
}

/// A child process, killed (SIGKILL) and reaped when dropped, whatever happened. It
/// derefs to its [`Child`].
pub struct Proc(Child);

/// How a child ended and what it wrote ([`Proc::output_within`]).
pub struct Finished {
    /// Its exit code, or -1 when a signal ended it.
    pub code: i32,
    /// Its standard output, when piped (else empty).
    pub stdout: String,
    /// Its standard error, when piped (else empty).
    pub stderr: String,
}

impl Proc {
    /// Starts `cmd`; panics naming the program when it cannot.
    pub fn spawn(cmd: &mut Command) -> Proc {
        match cmd.spawn() {
            Ok(c) => Proc(c),
            Err(e) => panic!("cannot start {}: {e}", cmd.get_program().to_string_lossy()),
        }
    }

    /// Sends `signal` (`libc::SIGTERM`, `SIGINT`, ...) to the child.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid, which is not reaped while we hold it.
        unsafe { libc::kill(self.0.id() as i32, signal) };
    }

    /// Waits up to `limit` for the JSON object a program writes to its `--ready-file`
    /// once it is listening; panics if the child exits first or the limit passes.
    pub fn ready_json(&mut self, path: &Path, limit: Duration) -> serde_json::Value {
        let what = format!("{} to be written", path.display());
        wait::until(&what, limit, || {
            if let Ok(Some(st)) = self.0.try_wait() {
                panic!("the program exited before it was ready: {st}");
            }
            let text = std::fs::read_to_string(path).ok()?;
            serde_json::from_str::<serde_json::Value>(&text).ok()
        })
    }

    /// Waits up to `limit` for the child to exit; panics after.
    pub fn wait_within(&mut self, limit: Duration) -> ExitStatus {
        wait::until("the program to exit", limit, || {
            self.0.try_wait().expect("wait for the child")
        })
    }

    /// Waits up to `limit` for the child to exit, reading its piped output meanwhile (so
    /// a full pipe never stalls it); `None` when it was still running at the limit (it is
    /// killed then).
    pub fn output_within(&mut self, limit: Duration) -> Option<Finished> {
        fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
            std::thread::spawn(move || {
                let mut s = String::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_string(&mut s);
                }
                s
            })
        }
        let out = drain(self.0.stdout.take());
        let err = drain(self.0.stderr.take());
        let Some(status) = wait::poll(limit, Duration::from_millis(50), || {
            self.0.try_wait().expect("wait for the child")
        }) else {
            let _ = self.0.kill();
            let _ = self.0.wait();
            return None;
        };
        Some(Finished {
            code: status.code().unwrap_or(-1),
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
        })
    }
}

impl Deref for Proc {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Once reaped, std does not signal the pid again (it may be another process's).
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Stdio;

    #[test]
    fn output_is_read_and_a_hung_child_is_killed() {
        let mut sh = Command::new("sh");
        sh.args(["-c", "echo out; echo err >&2; exit 3"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let done = Proc::spawn(&mut sh)
            .output_within(Duration::from_secs(10))
            .unwrap();
        assert_eq!(
            (done.code, &*done.stdout, &*done.stderr),
            (3, "out\n", "err\n")
        );
        let mut hung = Proc::spawn(Command::new("sleep").arg("30"));
        assert!(hung.output_within(Duration::from_millis(100)).is_none());
        assert!(hung.try_wait().unwrap().is_some(), "killed and reaped");
    }

    #[test]
    fn a_signal_ends_the_child() {
        let mut p = Proc::spawn(Command::new("sleep").arg("30"));
        p.signal(libc::SIGTERM);
        let st = p.wait_within(Duration::from_secs(10));
        assert_eq!(st.code(), None);
    }
}
