//! Bad usage: a flag clap refuses, or a value the checks refuse, ends the program with
//! one line on stderr and exit code 2, whichever subcommand it came to.

/// Exit code of bad usage.
pub const EXIT_USAGE: i32 = 2;

/// Prints a value the checks refused; returns [`EXIT_USAGE`].
pub fn usage_error(e: &str) -> i32 {
    eprintln!("redpacket-loadgen: {e}");
    EXIT_USAGE
}
