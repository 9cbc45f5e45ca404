//! redpacket: the thread-per-core red-packet server.
//!
//! A walk through the crate, bottom up (the wire format, the system layer, the run
//! folder's formats, the host checks and the HTTP control plane are crates of their
//! own: `redpacket-protocol`, `redpacket-sys`, `redpacket-formats`, `redpacket-host`,
//! `redpacket-control`):
//! - [`split`] and [`apportion`]: the two money decisions, as pure functions: how a
//!   user-to-user packet is split, and how shake packets (and the overload budget) are
//!   divided among workers and SETs in proportion to demand.
//! - [`config`]: flags checked before anything binds, and which CPUs get workers.
//! - [`server`]: workers, SETs, connections, the issuer and the per-second statistics
//!   line, and the control thread that serves `redpacket_control` through the narrow
//!   handle it asks for (`redpacket_control::Plane`); [`cli`]: the `redpacket-server`
//!   entry point.
//! - [`lives`]: a server restarted in the same folder keeps its earlier life's lines
//!   and says whether that life's ledger was lost.

pub mod apportion;
pub mod cli;
pub mod config;
pub mod lives;
pub mod server;
pub mod split;
