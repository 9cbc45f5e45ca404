//! Finding the `redpacket-server` program that `demo` (and the tests) start.
//!
//! The demo runs the very binary a user deploys, never a copy linked into this one. Cargo
//! cannot build another package's binary as a dependency of `cargo run -p
//! redpacket-loadgen`, so the server is looked for beside this program's own executable
//! (`target/<profile>/`). When this program sits in a cargo target folder and the
//! workspace it was built from is still there, `cargo build --bin redpacket-server` is run
//! for the same profile first: cargo does nothing when the binary is fresh and rebuilds it
//! when a source changed, so the demo never starts a stale server. Elsewhere (an installed
//! copy) the program must already be beside it, or be named with `--server-bin`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The server program's file name.
pub const SERVER: &str = "redpacket-server";

/// The command that builds the server, for messages.
pub const BUILD_HINT: &str = "cargo build --release --bin redpacket-server";

/// The server to start: `explicit` if given (it must exist), else `redpacket-server`
/// beside this executable, built or refreshed by cargo when this runs from a workspace.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("--server-bin {}: no such file", p.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let dir = profile_dir(&exe);
    let candidate = dir.join(SERVER);
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if let (Some(target), true) = (
        cargo_target(&dir),
        workspace.join("src/bin/redpacket-server.rs").is_file(),
    ) {
        build(&workspace, &target, &dir)?;
    }
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(format!(
            "no {SERVER} beside {}: build it with `{BUILD_HINT}` (or pass --server-bin PATH)",
            exe.display()
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

/// `cargo build --bin redpacket-server` for the profile of `dir`, into `target`.
fn build(workspace: &Path, target: &Path, dir: &Path) -> Result<(), String> {
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
        .args(["--bin", SERVER]);
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!(
            "building {SERVER} failed ({s}); run `{BUILD_HINT}` to see why"
        )),
        Err(e) => Err(format!(
            "cannot run cargo ({e}) to build {SERVER}: run `{BUILD_HINT}` (or pass --server-bin PATH)"
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
        let e = locate(Some(Path::new("/nonexistent/redpacket-server"))).unwrap_err();
        assert!(e.contains("--server-bin"), "{e}");
    }
}
