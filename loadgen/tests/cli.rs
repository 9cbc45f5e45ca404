//! The `redpacket-loadgen` binary's command line as a user meets it: help, subcommands
//! and the exit code of bad usage. Nothing here connects anywhere.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_redpacket-loadgen");

/// Runs `redpacket-loadgen ARGS`; returns (exit code, stdout, stderr).
fn loadgen(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SUBCOMMANDS: [&str; 4] = ["run", "demo", "check", "help"];

#[test]
fn help_says_what_the_program_is_and_lists_every_subcommand() {
    for args in [&["--help"][..], &["-h"], &["help"]] {
        let (code, out, err) = loadgen(args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        let first = out.lines().next().unwrap_or("");
        assert!(
            first.starts_with("redpacket-loadgen: ") && first.contains("load generator"),
            "{args:?} opens with {first:?}"
        );
        let commands = out
            .split("Commands:")
            .nth(1)
            .unwrap_or_else(|| panic!("{args:?}: no Commands section: {out}"));
        for sub in SUBCOMMANDS {
            assert!(
                commands.lines().any(|l| l.trim_start().starts_with(sub)),
                "{args:?} does not list {sub}: {out}"
            );
        }
    }
}

#[test]
fn help_of_each_subcommand_works() {
    for (sub, flag) in [
        ("run", "--server"),
        ("demo", "--users"),
        ("check", "--users"),
    ] {
        for args in [&["help", sub][..], &[sub, "--help"]] {
            let (code, out, err) = loadgen(args);
            assert_eq!(code, Some(0), "{args:?}: {err}");
            assert!(out.contains(flag), "{args:?} lacks {flag}: {out}");
            assert!(
                out.contains(&format!("Usage: redpacket-loadgen {sub}")),
                "{args:?}: {out}"
            );
        }
    }
}

#[test]
fn bad_usage_exits_2_with_a_message() {
    for args in [
        &[][..],
        &["bogus"],
        &["--bogus"],
        &["help", "bogus"],
        &["run", "--bogus"],
        &["run", "--users", "ten"],
        &["run", "--connect-rate", "0"],
        &["run", "--threads", "0"],
        &["run", "--phase", "a:1:1s", "--scale", "2"],
        &["run", "--server-control", "127.0.0.1:9,127.0.0.1:10"],
        &["demo", "--users", "many"],
        &["demo", "--scale", "0"],
        &["demo", "--time-scale", "-1"],
        &["demo", "--users", "100", "--layout-for", "50"],
        &["check"],
        &["check", "--users", "0"],
        &["check", "--users", "10", "--source-addrs", "nonsense"],
    ] {
        let (code, out, err) = loadgen(args);
        assert_eq!(code, Some(2), "{args:?}: {out}{err}");
        assert!(!err.trim().is_empty(), "{args:?}: says why");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: nothing on stdout: {out}");
    }
}

#[test]
fn a_demo_of_too_few_users_is_bad_usage() {
    for users in ["0", "3"] {
        let (code, out, err) = loadgen(&["demo", "--users", users]);
        assert_eq!(code, Some(2), "--users {users}: {out}{err}");
        assert!(err.contains("--users"), "names the flag: {err}");
        assert!(err.contains("at least 4"), "says what would do: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
}
