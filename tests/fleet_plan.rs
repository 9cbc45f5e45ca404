//! The fleet's plan (`ansible/filter_plugins/fleet_plan.py`) has its own unit test in
//! Python, `ansible/tests/test_fleet_plan.py` (stdlib `unittest`, no Ansible); this runs
//! it with `cargo test` so that one command runs every test of the project.
//!
//! Python runs with `-E -S` (no PYTHONPATH, no site-packages): the test file's module
//! name begins with `ansible`, which an installed Ansible would otherwise take over; and
//! with `-B`, so that no `__pycache__` lands in the repository.
//! Without python3 the test fails under `CI=true`, and elsewhere unless skips are
//! allowed (`tests/fixtures/prereq.rs`).

#[path = "fixtures/prereq.rs"]
mod prereq;

use std::path::Path;
use std::process::Command;

#[test]
fn the_fleet_plan_passes_its_python_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = match Command::new("python3")
        .args(["-B", "-E", "-S", "-m", "unittest"])
        .args(["ansible/tests/test_fleet_plan.py", "-v"])
        .current_dir(root)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            prereq::missing_prerequisite(
                "the_fleet_plan_passes_its_python_tests",
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
        "python3 -m unittest ansible/tests/test_fleet_plan.py failed ({}):\n{text}",
        out.status
    );
    // unittest ends with "OK" only when every test ran and passed; "Ran 0 tests" is no pass.
    assert!(
        text.contains("\nOK") && !text.contains("Ran 0 tests"),
        "unexpected unittest output:\n{text}"
    );
}
