//! The fleet's Python parts have their own unit tests, `ansible/tests/test_*.py` (stdlib
//! `unittest`, no Ansible): the plan (`filter_plugins/fleet_plan.py`, in
//! `test_fleet_plan.py`) and the collect role's unpacker of untrusted archives
//! (`roles/collect/files/redpacket-unpack.py`, in `test_unpack.py`). This runs every
//! one of them with `cargo test`, so that one command runs every test of the project.
//!
//! Python runs with `-E -S` (no PYTHONPATH, no site-packages): the test files' module
//! names begin with `ansible`, which an installed Ansible would otherwise take over; and
//! with `-B`, so that no `__pycache__` lands in the repository.
//! Without python3 the test fails under `CI=true`, and elsewhere unless skips are
//! allowed (`redpacket_testkit::prereq`).

use redpacket_testkit::prereq;
use std::path::Path;
use std::process::Command;

/// `ansible/tests/test_*.py`, sorted, relative to the workspace root.
fn python_tests(root: &Path) -> Vec<String> {
    let dir = root.join("ansible/tests");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("test_") && name.ends_with(".py"))
        .map(|name| format!("ansible/tests/{name}"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_fleets_python_parts_pass_their_unit_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = python_tests(root);
    assert!(
        files.len() >= 2,
        "expected ansible/tests/test_fleet_plan.py and test_unpack.py, found {files:?}"
    );
    let out = match Command::new("python3")
        .args(["-B", "-E", "-S", "-m", "unittest"])
        .args(&files)
        .arg("-v")
        .current_dir(root)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            prereq::missing_prerequisite(
                "the_fleets_python_parts_pass_their_unit_tests",
                &format!("cannot run python3: {e}"),
            );
            return;
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "python3 -m unittest {} failed ({}):\n{text}",
        files.join(" "),
        out.status
    );
    // unittest ends with "OK" only when every test ran and passed; "Ran 0 tests" is no
    // pass, and neither is a skipped test ("OK (skipped=N)").
    assert!(
        text.contains("\nOK") && !text.contains("Ran 0 tests") && !text.contains("skipped="),
        "unexpected unittest output:\n{text}"
    );
    // Every file's tests ran: each module is named in the verbose listing.
    for file in &files {
        let module = file.trim_end_matches(".py").replace('/', ".");
        assert!(
            text.contains(&format!("({module}.")),
            "no test of {file} ran:\n{text}"
        );
    }
}
