//! The view's loop: follow every host, give out each second as it is ready, until the
//! run's end (or until told to stop).

use crate::follow::{self, Event, Source};
use crate::{terminal, Fleet, Role};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// What a view saw, for its last words.
#[derive(Debug, Default)]
pub struct Watched {
    pub seconds: usize,
    /// Records that came after their second was given out (in the report, not live).
    pub late: u64,
    pub unreadable: u64,
    /// Hosts named missing in at least one second.
    pub missed: std::collections::BTreeSet<String>,
}

/// How long past the run's end the view waits for its last seconds before it stops
/// with what it has.
const LINGER_S: f64 = 5.0;

/// After `stop` is set, how long records still in flight (a file's last lines) are read
/// before the held seconds are given out.
const DRAIN_S: f64 = 1.5;

/// Follows `hosts` until every second up to `until` is out (at most [`LINGER_S`] past
/// its deadline), or, without `until`, until `stop` is set (then the records still in
/// flight are read and every second held is given out): each second's line to
/// `print`, its record to `out` (one JSON object per line). `print` also receives a
/// line for a follower that ended.
pub fn watch(
    hosts: &[(Source, Role)],
    until: Option<f64>,
    out: &mut dyn Write,
    print: &mut dyn FnMut(&str),
    stop: &AtomicBool,
) -> std::io::Result<Watched> {
    let now = follow::unix_now();
    let mut fleet = Fleet::new(
        hosts
            .iter()
            .map(|(s, r)| (s.host.as_str(), *r, s.files.clone())),
        now,
    );
    if let Some(until) = until {
        fleet.end_at(until);
    }
    let (tx, rx) = mpsc::channel();
    let _followers = follow::start(
        &hosts.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>(),
        &tx,
    )?;
    drop(tx);
    let mut seen = Watched::default();
    let give_up = until.map_or(f64::INFINITY, |u| {
        u.ceil() + crate::fleet::DEADLINE_S + LINGER_S
    });
    let mut stopping: Option<f64> = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Event::Line {
                host,
                file,
                line,
                at,
            }) => {
                fleet.feed(&host, &file, &line, at);
            }
            Ok(Event::Ended { host, why }) => {
                print(&format!(
                    "live: stopped following {host}{}",
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!(": {why}")
                    }
                ));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let now = follow::unix_now();
        if stopping.is_none() && stop.load(Ordering::Relaxed) {
            stopping = Some(now + DRAIN_S);
        }
        let drained = stopping.is_some_and(|at| now >= at);
        let lines = if drained {
            fleet.flush(now)
        } else {
            fleet.ready(now)
        };
        for l in lines {
            serde_json::to_writer(&mut *out, &l)?;
            out.write_all(b"\n")?;
            out.flush()?;
            print(&terminal::line(&l));
            seen.seconds += 1;
            seen.missed.extend(l.missing.keys().cloned());
        }
        if fleet.done() || now > give_up || drained {
            break;
        }
    }
    seen.late = fleet.late;
    seen.unreadable = fleet.unreadable;
    Ok(seen)
}
