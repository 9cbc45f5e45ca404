//! Reading the host: the one place where both programs learn what this machine allows
//! and what its kernel is doing.
//!
//! - [`system`]: memory and CPUs, through the `sysinfo` crate;
//! - [`rlimit`]: the open-files limit, raised at start by both programs;
//! - [`sysctl`]: live kernel settings from `/proc/sys`;
//! - [`conf`]: the annotated `sysctl/*.conf` files, the single source of the wanted
//!   settings, built into the binaries;
//! - [`procfs`]: parsers for the `/proc/net` counters sysinfo does not read (TCP
//!   counters, socket memory, interface drops);
//! - [`check`]: `redpacket-server check` and `redpacket-loadgen check`, the server's
//!   start-up line and the load generator's refusal before a run.
//!
//! [`crate::sysmon`] samples through these once a second; nothing else in either
//! program reads `/proc` or `/sys`.

pub mod check;
pub mod conf;
pub mod procfs;
pub mod rlimit;
pub mod sysctl;
pub mod system;
