//! `<host>/footprint.jsonl`: what a run's own processes and their sockets cost the host,
//! once a second: the resident memory and CPU time of the server instances and of the
//! load generator's processes, the kernel's TCP socket count and buffer pages, the slab
//! caches that grow with connections, and the machine's memory in use.
//!
//! It is written by whatever starts both sides on one host (the demo), which knows the
//! processes; the report divides it by the users held to give memory per user, split
//! into server user space, load-generator user space and kernel, and CPU per request.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One process group's figures at one instant.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessGroup {
    /// Processes found alive.
    pub processes: u64,
    /// Sum of their resident set sizes, bytes.
    pub rss_bytes: u64,
    /// Sum of their user + system CPU time since they started, seconds.
    pub cpu_s: f64,
    /// Per process, in a stable order (server instance I at index I - 1): RSS bytes.
    pub rss_each: Vec<u64>,
}

/// One line of `footprint.jsonl`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FootprintLine {
    /// Unix seconds of the sample.
    pub t: f64,
    pub servers: ProcessGroup,
    /// The load generator: the parent and its `--procs` children.
    pub loadgens: ProcessGroup,
    /// `/proc/net/sockstat` TCP `inuse`: TCP sockets of the host (both ends of a
    /// loopback connection count).
    pub tcp_inuse: u64,
    /// `/proc/net/sockstat` TCP `mem`: pages held by TCP socket buffers (host-wide).
    pub tcp_mem_pages: u64,
    /// `/proc/meminfo` `Slab`, bytes: every slab cache.
    pub slab_bytes: u64,
    /// Bytes of the slab caches that grow with connections
    /// ([`redpacket_sys::procfs::SOCKET_SLABS`]), by name; empty when `/proc/slabinfo`
    /// cannot be read (it needs root).
    pub slabs: BTreeMap<String, u64>,
    /// `MemTotal - MemAvailable`, bytes: the machine's memory in use.
    pub mem_used_bytes: u64,
    /// Page size, bytes (to turn `tcp_mem_pages` into bytes).
    pub page_bytes: u64,
}
