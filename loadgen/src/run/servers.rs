//! The servers' HTTP, as a client: campaigns started at each phase, and every server's
//! `/stats` for the money check.

use crate::http;
use crate::plan::Phase;
use crate::run_config::RunConfig;
use crate::users::Targets;
use redpacket_formats::{Money, Packets};
use std::net::SocketAddr;
use std::time::Duration;

/// `GET /stats` of one server.
pub fn fetch_stats(addr: SocketAddr) -> Result<redpacket_formats::server::Snapshot, String> {
    let (status, body) = http::get(addr, "/stats", Duration::from_secs(5))?;
    if status != 200 {
        return Err(format!("{addr}/stats answered {status}"));
    }
    serde_json::from_str(&body).map_err(|e| format!("{addr}/stats: {e}"))
}

/// Starts the phase's campaigns on every server, each for its own range of users (its
/// even shard, or the range its `--server` gives) and at its share of the phase's rate
/// (its range's share of all servers' users), so the phase's rates hold however many
/// servers there are.
pub(super) fn start_campaigns(cfg: &RunConfig, targets: &Targets, p: &Phase) {
    let all = targets.total_users().max(1) as f64;
    let (mut started, mut failed) = (Vec::new(), 0usize);
    for (addr, (r, _)) in cfg.server_controls.iter().zip(&targets.shards) {
        let share = f64::from(r.len()) / all;
        let mut calls = Vec::new();
        if p.shake_campaign_qps > 0.0 {
            let qps = p.shake_campaign_qps * share;
            let sum = (qps * p.duration_s).ceil() as u64;
            calls.push(format!("/yaohongbao?qps={qps}&sum={sum}"));
        }
        if p.send_campaign_qps > 0.0 && r.len() >= 3 {
            let qps = p.send_campaign_qps * share;
            let sum = (qps * p.duration_s).ceil() as u64;
            calls.push(format!(
                "/fahongbao?qps={qps}&sum={sum}&min={}&max={}",
                r.start,
                r.end - 1
            ));
        }
        for path in calls {
            match http::get(*addr, &path, Duration::from_secs(5)) {
                Ok((200, _)) => started.push((*addr, path)),
                Ok((s, body)) => {
                    failed += 1;
                    note!(
                        "loadgen: campaign {path} on {addr}: HTTP {s} {}",
                        body.trim()
                    )
                }
                Err(e) => {
                    failed += 1;
                    note!("loadgen: campaign {path} on {addr}: {e}")
                }
            }
        }
    }
    if cfg.quiet || started.is_empty() {
        return;
    }
    if cfg.server_controls.len() == 1 {
        for (addr, path) in &started {
            note!("loadgen: campaign {path} started on {addr}");
        }
    } else {
        note!(
            "loadgen: {} campaigns started on {} servers (shakes {}/s, sends {}/s in all){}",
            started.len(),
            cfg.server_controls.len(),
            p.shake_campaign_qps,
            p.send_campaign_qps,
            if failed > 0 {
                format!("; {failed} refused")
            } else {
                String::new()
            }
        );
    }
}

/// Reads every server's `/stats` (at `controls`) and compares the money there with what
/// the clients saw (`c`).
pub(super) fn reconcile(c: &Packets, controls: &[SocketAddr]) -> Money {
    let mut m = Money {
        client_won_cents: c.won_cents,
        client_grabbed_cents: c.grabbed_cents,
        client_sent_cents: c.sent_cents,
        ..Money::default()
    };
    if controls.is_empty() {
        m.note = "not checked (no --server-control)".into();
        return m;
    }
    let (mut won, mut grabbed, mut created) = (0, 0, 0);
    for addr in controls {
        match fetch_stats(*addr) {
            Ok(s) => {
                won += s.shake.won_cents;
                grabbed += s.send.grabbed_cents;
                created += s.send.created_cents;
            }
            Err(e) => {
                m.note = format!("not checked: {e}");
                return m;
            }
        }
    }
    m.server_won_cents = Some(won);
    m.server_grabbed_cents = Some(grabbed);
    m.server_created_cents = Some(created);
    let ok = won == c.won_cents && grabbed == c.grabbed_cents;
    m.reconciled = Some(ok);
    m.note = if ok {
        "client and server agree on won and grabbed cents".into()
    } else {
        format!(
            "won: client {} server {}; grabbed: client {} server {} (exact only when this run drives all of the server's users)",
            c.won_cents, won, c.grabbed_cents, grabbed
        )
    };
    m
}
