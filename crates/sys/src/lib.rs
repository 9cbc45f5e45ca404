//! The one system layer of redpacket: every system call both programs make past what
//! `std`, socket2 and sysinfo offer, each wrapped once, with `std::io::Error` as the one
//! error type and a SAFETY comment on each `unsafe`.
//!
//! - [`epoll`]: the epoll instance of a server SET or a load-generator worker (every
//!   epoll call is in that file, with the `epoll_pwait2` -> `epoll_wait` fallback);
//! - [`ethtool`]: a NIC driver's own counters (what `ethtool -S` prints) through the
//!   ethtool ioctl, without a child process;
//! - [`socket`]: the socket calls of both hot paths (nonblocking read and send, connect
//!   from a source address, stamped reads, unsent bytes, reset on close);
//! - [`rlimit`]: the open-files limit, raised at start by both programs;
//! - [`cores`]: which CPUs this process may use, and pinning a thread to one;
//! - [`system`]: memory and CPUs, through the `sysinfo` crate;
//! - [`sysctl`]: live kernel settings from `/proc/sys`;
//! - [`wake`]: an eventfd that wakes a thread asleep in its epoll set;
//! - [`procfs`]: parsers for what sysinfo does not read (`/proc/net` TCP counters,
//!   socket memory, interface drops, slabs, a process's CPU and RSS).
//!
//! Nothing here knows frames, users or runs: policy (what a host should be set to, how
//! many users it holds) is `redpacket-host`'s.

pub mod cores;
pub mod epoll;
pub mod ethtool;
pub mod procfs;
pub mod rlimit;
pub mod socket;
pub mod spare;
pub mod sysctl;
pub mod system;
pub mod wake;
