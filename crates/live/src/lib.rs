//! The fleet while it runs: once a second, the users, the shakes sent and answered
//! against the target, errors, timeouts, exact p50 / p99 / p99.9 of that second over
//! every load generator, each server's shake rate, and the host that is slow or missing,
//! on the terminal and in the run folder's `live.jsonl`.
//!
//! It reads the per-second records the hosts already write for the report
//! (`loadgen.jsonl`, `server.jsonl`), followed as they grow ([`follow`]: `tail -F`, over
//! the SSH access the fleet already has, so no port is opened), and sums them per second
//! ([`fleet`]) the way the report does, so the live figures of a second equal the
//! report's.

pub mod fleet;
pub mod follow;
pub mod plan;
pub mod terminal;
pub mod watch;

pub use fleet::{Fleet, Role};
pub use follow::Source;
pub use watch::{watch, Watched};
