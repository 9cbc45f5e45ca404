//! The shell tests of the host tuning (`sysctl/tests/tuning.sh`) and of the Ansible fleet
//! (`ansible/tests/fleet.sh` on network-namespace hosts, `ansible/tests/systemd-fleet.sh`
//! on Debian hosts that boot systemd), run by `cargo test --workspace` so that one
//! command runs every test of the project.
//!
//! They build network namespaces or containers on this machine (root and CAP_NET_ADMIN
//! needed) and tear them down; under `CI=true` a missing prerequisite fails them, elsewhere they say
//! `SKIPPED`, which fails this test too unless `REDPACKET_ALLOW_SKIP=1` (then it passes
//! and prints that line). They use the binaries this `cargo test`
//! has just built (`target/<profile>/`), so nothing is built twice and no cargo runs
//! inside a test. They run one at a time: each loads both cores for a while.

use redpacket_testkit::{prereq, process, serial};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The folder holding the workspace's binaries of this build: `redpacket-server` is this
/// package's own; `redpacket-loadgen` and `redpacket-report` (other packages) are built
/// beside it by `cargo test --workspace`.
fn bin_dir() -> PathBuf {
    for bin in ["redpacket-loadgen", "redpacket-report"] {
        process::workspace_bin(bin).unwrap_or_else(|e| panic!("{e}"));
    }
    let server = Path::new(env!("CARGO_BIN_EXE_redpacket-server"));
    server.parent().expect("binary has a folder").to_path_buf()
}

/// Runs `bash SCRIPT` from the workspace root with `env`, and fails with its output
/// when it fails.
fn run_script(script: &str, env: &[(&str, &Path)]) {
    let _guard = serial::lock();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new("bash");
    cmd.arg(root.join(script)).current_dir(root);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run bash {script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let tail = |s: &str| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(150)..].join("\n")
        };
        panic!(
            "{script} failed ({}):\n--- stdout (last lines)\n{}\n--- stderr (last lines)\n{}",
            out.status,
            tail(&stdout),
            tail(&stderr)
        );
    }
    // A skip is not a pass: it fails the test unless skips are allowed (the kit's prereq).
    for line in stdout.lines().chain(stderr.lines()) {
        if line.contains("SKIPPED") {
            prereq::missing_prerequisite(script, line);
        }
    }
}

#[test]
fn sysctl_files_apply_in_a_namespace_and_units_verify() {
    let bins = bin_dir();
    run_script("sysctl/tests/tuning.sh", &[("REDPACKET_BIN_DIR", &bins)]);
}

#[test]
fn ansible_fleet_provisions_runs_and_survives_a_lost_host() {
    let bins = bin_dir();
    run_script("ansible/tests/fleet.sh", &[("FLEET_PREBUILT_DIR", &bins)]);
}

#[test]
fn ansible_fleet_on_systemd_hosts_survives_killed_instances_clients_and_a_reboot() {
    let bins = bin_dir();
    run_script(
        "ansible/tests/systemd-fleet.sh",
        &[("FLEET_PREBUILT_DIR", &bins)],
    );
}
