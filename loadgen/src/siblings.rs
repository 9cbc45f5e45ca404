//! Finding the workspace's other programs beside this one: the `redpacket-server` that
//! `demo` (and the tests) start, and the `redpacket-report` that makes the demo's report.
//!
//! The demo runs the very binaries a user deploys, never copies linked into this one.
//! Cargo cannot build another package's binary as a dependency of `cargo run -p
//! redpacket-loadgen`, so each is looked for beside this program's own executable
//! (`target/<profile>/`). When this program sits in a cargo target folder and the
//! workspace it was built from is still there, `cargo build --bin NAME` is run for the
//! same profile first: cargo does nothing when the binary is fresh and rebuilds it when a
//! source changed, so the demo never starts a stale program. Elsewhere (an installed
//! copy) the program must already be beside it (or, for the server, be named with
//! `--server-bin`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A program of this workspace that may sit beside this one.
#[derive(Clone, Copy, Debug)]
pub struct Sibling {
    /// Its file name, which is also its cargo `--bin` name.
    pub name: &'static str,
    /// Its main source file, relative to the workspace: present only in a checkout.
    source: &'static str,
}

/// The server the demo starts.
pub const SERVER: Sibling = Sibling {
    name: "redpacket-server",
    source: "src/bin/redpacket-server.rs",
};

/// The report program the demo runs on its run folder.
pub const REPORT: Sibling = Sibling {
    name: "redpacket-report",
    source: "crates/report/src/main.rs",
};

impl Sibling {
    /// The command that builds it, for messages.
    pub fn build_hint(&self) -> String {
        format!("cargo build --release --bin {}", self.name)
    }
}

/// The server to start: `explicit` if given (it must exist), else [`SERVER`] beside this
/// executable, built or refreshed by cargo when this runs from a workspace.
pub fn server(explicit: Option<&Path>) -> Result<PathBuf, String> {
    match explicit {
        Some(p) if p.is_file() => Ok(p.to_path_buf()),
        Some(p) => Err(format!("--server-bin {}: no such file", p.display())),
        None => locate(SERVER, "pass --server-bin PATH"),
    }
}

/// The report program beside this executable, built or refreshed as the server is.
pub fn report() -> Result<PathBuf, String> {
    locate(REPORT, "or run it by hand on the run folder")
}

/// `program` beside this executable, built or refreshed by cargo when this runs from a
/// workspace; `otherwise` says what else the user may do when it is missing.
fn locate(program: Sibling, otherwise: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let dir = profile_dir(&exe);
    let candidate = dir.join(program.name);
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if let (Some(target), true) = (cargo_target(&dir), workspace.join(program.source).is_file()) {
        build(program, &workspace, &target, &dir)?;
    }
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(format!(
            "no {} beside {}: build it with `{}` ({otherwise})",
            program.name,
            exe.display(),
            program.build_hint()
        ))
    }
}

/// The folder a binary of this build lives in: the executable's own, or for a test
/// executable (`target/<profile>/deps/`) its parent.
fn profile_dir(exe: &Path) -> PathBuf {
    let dir = exe.parent().unwrap_or(Path::new("."));
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// The cargo target folder `dir` is a profile folder of (cargo marks target folders with
/// `CACHEDIR.TAG`), or `None` when this program does not live in one.
fn cargo_target(dir: &Path) -> Option<PathBuf> {
    let target = dir.parent()?;
    target
        .join("CACHEDIR.TAG")
        .is_file()
        .then(|| target.to_path_buf())
}

/// `cargo build --bin NAME` for the profile of `dir`, into `target`.
fn build(program: Sibling, workspace: &Path, target: &Path, dir: &Path) -> Result<(), String> {
    let profile = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target)
        .args(["--bin", program.name]);
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let (name, hint) = (program.name, program.build_hint());
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!(
            "building {name} failed ({s}); run `{hint}` to see why"
        )),
        Err(e) => Err(format!(
            "cannot run cargo ({e}) to build {name}: run `{hint}`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_executables_use_their_profile_folder() {
        assert_eq!(
            profile_dir(Path::new("/t/target/debug/deps/loadgen-0123")),
            Path::new("/t/target/debug")
        );
        assert_eq!(
            profile_dir(Path::new("/t/target/release/redpacket-loadgen")),
            Path::new("/t/target/release")
        );
    }

    #[test]
    fn a_missing_explicit_server_is_an_error() {
        let e = server(Some(Path::new("/nonexistent/redpacket-server"))).unwrap_err();
        assert!(e.contains("--server-bin"), "{e}");
    }

    #[test]
    fn siblings_sources_are_in_this_workspace() {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for s in [SERVER, REPORT] {
            assert!(workspace.join(s.source).is_file(), "{}", s.source);
        }
    }
}
