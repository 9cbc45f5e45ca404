//! The per-second statistics: a [`SecondLine`] a second to `--stats-out` (the run
//! folder's `server.jsonl`) and the human status line, and a last one when stopped.
//! Runs on the control thread, beside the control plane.

use super::ServerState;
use crate::config::StatsOut;
use redpacket_formats::server::SecondLine;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Writes one [`SecondLine`] a second, and a last one when stopped.
pub(super) async fn write_every_second(state: Arc<ServerState>, stop: CancellationToken) {
    let mut out: Option<Box<dyn std::io::Write + Send>> = match &state.cfg.stats_out {
        StatsOut::Off => None,
        StatsOut::Stdout => Some(Box::new(std::io::stdout())),
        StatsOut::File(p) | StatsOut::Append(p) => match std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(matches!(state.cfg.stats_out, StatsOut::Append(_)))
            .truncate(matches!(state.cfg.stats_out, StatsOut::File(_)))
            .open(p)
        {
            Ok(f) => Some(Box::new(std::io::BufWriter::new(f))),
            Err(e) => {
                tracing::error!("cannot write statistics to {}: {e}", p.display());
                None
            }
        },
    };
    let status = state.cfg.status_line;
    if out.is_none() && !status {
        return;
    }
    let mut iv = tokio::time::interval(Duration::from_secs(1));
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prev = state.snapshot();
    let mut prev_at = Instant::now();
    loop {
        let last = tokio::select! {
            _ = iv.tick() => false,
            _ = stop.cancelled() => true,
        };
        let now = Instant::now();
        let total = state.snapshot();
        let line = SecondLine {
            t: redpacket_formats::server::unix_now_f64(),
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
