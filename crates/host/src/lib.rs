//! What a host allows and does, for both programs: the wanted settings, the capacity
//! check, and the once-a-second sampler.
//!
//! - [`conf`]: the annotated `sysctl/*.conf` files, the single source of the wanted
//!   settings, built into the binaries;
//! - [`reserve`]: the descriptors a process keeps back from its connections;
//! - [`check`]: `redpacket-server check` and `redpacket-loadgen check`, the server's
//!   start-up line and the load generator's refusal before a run;
//! - [`sampler`]: `net.jsonl` once a second on its own thread; [`tuning`]: the host's
//!   settings at the start of a run (`tuning.txt`).
//!
//! The readings themselves (limits, sysctls, `/proc`) are `redpacket_sys`'s; nothing
//! else in either program reads `/proc` or `/sys`.

pub mod check;
pub mod conf;
pub mod reserve;
pub mod sampler;
pub mod tuning;
