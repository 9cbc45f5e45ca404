//! The control thread: one thread and runtime of its own, off the workers, running what
//! is not a request: the issuer's tick, the per-second statistics line, and the control
//! plane ([`redpacket_control`]), which sees this server only through [`ServerPlane`].

use super::issuer::{self, Issuer};
use super::{stats_log, Held, ServerState};
use redpacket_control::{Campaign, CampaignOrder, NotStarted, Plane};
use redpacket_formats::server::{Counters, Snapshot};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// The server as the control plane sees it.
struct ServerPlane {
    state: Arc<ServerState>,
    issuer: Arc<Mutex<Issuer>>,
    shutdown: CancellationToken,
}

impl Plane for ServerPlane {
    fn snapshot(&self) -> Snapshot {
        self.state.snapshot()
    }

    fn worker_snapshots(&self) -> Vec<Snapshot> {
        self.state.worker_snapshots()
    }

    fn draining(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    fn start_campaign(&self, order: CampaignOrder) -> Result<Campaign, NotStarted> {
        issuer::lock(&self.issuer).start(order)
    }

    fn campaigns(&self) -> Vec<Campaign> {
        issuer::lock(&self.issuer).campaigns()
    }

    fn cancel_campaign(&self, id: u64) -> Option<Campaign> {
        issuer::lock(&self.issuer).cancel(id)
    }

    fn counters(&self) -> Arc<Counters> {
        self.state.control_counters.clone()
    }
}

/// The thread's body: serves the control plane, ticks the issuer and writes per-second
/// statistics until `stop` (campaigns stop issuing at `shutdown`). Returns the shake
/// packets still in the issuer's central pool.
pub fn run(
    state: Arc<ServerState>,
    listener: std::net::TcpListener,
    shutdown: CancellationToken,
    stop: CancellationToken,
) -> Held {
    let Some(rt) = super::thread_runtime("control") else {
        return Held::default();
    };
    // Housekeeping (the per-second line, the issuer, the control port) waits for the
    // workers when both want a CPU; on a server with cores to spare it changes nothing.
    redpacket_sys::cores::background();
    let issuer = Arc::new(Mutex::new(Issuer::new(state.clone())));
    let plane = Arc::new(ServerPlane {
        state: state.clone(),
        issuer: issuer.clone(),
        shutdown: shutdown.clone(),
    });
    let cfg = state.cfg.control_config();
    rt.block_on(async {
        let ticker = tokio::spawn(issuer::issue_every_tick(issuer.clone(), shutdown));
        let writer = tokio::spawn(stats_log::write_every_second(state, stop.clone()));
        redpacket_control::serve(plane, cfg, listener, stop).await;
        ticker.abort();
        let _ = writer.await;
    });
    let held = issuer::lock(&issuer).held();
    held
}
