//! HTTP control and metrics, on a thread and runtime of their own.
//!
//! It answers while the workers are saturated, and it is also where the issuer ticks and
//! where the per-second statistics are written, so none of that runs on a worker.
//! The old system's endpoints keep their names and parameters:
//! `GET /yaohongbao?qps=R&sum=N` and `GET /fahongbao?qps=R&sum=N&min=A&max=B`.
//! Its connections are capped and timed out (`serve`), and off loopback every request
//! needs the token (`auth`).

mod auth;
mod serve;

pub use serve::EVICT_BURST;

use crate::config::StatsOut;
use crate::server::issuer::{Campaign, Issuer, MAX_RATE, MAX_SUM};
use crate::server::{Held, Shared};
use crate::stats::{SecondLine, Snapshot};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::Router;
use serde::Deserialize;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
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
        let writer = tokio::spawn(stats_loop(shared.clone(), stop.clone()));
        if let Err(e) = serve.await {
            tracing::error!("control server failed: {e}");
        }
        ticker.abort();
        let _ = writer.await;
    });
    let held = ctl.issuer().held();
    held
}

async fn issue_loop(ctl: Ctl) {
    let mut iv = tokio::time::interval(crate::server::issuer::TICK);
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Instant::now();
    loop {
        iv.tick().await;
        if ctl.shutdown.is_cancelled() {
            // Shutting down: campaigns stop issuing; what was issued stays counted.
            continue;
        }
        let now = Instant::now();
        ctl.issuer().tick(now.duration_since(last).as_secs_f64());
        last = now;
    }
}

/// Writes one [`SecondLine`] a second, and a last one when stopped.
async fn stats_loop(shared: Arc<Shared>, stop: CancellationToken) {
    let mut out: Option<Box<dyn std::io::Write + Send>> = match &shared.cfg.stats_out {
        StatsOut::Off => None,
        StatsOut::Stdout => Some(Box::new(std::io::stdout())),
        StatsOut::File(p) => match std::fs::File::create(p) {
            Ok(f) => Some(Box::new(std::io::BufWriter::new(f))),
            Err(e) => {
                tracing::error!("cannot write statistics to {}: {e}", p.display());
                None
            }
        },
    };
    let status = shared.cfg.status_line;
    if out.is_none() && !status {
        return;
    }
    let mut iv = tokio::time::interval(Duration::from_secs(1));
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prev = shared.snapshot();
    let mut prev_at = Instant::now();
    loop {
        let last = tokio::select! {
            _ = iv.tick() => false,
            _ = stop.cancelled() => true,
        };
        let now = Instant::now();
        let total = shared.snapshot();
        let line = SecondLine {
            t: crate::stats::unix_now_f64(),
            interval_s: now.duration_since(prev_at).as_secs_f64(),
            per_second: total.minus(&prev),
            total: total.clone(),
        };
        if let (Some(out), Ok(s)) = (out.as_mut(), serde_json::to_string(&line)) {
            let _ = writeln!(out, "{s}");
            let _ = out.flush();
        }
        if status {
            println!("{}", line.human());
        }
        prev = total;
        prev_at = now;
        if last {
            return;
        }
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

#[derive(Deserialize)]
struct CampaignQuery {
    qps: Option<f64>,
    sum: Option<u64>,
    min: Option<u32>,
    max: Option<u32>,
}

fn rate_and_sum(q: &CampaignQuery, min_rate: f64) -> Result<(f64, u64), String> {
    let qps = q.qps.ok_or("missing qps (packets per second)")?;
    let sum = q.sum.ok_or("missing sum (packets in all)")?;
    if !(qps.is_finite() && (min_rate..=MAX_RATE).contains(&qps)) {
        return Err(format!(
            "qps must be a number in [{min_rate}, {MAX_RATE}] packets per second \
             (--min-campaign-qps: a slower campaign would hold its place for ever); got {qps}"
        ));
    }
    if sum == 0 || sum > MAX_SUM {
        return Err(format!("sum must be in 1..={MAX_SUM}"));
    }
    Ok((qps, sum))
}

fn started(c: Option<Campaign>, max: usize) -> Response {
    match c {
        Some(c) => (StatusCode::OK, axum::Json(c)).into_response(),
        None => (
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "{max} campaigns are running (--max-campaigns): wait for one to finish or \
                 cancel one with DELETE /campaigns/ID\n"
            ),
        )
            .into_response(),
    }
}

async fn yaohongbao(
    State(ctl): State<Ctl>,
    q: Result<Query<CampaignQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return bad("bad query: expected qps=R&sum=N with numbers");
    };
    if ctl.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    let cfg = &ctl.shared.cfg;
    match rate_and_sum(&q, cfg.min_campaign_qps) {
        Ok((qps, sum)) => started(ctl.issuer().start_shake(qps, sum), cfg.max_campaigns),
        Err(m) => bad(m),
    }
}

async fn fahongbao(
    State(ctl): State<Ctl>,
    q: Result<Query<CampaignQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return bad("bad query: expected qps=R&sum=N&min=A&max=B with numbers");
    };
    if ctl.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    let cfg = &ctl.shared.cfg;
    let (qps, sum) = match rate_and_sum(&q, cfg.min_campaign_qps) {
        Ok(v) => v,
        Err(m) => return bad(m),
    };
    let (Some(min), Some(max)) = (q.min, q.max) else {
        return bad("missing min and max (the user id range of recipients)");
    };
    let k = crate::protocol::MAX_RECIPIENTS as u64;
    if min > max || u64::from(max) - u64::from(min) + 1 < k {
        return bad(format!(
            "min..max must hold at least {k} users (each packet goes to {k} distinct users); got {min}..{max}"
        ));
    }
    started(
        ctl.issuer().start_send(qps, sum, min, max),
        cfg.max_campaigns,
    )
}

async fn campaigns(State(ctl): State<Ctl>) -> Response {
    axum::Json(ctl.issuer().campaigns().to_vec()).into_response()
}

/// `DELETE /campaigns/ID`: 200 with the campaign's last state, 404 if it is not running.
async fn cancel_campaign(
    State(ctl): State<Ctl>,
    id: Result<Path<u64>, axum::extract::rejection::PathRejection>,
) -> Response {
    let Ok(Path(id)) = id else {
        return bad("bad campaign id: expected a number, as in /campaigns");
    };
    match ctl.issuer().cancel(id) {
        Some(c) => {
            tracing::info!(
                "campaign {id} cancelled: {} of {} packets issued",
                c.issued,
                c.total
            );
            (StatusCode::OK, axum::Json(c)).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            format!("no running campaign {id} (finished, cancelled or never started)\n"),
        )
            .into_response(),
    }
}

async fn stats(State(ctl): State<Ctl>) -> Response {
    axum::Json(ctl.shared.snapshot()).into_response()
}

async fn stats_workers(State(ctl): State<Ctl>) -> Response {
    axum::Json(ctl.shared.worker_snapshots()).into_response()
}

async fn metrics(State(ctl): State<Ctl>) -> Response {
    let body = prometheus_text(&ctl.shared.snapshot());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// Renders a snapshot in the Prometheus text format: counters of each section as
/// `redpacket_<section>_<name>_total`, closes by reason, and the gauges.
pub fn prometheus_text(s: &Snapshot) -> String {
    let mut out = String::new();
    let gauges = [
        ("redpacket_connections_open", "Connections open now", s.open),
        (
            "redpacket_users_logged_in",
            "Users logged in now",
            s.logged_in,
        ),
        ("redpacket_workers", "Worker threads", s.workers as u64),
        (
            "redpacket_shake_outstanding_packets",
            "Shake packets issued, not yet won",
            s.outstanding.shake,
        ),
        (
            "redpacket_shake_outstanding_cents",
            "Cents of shake packets not yet won",
            s.outstanding.shake_cents,
        ),
        (
            "redpacket_send_outstanding_cents",
            "Cents of user-to-user packets neither grabbed nor refunded",
            s.outstanding.send_cents,
        ),
    ];
    for (name, help, v) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    }
    let sections = serde_json::json!({
        "connections": s.connections,
        "requests": s.requests,
        "shake": s.shake,
        "send": s.send,
        "control": s.control,
    });
    if let Some(map) = sections.as_object() {
        for (section, fields) in map {
            for (field, v) in fields.as_object().into_iter().flatten() {
                let name = format!("redpacket_{section}_{field}_total");
                let _ = writeln!(out, "# TYPE {name} counter\n{name} {v}");
            }
        }
    }
    let _ = writeln!(out, "# HELP redpacket_closes_total Connections closed, by reason\n# TYPE redpacket_closes_total counter");
    for (reason, n) in &s.closes {
        let _ = writeln!(out, "redpacket_closes_total{{reason=\"{reason}\"}} {n}");
    }
    out
}
