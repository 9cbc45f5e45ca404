//! The test kit of the redpacket workspace: what every test binary (the server's, the
//! load generator's, the report's) needs and used to copy for itself.
//!
//! Each test binary is its own crate, so a helper shared through `#[path]` is compiled
//! into each one and warned about wherever a binary leaves part of it unused; copies
//! drift apart instead (one test skipped quietly where another failed). This crate holds
//! each helper once. It is a dev-dependency only and knows nothing of frames, users or
//! runs: protocol-speaking helpers stay beside the tests that speak it.
//!
//! # Layout
//!
//! - [`prereq`]: the one rule for a test whose prerequisite is missing (fail with the
//!   reason; skip only when asked, never under CI);
//! - [`scratch`](mod@scratch): a fresh, clearly named folder per test
//!   ([`scratch!`](macro@scratch));
//! - [`serial`]: the lock that makes tests of one binary run one at a time;
//! - [`wait`]: polling until a condition holds or a deadline passes;
//! - [`process`]: child processes killed on drop, waited for within a limit, and the
//!   workspace's binaries of this build;
//! - [`netns`]: a network namespace that deletes itself.

#![deny(missing_docs)]

pub mod netns;
pub mod prereq;
pub mod process;
pub mod scratch;
pub mod serial;
pub mod wait;
