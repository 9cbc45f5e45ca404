//! The per-second statistics: a [`SecondLine`] a second to `--stats-out` (the run
//! folder's `server.jsonl`) and the human status line, and a last one when stopped.
//! Runs on the control thread, beside the control plane.
//!
//! Lines fall on whole seconds of the wall clock, each stamped with the second it ends
//! on, as the load generator's and the host sampler's do: the lines of every instance,
//! process and host of a run then cover the same seconds and add up second by second.
//! `interval_s` is the time really measured since the previous line.

use super::ServerState;
use crate::config::StatsOut;
use redpacket_formats::server::{unix_now_f64, SecondLine};
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
    let mut prev = state.snapshot();
    let mut prev_at = Instant::now();
    let mut second = next_whole_second(unix_now_f64());
    loop {
        let wait = Duration::from_secs_f64((second - unix_now_f64()).max(0.0));
        let last = tokio::select! {
            _ = tokio::time::sleep(wait) => false,
            _ = stop.cancelled() => true,
        };
        let now = Instant::now();
        let total = state.snapshot();
        // A whole second, but for the last line: the partial one up to the stop.
        let t = if last { unix_now_f64() } else { second };
        let line = SecondLine {
            t,
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
        // The next whole second; after a stall of more than one, the next to come.
        second = (second + 1.0).max(next_whole_second(unix_now_f64()));
    }
}

/// The first whole unix second after `now`.
fn next_whole_second(now: f64) -> f64 {
    now.floor() + 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_fall_on_the_next_whole_second() {
        assert_eq!(next_whole_second(1_795_000_000.0), 1_795_000_001.0);
        assert_eq!(next_whole_second(1_795_000_000.999), 1_795_000_001.0);
        assert_eq!(next_whole_second(1_795_000_000.001), 1_795_000_001.0);
    }
}
