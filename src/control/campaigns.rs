//! Campaigns over HTTP: `/yaohongbao` (shake packets at a rate), `/fahongbao`
//! (user-to-user packets at a rate), `GET /campaigns`, `DELETE /campaigns/ID`, and the
//! loop that ticks the issuer every [`super::issuer::TICK`].

use super::issuer::{Campaign, MAX_RATE, MAX_SUM};
use super::{bad, Ctl};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::time::Instant;

/// Ticks the issuer until the thread stops; while shutting down it issues nothing.
pub(super) async fn issue_loop(ctl: Ctl) {
    let mut iv = tokio::time::interval(super::issuer::TICK);
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

#[derive(Deserialize)]
pub(super) struct CampaignQuery {
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

pub(super) async fn yaohongbao(
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

pub(super) async fn fahongbao(
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
    let k = redpacket_protocol::MAX_RECIPIENTS as u64;
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

pub(super) async fn campaigns(State(ctl): State<Ctl>) -> Response {
    axum::Json(ctl.issuer().campaigns().to_vec()).into_response()
}

/// `DELETE /campaigns/ID`: 200 with the campaign's last state, 404 if it is not running.
pub(super) async fn cancel_campaign(
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
