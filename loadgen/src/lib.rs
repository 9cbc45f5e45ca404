//! `redpacket-loadgen`: the load generator that proves the redpacket server.
//!
//! Reading order:
//! - [`cli`]: flags, checked and turned into a [`run_config::RunConfig`] (or a
//!   [`demo::DemoConfig`]); `main` is one call.
//! - [`run`]: the coordinator (limits, plan, per-second lines, drain, money, summary);
//!   the limits are [`redpacket_host::check`]'s, the code behind `check` too.
//! - [`engine`]: worker threads, one epoll set each, open-loop shakes with latency from
//!   the scheduled time; [`conn`] the 96-byte state per user; [`run_state`] what the
//!   coordinator and the workers share.
//! - [`metrics`] (counters and HdrHistograms), [`output`] (the files and the table a
//!   run writes), [`run_dir`] (naming a run's folder).
//! - [`plan`] (phases), [`users`] (id ranges and sharding), [`addrs`] (source
//!   addresses); socket and epoll calls are `redpacket_sys`'s, shared with the server,
//!   [`http`] (the small HTTP it speaks, and [`prometheus`] the text format its
//!   `/metrics` answers in, [`token`] who may use its `--control`), [`procs`] (`--procs N`: the children and,
//!   in [`procs::pipe`], what they say to the parent).
//! - [`demo`] (the one-command local run), [`instances`] (its server instances, laid
//!   out by the open-files limit), [`footprint`] (what the run costs the host) and
//!   [`siblings`] (the server and report programs it runs).
//!
//! The wire format is the server's own [`redpacket_protocol`]; there is no second codec.

pub mod addrs;
pub mod cli;
pub mod conn;
pub mod demo;
pub mod engine;
pub mod fleet_view;
pub mod footprint;
pub mod http;
pub mod instances;
pub mod metrics;
pub mod output;
pub mod plan;
pub mod procs;
pub mod prometheus;
pub mod run;
pub mod run_config;
pub mod run_dir;
pub mod run_state;
pub mod siblings;
pub mod token;
pub mod users;
