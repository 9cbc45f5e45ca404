//! Counters over HTTP: `/stats` (JSON), `/stats/workers` (each worker's), `/metrics`
//! (Prometheus text).

use super::Ctl;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use redpacket_formats::server::Snapshot;
use std::fmt::Write as _;

pub(super) async fn stats(State(ctl): State<Ctl>) -> Response {
    axum::Json(ctl.plane.snapshot()).into_response()
}

pub(super) async fn stats_workers(State(ctl): State<Ctl>) -> Response {
    axum::Json(ctl.plane.worker_snapshots()).into_response()
}

pub(super) async fn metrics(State(ctl): State<Ctl>) -> Response {
    let body = prometheus_text(&ctl.plane.snapshot());
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
