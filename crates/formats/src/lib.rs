//! Every file of a run folder, as one type each, shared by the program that writes it
//! and the report that reads it.
//!
//! A format defined twice (a writer's struct and a reader's copy) lets a renamed field
//! read as zeros without anyone noticing; here the writer serialises the very struct the
//! reader deserialises. Readers are tolerant on the same struct: `#[serde(default)]`
//! fills what an older or newer writer left out, and unknown fields are ignored, so a
//! field may be added without a new schema number (`results/README.md` documents every
//! file with its units).
//!
//! | file | type | written by |
//! |---|---|---|
//! | `run.json` | [`RunMeta`] | whatever drives the run (the demo, the fleet playbooks) |
//! | `<host>/loadgen.jsonl` | [`LoadgenLine`] | the load generator, once a second |
//! | `<host>/summary.json` | [`LoadgenSummary`] | the load generator, at exit |
//! | `<host>/histograms.json` | [`HistogramsFile`] | the load generator, at exit |
//! | `<host>[/instance-I]/server.jsonl` | [`ServerLine`] | the server, once a second |
//! | `<host>[/instance-I]/server-summary.json` | [`ServerSummary`] | the server, at exit |
//! | `<host>[/instance-I]/server-summary.life-N.json` | [`ServerSummary`] | the server: life N's account, moved aside when a later life started in the folder |
//! | `<host>[/instance-I]/starts.jsonl` | [`StartLine`] | the server (`--host-dir`), at each start |
//! | `<host>/net.jsonl` | [`NetLine`] | the host sampler, once a second |
//! | `<host>/footprint.jsonl` | [`FootprintLine`] | the demo (both sides on one host), once a second |
//! | `<host>/tuning.txt` | `key = value` lines ([`tuning::parse`]) | the host sampler, at start |
//! | `live.jsonl` | [`LiveLine`] | `redpacket-live` on the controller, once a second while the run goes |
//!
//! The server's counters are here too ([`server`]): a worker's counter block and the
//! snapshot it sums to are one macro, so a counter cannot be added to one and not the
//! other.

pub mod footprint;
pub mod histograms;
pub mod live;
pub mod lives;
pub mod loadgen;
pub mod net;
pub mod run;
pub mod server;
pub mod tuning;

pub use footprint::{FootprintLine, ProcessGroup};
pub use histograms::{HistogramsFile, PhaseHistogram};
pub use live::LiveLine;
pub use loadgen::{
    Answered, ConnEvents, Connections, Errors, Latency, LoadgenLine, LoadgenSummary, Money,
    Packets, PhaseSummary, Verdict,
};
pub use run::{HostEntry, HostInfo, PhasePlan, RunMeta, SCHEMA};

/// `starts.jsonl`: one line per start of a server in its folder; an earlier life lost
/// (killed before its final account) as the account and the starts record it.
pub use lives::{LostLife, Previous, StartLine, STARTS_FILE};
/// `net.jsonl`: one line per second.
pub use net::NetLine;
/// `server.jsonl`: one line per second.
pub use server::SecondLine as ServerLine;
/// `server-summary.json`: the server's final account.
pub use server::Summary as ServerSummary;

/// The folder, inside a host folder, of server instance `i` (1-based) when one host runs
/// several servers (`redpacket-server --instance I`).
pub fn instance_dir(i: u32) -> String {
    format!("instance-{i}")
}

/// The instance number of a folder named like [`instance_dir`]'s, if it is one.
pub fn parse_instance_dir(name: &str) -> Option<u32> {
    name.strip_prefix("instance-")?
        .parse()
        .ok()
        .filter(|i| *i > 0)
}
