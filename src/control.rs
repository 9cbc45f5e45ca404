//! The control plane, on a thread and runtime of its own, so it answers while the
//! workers are saturated and none of it runs on a worker.
//!
//! - this file: the thread, its HTTP routes and the state they share;
//! - `campaigns`: `GET /yaohongbao?qps=R&sum=N` and `GET /fahongbao?qps=R&sum=N&min=A&max=B`
//!   (the old system's endpoints, names and parameters kept), `/campaigns`, the
//!   issuer's tick; [`issuer`]: what a campaign issues and to which worker;
//! - `metrics`: `/stats`, `/stats/workers`, `/metrics` (Prometheus text);
//! - `stats_log`: the per-second statistics line (`--stats-out`) and status line;
//! - `serve`: the connections, capped and timed out; `auth`: the token, required off
//!   loopback.

mod auth;
mod campaigns;
pub mod issuer;
mod metrics;
mod serve;
mod stats_log;

pub use serve::EVICT_BURST;

pub use metrics::prometheus_text;

use crate::server::{Held, Shared};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::Router;
use campaigns::{campaigns, cancel_campaign, fahongbao, issue_loop, yaohongbao};
use issuer::Issuer;
use metrics::{metrics, stats, stats_workers};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
struct Ctl {
    shared: Arc<Shared>,
    issuer: Arc<Mutex<Issuer>>,
    shutdown: CancellationToken,
}

impl Ctl {
    fn issuer(&self) -> std::sync::MutexGuard<'_, Issuer> {
        // Only this thread takes the lock, never across an await; a poisoned lock can
        // only follow a panic in the issuer, whose state is still consistent counts.
        self.issuer.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The control thread: serves HTTP, ticks the issuer, writes per-second statistics,
/// until `stop`. Returns the shake packets still in the central pool.
pub fn run(
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
    shutdown: CancellationToken,
    stop: CancellationToken,
) -> Held {
    let Some(rt) = crate::server::thread_runtime("control") else {
        return Held::default();
    };
    let issuer = Arc::new(Mutex::new(Issuer::new(shared.clone())));
    let ctl = Ctl {
        shared: shared.clone(),
        issuer: issuer.clone(),
        shutdown: shutdown.clone(),
    };
    rt.block_on(async {
        let app = Router::new()
            .route("/", get(help))
            .route("/yaohongbao", get(yaohongbao))
            .route("/fahongbao", get(fahongbao))
            .route("/stats", get(stats))
            .route("/stats/workers", get(stats_workers))
            .route("/metrics", get(metrics))
            .route("/campaigns", get(campaigns))
            .route("/campaigns/{id}", delete(cancel_campaign))
            .with_state(ctl.clone())
            .layer(axum::middleware::from_fn_with_state(
                Arc::new(auth::Gate {
                    token: shared.cfg.control_token.clone(),
                    metrics_open: shared.cfg.control_metrics_open,
                    counters: shared.issuer_counters.clone(),
                }),
                auth::check,
            ));
        let serve = serve::serve(
            listener,
            app,
            shared.cfg.control_limits,
            shared.issuer_counters.clone(),
            stop.clone(),
        );
        let ticker = tokio::spawn(issue_loop(ctl.clone()));
        let writer = tokio::spawn(stats_log::stats_loop(shared.clone(), stop.clone()));
        if let Err(e) = serve.await {
            tracing::error!("control server failed: {e}");
        }
        ticker.abort();
        let _ = writer.await;
    });
    let held = ctl.issuer().held();
    held
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

pub(crate) fn bad(msg: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, format!("{}\n", msg.into())).into_response()
}
