//! The minimum Rust version the README and `Cargo.toml` state is one the locked
//! dependencies accept: `rust-version` must be at least every locked package's own
//! `rust_version` (`cargo metadata --locked`). An older toolchain cannot be installed
//! here to try, so this is checked from the dependencies' own declarations.

use serde_json::Value;
use std::process::Command;

/// "1.88" or "1.85.0" as (major, minor, patch).
fn version(s: &str) -> (u64, u64, u64) {
    let mut it = s
        .split('.')
        .map(|p| p.parse::<u64>().expect("a version number"));
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    )
}

#[test]
fn rust_version_covers_the_locked_dependencies() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--manifest-path",
        ])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let members: Vec<&str> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    let stated = version(env!("CARGO_PKG_RUST_VERSION"));
    let mut needed = ((0, 0, 0), String::new());
    for p in meta["packages"].as_array().unwrap() {
        let (Some(rv), Some(id)) = (p["rust_version"].as_str(), p["id"].as_str()) else {
            continue;
        };
        if members.contains(&id) {
            assert_eq!(version(rv), stated, "{id} states another rust-version");
            continue;
        }
        if version(rv) > needed.0 {
            needed = (version(rv), format!("{} {}", p["name"], p["version"]));
        }
    }
    assert!(needed.0 > (0, 0, 0), "no dependency states a rust_version");
    assert!(
        stated >= needed.0,
        "rust-version {} is below what {} needs ({:?}): raise it in Cargo.toml and the README",
        env!("CARGO_PKG_RUST_VERSION"),
        needed.1,
        needed.0
    );
}
