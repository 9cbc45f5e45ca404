//! The control plane: HTTP control and metrics, served apart from the workers so it
//! answers while they are saturated.
//!
//! It is handed a narrow handle, a [`Plane`], and never the server's internals: it reads
//! snapshots of the counters, and asks for campaigns to be started, listed and
//! cancelled. What a campaign issues, and to which worker, is the server's business;
//! so is the thread and runtime this runs on, and the per-second
//! statistics line. The only way in is [`serve()`].
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

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::Router;
use redpacket_formats::server::{Counters, Snapshot};
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

#[cfg(test)]
mod tests {
    //! The routes against a plane with nothing behind it: the control plane needs no
    //! server to be tested.
    use super::*;
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    use std::sync::Mutex;
    use std::time::Duration;

    #[derive(Default)]
    struct FakePlane {
        draining: AtomicBool,
        refusal: Mutex<Option<NotStarted>>,
        orders: Mutex<Vec<CampaignOrder>>,
        counters: Arc<Counters>,
    }

    fn running() -> Vec<Campaign> {
        vec![
            Campaign {
                id: 1,
                kind: CampaignKind::Send,
                rate: 2.5,
                total: 3,
                issued: 1,
                remaining: 2,
                users: Some((4, 9)),
            },
            Campaign {
                id: 2,
                kind: CampaignKind::Shake,
                rate: 1.0,
                total: 1,
                issued: 0,
                remaining: 1,
                users: None,
            },
        ]
    }

    impl Plane for FakePlane {
        fn snapshot(&self) -> Snapshot {
            Snapshot::default()
        }
        fn worker_snapshots(&self) -> Vec<Snapshot> {
            vec![Snapshot::default(); 2]
        }
        fn draining(&self) -> bool {
            self.draining.load(Relaxed)
        }
        fn start_campaign(&self, order: CampaignOrder) -> Result<Campaign, NotStarted> {
            self.orders.lock().unwrap().push(order);
            match *self.refusal.lock().unwrap() {
                Some(why) => Err(why),
                None => Ok(running().remove(1)),
            }
        }
        fn campaigns(&self) -> Vec<Campaign> {
            running()
        }
        fn cancel_campaign(&self, id: u64) -> Option<Campaign> {
            running().into_iter().find(|c| c.id == id)
        }
        fn counters(&self) -> Arc<Counters> {
            self.counters.clone()
        }
    }

    /// Serves `plane` on a port of its own until the returned closure is called.
    fn serve_on_a_thread(plane: Arc<FakePlane>) -> (std::net::SocketAddr, impl FnOnce()) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let cfg = ControlConfig {
            limits: ControlLimits {
                max_conns: 8,
                header_timeout: Duration::from_secs(5),
                idle_timeout: Duration::from_secs(5),
            },
            token: None,
            metrics_open: false,
            min_campaign_qps: 0.5,
        };
        let stop = CancellationToken::new();
        let token = stop.clone();
        let t = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(serve(plane, cfg, listener, token));
        });
        (addr, move || {
            stop.cancel();
            t.join().unwrap();
        })
    }

    /// One request; the status code and the body of its answer.
    fn ask(addr: std::net::SocketAddr, method: &str, path: &str) -> (u16, String) {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        write!(
            c,
            "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).unwrap();
        let status = answer[9..12].parse().unwrap();
        let (_, body) = answer.split_once("\r\n\r\n").unwrap();
        (status, body.to_string())
    }

    #[test]
    fn the_routes_answer_from_the_plane_byte_for_byte() {
        let plane = Arc::new(FakePlane::default());
        let (addr, stop) = serve_on_a_thread(plane.clone());

        assert_eq!(
            ask(addr, "GET", "/campaigns"),
            (
                200,
                r#"[{"id":1,"kind":"send","rate":2.5,"total":3,"issued":1,"remaining":2,"users":[4,9]},{"id":2,"kind":"shake","rate":1.0,"total":1,"issued":0,"remaining":1}]"#.to_string()
            )
        );
        assert_eq!(
            ask(addr, "GET", "/yaohongbao?qps=1&sum=1"),
            (
                200,
                r#"{"id":2,"kind":"shake","rate":1.0,"total":1,"issued":0,"remaining":1}"#
                    .to_string()
            )
        );
        assert_eq!(
            ask(addr, "GET", "/fahongbao?qps=3&sum=4&min=5&max=90").0,
            200
        );
        assert_eq!(
            *plane.orders.lock().unwrap(),
            vec![
                CampaignOrder::Shake { rate: 1.0, sum: 1 },
                CampaignOrder::Send {
                    rate: 3.0,
                    sum: 4,
                    min: 5,
                    max: 90
                }
            ]
        );

        // Checked here, never asked of the plane.
        let (code, body) = ask(addr, "GET", "/yaohongbao?qps=0.1&sum=1");
        assert_eq!(code, 400);
        assert!(
            body.starts_with("qps must be a number in [0.5, 10000000]"),
            "{body}"
        );
        assert_eq!(
            ask(addr, "GET", "/fahongbao?qps=1&sum=1"),
            (
                400,
                "missing min and max (the user id range of recipients)\n".to_string()
            )
        );
        assert_eq!(plane.orders.lock().unwrap().len(), 2);

        // The plane's refusals, in words.
        *plane.refusal.lock().unwrap() = Some(NotStarted::TooFewUsers {
            need: 3,
            min: 5,
            max: 6,
        });
        assert_eq!(
            ask(addr, "GET", "/fahongbao?qps=1&sum=1&min=5&max=6"),
            (
                400,
                "min..max must hold at least 3 users (each packet goes to 3 distinct users); got 5..6\n"
                    .to_string()
            )
        );
        *plane.refusal.lock().unwrap() = Some(NotStarted::TooMany { max: 7 });
        assert_eq!(
            ask(addr, "GET", "/yaohongbao?qps=1&sum=1"),
            (
                429,
                "7 campaigns are running (--max-campaigns): wait for one to finish or \
                 cancel one with DELETE /campaigns/ID\n"
                    .to_string()
            )
        );

        assert_eq!(ask(addr, "DELETE", "/campaigns/1").0, 200);
        assert_eq!(
            ask(addr, "DELETE", "/campaigns/7"),
            (
                404,
                "no running campaign 7 (finished, cancelled or never started)\n".to_string()
            )
        );
        assert_eq!(ask(addr, "GET", "/stats/workers").0, 200);

        plane.draining.store(true, Relaxed);
        assert_eq!(
            ask(addr, "GET", "/yaohongbao?qps=1&sum=1"),
            (503, "shutting down\n".to_string())
        );
        assert_eq!(
            plane.counters.conns.load(Relaxed),
            11,
            "every connection counted"
        );
        stop();
    }
}
