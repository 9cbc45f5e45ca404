//! The control plane: HTTP control and metrics, served apart from the workers so it
//! answers while they are saturated.
//!
//! It is handed a narrow handle, a [`Plane`], and never the server's internals: it reads
//! snapshots of the counters, and asks for campaigns to be started, listed and
//! cancelled. What a campaign issues, and to which worker, is the server's business;
//! so is the thread and runtime this runs on, and the per-second
//! statistics line. The only way in is [`serve`].
//!
//! - this file: the handle, its plain request and answer types, the settings, the routes;
//! - `campaigns`: `GET /yaohongbao?qps=R&sum=N` and `GET /fahongbao?qps=R&sum=N&min=A&max=B`
//!   (the old system's endpoints, names and parameters kept), `/campaigns`,
//!   `DELETE /campaigns/ID`;
//! - `metrics`: `/stats`, `/stats/workers`, `/metrics` (Prometheus text);
//! - `serve`: the connections, capped and timed out; `auth`: the token, required off
//!   loopback.

mod auth;
mod campaigns;
mod metrics;
mod serve;

pub use auth::Token;
pub use metrics::prometheus_text;
pub use serve::{ControlLimits, EVICT_BURST};

use crate::stats::{Counters, Snapshot};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::Router;
use serde::Serialize;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What the control plane may ask of the server: exactly what its routes need.
pub trait Plane: Send + Sync + 'static {
    /// One consistent read of every counter block (`/stats`, `/metrics`).
    fn snapshot(&self) -> Snapshot;
    /// Each worker's own snapshot, in worker order (`/stats/workers`).
    fn worker_snapshots(&self) -> Vec<Snapshot>;
    /// Whether the server is shutting down: campaigns are then refused.
    fn draining(&self) -> bool;
    /// Starts a campaign, or says why not.
    fn start_campaign(&self, order: CampaignOrder) -> Result<Campaign, NotStarted>;
    /// The campaigns still running, oldest first.
    fn campaigns(&self) -> Vec<Campaign>;
    /// Stops campaign `id`; its last state, or `None` if it is not running.
    fn cancel_campaign(&self, id: u64) -> Option<Campaign>;
    /// The counter block the control plane counts its own connections and refusals in
    /// (the `control` section of a snapshot).
    fn counters(&self) -> Arc<Counters>;
}

/// A campaign asked for over HTTP, already checked for its rate and size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CampaignOrder {
    /// `/yaohongbao`: `sum` shake packets at `rate` per second.
    Shake { rate: f64, sum: u64 },
    /// `/fahongbao`: `sum` user-to-user packets at `rate` per second, each to random
    /// distinct users in `min..=max`.
    Send {
        rate: f64,
        sum: u64,
        min: u32,
        max: u32,
    },
}

/// What a campaign is, as `/campaigns` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CampaignKind {
    Shake,
    Send,
}

/// A campaign's state, as the campaign routes answer it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Campaign {
    pub id: u64,
    pub kind: CampaignKind,
    pub rate: f64,
    pub total: u64,
    /// Packets made so far (for a send campaign: made or reserved and on their way).
    pub issued: u64,
    pub remaining: u64,
    /// For send campaigns: recipients drawn from this user range (inclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<(u32, u32)>,
}

/// Why a campaign was not started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotStarted {
    /// `max` campaigns are running already (`--max-campaigns`).
    TooMany { max: usize },
    /// The user range `min..=max` holds fewer than the `need` distinct recipients of a
    /// packet.
    TooFewUsers { need: u64, min: u32, max: u32 },
}

/// The control plane's own settings, built from the command line by `crate::config`.
#[derive(Clone, Debug)]
pub struct ControlConfig {
    pub limits: ControlLimits,
    /// The token every request must carry, if any.
    pub token: Option<Token>,
    /// `/metrics` readable without the token.
    pub metrics_open: bool,
    /// Slowest campaign rate accepted (packets per second).
    pub min_campaign_qps: f64,
}

/// What every route shares.
#[derive(Clone)]
struct Ctl {
    plane: Arc<dyn Plane>,
    cfg: Arc<ControlConfig>,
}

/// Serves the control routes on `listener` until `stop`, then closes every control
/// connection. Runs on whatever runtime the caller gives it (the server's control
/// thread); errors are logged here.
pub async fn serve(
    plane: Arc<dyn Plane>,
    cfg: ControlConfig,
    listener: std::net::TcpListener,
    stop: CancellationToken,
) {
    let counters = plane.counters();
    let gate = Arc::new(auth::Gate {
        token: cfg.token.clone(),
        metrics_open: cfg.metrics_open,
        counters: counters.clone(),
    });
    let limits = cfg.limits;
    let ctl = Ctl {
        plane,
        cfg: Arc::new(cfg),
    };
    let app = Router::new()
        .route("/", get(help))
        .route("/yaohongbao", get(campaigns::yaohongbao))
        .route("/fahongbao", get(campaigns::fahongbao))
        .route("/stats", get(metrics::stats))
        .route("/stats/workers", get(metrics::stats_workers))
        .route("/metrics", get(metrics::metrics))
        .route("/campaigns", get(campaigns::campaigns))
        .route("/campaigns/{id}", delete(campaigns::cancel_campaign))
        .with_state(ctl)
        .layer(axum::middleware::from_fn_with_state(
            gate,
            auth::require_token,
        ));
    if let Err(e) = serve::serve(listener, app, limits, counters, stop).await {
        tracing::error!("control server failed: {e}");
    }
}

async fn help() -> &'static str {
    "redpacket-server control\n\
     GET /yaohongbao?qps=R&sum=N          issue N shake packets at R per second\n\
     GET /fahongbao?qps=R&sum=N&min=A&max=B  send N packets at R/s, each to 3 random users in [A,B]\n\
     GET /campaigns                        campaigns still running\n\
     DELETE /campaigns/ID                  stop campaign ID (what it issued stays in play)\n\
     GET /stats                            counters as JSON\n\
     GET /stats/workers                    each worker's counters (balance, win rates)\n\
     GET /metrics                          counters in Prometheus text format\n"
}

fn bad(msg: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, format!("{}\n", msg.into())).into_response()
}
