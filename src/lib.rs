//! redpacket: a thread-per-core red-packet server and the tools that prove it.
//!
//! A walk through the crate, bottom up:
//! - [`protocol`]: the wire format (bytes <-> frames, no I/O), shared by the server, the
//!   load generator and the tests; [`framefuzz`]: a randomised run of it and of the
//!   server's frame reassembly against a plain reference model.
//! - [`split`] and [`apportion`]: the two money decisions, as pure functions: how a
//!   user-to-user packet is split, and how shake packets (and the overload budget) are
//!   divided among workers and SETs in proportion to demand.
//! - [`stats`]: per-worker counters and the snapshot schema of `/stats` and the
//!   per-second log.
//! - [`config`], [`cores`]: flags checked before anything binds, and which CPUs get
//!   workers; [`host`]: what this host allows and does (limits, sysctls, memory, CPUs,
//!   `/proc/net` counters) and the `check` of both programs.
//! - [`server`]: workers, SETs, connections, the issuer and the per-second statistics
//!   line; [`control`]: HTTP control and metrics, given a narrow handle to the server
//!   (its [`control::Plane`]); [`spare`]: the descriptor both keep for refusing
//!   connections when out of files; [`cli`]: the `redpacket-server` entry point.
//! - [`sysmon`]: the once-a-second host sampler (network, TCP, sockets, CPU, memory)
//!   and the tuning snapshot every run folder carries; [`report`]: turns a run folder
//!   into tables, charts, `report.html` and `report.md` (`redpacket-report`).
//! - [`formats`]: every file of a run folder as one type, written and read alike;
//!   [`lives`]: a server restarted in the same folder keeps its earlier life's lines
//!   and says whether that life's ledger was lost.

pub mod apportion;
pub mod cli;
pub mod config;
pub mod control;
pub mod cores;
pub mod formats;
pub mod framefuzz;
pub mod host;
pub mod lives;
pub mod protocol;
pub mod report;
pub mod server;
pub mod spare;
pub mod split;
pub mod stats;
pub mod sysmon;
