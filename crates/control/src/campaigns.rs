//! Campaigns over HTTP: `/yaohongbao` (shake packets at a rate), `/fahongbao`
//! (user-to-user packets at a rate), `GET /campaigns`, `DELETE /campaigns/ID`. The
//! queries are checked here; what a campaign issues is the [`super::Plane`]'s.

use super::{bad, CampaignOrder, Ctl, NotStarted};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// Most packets one campaign may ask for, and the fastest rate.
pub const MAX_SUM: u64 = 1_000_000_000;
pub const MAX_RATE: f64 = 10_000_000.0;

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

/// Asks the plane for the campaign and answers with it, or with why it was refused.
fn start(ctl: &Ctl, order: CampaignOrder) -> Response {
    match ctl.plane.start_campaign(order) {
        Ok(c) => (StatusCode::OK, axum::Json(c)).into_response(),
        Err(NotStarted::TooMany { max }) => (
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "{max} campaigns are running (--max-campaigns): wait for one to finish or \
                 cancel one with DELETE /campaigns/ID\n"
            ),
        )
            .into_response(),
        Err(NotStarted::TooFewUsers { need, min, max }) => bad(format!(
            "min..max must hold at least {need} users (each packet goes to {need} distinct users); got {min}..{max}"
        )),
    }
}

fn shutting_down() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
}

pub(super) async fn yaohongbao(
    State(ctl): State<Ctl>,
    q: Result<Query<CampaignQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return bad("bad query: expected qps=R&sum=N with numbers");
    };
    if ctl.plane.draining() {
        return shutting_down();
    }
    match rate_and_sum(&q, ctl.cfg.min_campaign_qps) {
        Ok((rate, sum)) => start(&ctl, CampaignOrder::Shake { rate, sum }),
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
    if ctl.plane.draining() {
        return shutting_down();
    }
    let (rate, sum) = match rate_and_sum(&q, ctl.cfg.min_campaign_qps) {
        Ok(v) => v,
        Err(m) => return bad(m),
    };
    let (Some(min), Some(max)) = (q.min, q.max) else {
        return bad("missing min and max (the user id range of recipients)");
    };
    start(
        &ctl,
        CampaignOrder::Send {
            rate,
            sum,
            min,
            max,
        },
    )
}

pub(super) async fn campaigns(State(ctl): State<Ctl>) -> Response {
    axum::Json(ctl.plane.campaigns()).into_response()
}

/// `DELETE /campaigns/ID`: 200 with the campaign's last state, 404 if it is not running.
pub(super) async fn cancel_campaign(
    State(ctl): State<Ctl>,
    id: Result<Path<u64>, axum::extract::rejection::PathRejection>,
) -> Response {
    let Ok(Path(id)) = id else {
        return bad("bad campaign id: expected a number, as in /campaigns");
    };
    match ctl.plane.cancel_campaign(id) {
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
