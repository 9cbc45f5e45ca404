//! `--procs N`: the users split over N child processes, one output.
//!
//! One process may hold only as many users as it may open files. The parent re-executes
//! itself as `run --child` once per slice of users; each child runs the ordinary engine
//! and speaks two line protocols: the parent writes `set MODE PHASE QPS SEND_RATE` to its
//! stdin whenever the plan (or `/qps`) changes, and the child writes JSON to its stdout:
//! a record per second (counts and the latency histogram, in the serialised form of
//! `histograms.json` so the parent merges exactly), `connected` after its ramp, per-phase totals and `done` at the
//! end. The parent feeds these into the same [`crate::shared::WorkerBlock`]s its own threads would use,
//! so everything downstream is unchanged.

use crate::engine::{Shared, MODE_STOP};
use crate::metrics::{Counts, Tally};
use crate::run::RunConfig;
use crate::users::UserRange;
use redpacket_formats::histograms;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One line from a child.
#[derive(Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
enum Record {
    Second {
        counts: Counts,
        hist: String,
        connected: u64,
        inflight: u64,
        #[serde(default)]
        by_source: Vec<u64>,
    },
    Connected {
        connected: u64,
    },
    Phase {
        i: usize,
        counts: Counts,
        hist: String,
    },
    Done,
}

fn emit(r: &Record) {
    if let Ok(s) = serde_json::to_string(r) {
        let out = std::io::stdout();
        let mut out = out.lock();
        let _ = writeln!(out, "{s}");
        let _ = out.flush();
    }
}

pub fn emit_second(t: &Tally, connected: u64, inflight: u64, by_source: &[u64]) {
    emit(&Record::Second {
        counts: t.counts,
        hist: histograms::encode(&t.latency).unwrap_or_default(),
        connected,
        inflight,
        by_source: by_source.to_vec(),
    });
}
pub fn emit_connected(connected: u64) {
    emit(&Record::Connected { connected });
}
pub fn emit_phase(i: usize, t: &Tally) {
    emit(&Record::Phase {
        i,
        counts: t.counts,
        hist: histograms::encode(&t.latency).unwrap_or_default(),
    });
}
pub fn emit_done() {
    emit(&Record::Done);
}

fn tally(counts: Counts, hist: &str) -> Tally {
    let mut t = Tally {
        counts,
        ..Tally::default()
    };
    match histograms::decode(hist) {
        // Into a histogram of the usual bounds, so that tallies keep adding up.
        Ok(h) => {
            let _ = t.latency.add(&h);
        }
        Err(e) => eprintln!("loadgen: a child's latency histogram is lost: {e}"),
    }
    t
}

/// In a child: applies the parent's `set` lines; end of stdin (parent gone) stops.
pub fn follow_parent(shared: Arc<Shared>) {
    let _ = std::thread::Builder::new()
        .name("loadgen-parent".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                let Ok(line) = line else { break };
                let f: Vec<&str> = line.split_whitespace().collect();
                if let ["set", mode, phase, qps, send] = f[..] {
                    if let (Ok(m), Ok(p), Ok(q), Ok(s)) = (
                        mode.parse::<u8>(),
                        phase.parse::<usize>(),
                        qps.parse::<f64>(),
                        send.parse::<f64>(),
                    ) {
                        shared.set_qps(q);
                        shared.set_send_rate(s);
                        shared.phase.store(p, Relaxed);
                        shared.mode.store(m, Relaxed);
                    }
                }
            }
            shared.mode.store(MODE_STOP, Relaxed);
        });
}

/// The parent's handle on its children.
pub struct Children {
    procs: Vec<Child>,
    stdins: Vec<ChildStdin>,
    readers: Vec<std::thread::JoinHandle<()>>,
    /// Users of all children: closing a connection costs each a little, so the time
    /// they are given to stop grows with it.
    users: u64,
}

impl Children {
    pub fn command(&mut self, line: &str) {
        for s in &mut self.stdins {
            let _ = writeln!(s, "{line}");
            let _ = s.flush();
        }
    }

    /// Waits (bounded) for every child to finish and its last figures to arrive.
    pub fn finish(mut self, shared: &Shared) {
        let _ = shared;
        self.stdins.clear();
        // 30 s, plus a second per 10 000 users to close: with a million loopback users
        // on 2 CPUs, 51 children closing ~20 000 each, two were not done after 30 s.
        let deadline = Instant::now() + Duration::from_secs(30 + self.users / 10_000);
        for c in &mut self.procs {
            loop {
                match c.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        eprintln!("loadgen: child {} did not stop; killing it", c.id());
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

/// The `run` arguments that make a child drive `slice` as part of `cfg`.
pub fn child_args(cfg: &RunConfig, slice: UserRange) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "run".into(),
        "--child".into(),
        "--users".into(),
        slice.to_string(),
        "--all-users".into(),
        cfg.all_users.to_string(),
        "--connect-rate".into(),
        (cfg.connect_rate / cfg.procs.max(1) as f64).to_string(),
        "--connect-deadline".into(),
        format!("{}s", cfg.connect_deadline_s),
        "--threads".into(),
        cfg.threads.to_string(),
        "--timeout".into(),
        format!("{}ms", cfg.timeout.as_millis()),
        "--connect-timeout".into(),
        format!("{}ms", cfg.connect_timeout.as_millis()),
        "--think-ms".into(),
        format!("{}..{}", cfg.think_ms.0, cfg.think_ms.1),
        "--send-cents".into(),
        format!("{}..{}", cfg.send_cents.0, cfg.send_cents.1),
        "--seed".into(),
        cfg.seed.wrapping_add(u64::from(slice.start)).to_string(),
        "--tick".into(),
        format!("{}us", cfg.tick.as_micros()),
        "--quiet".into(),
    ];
    // Each server as given (bare, or with its range): the child applies the same rule
    // to its slice, with the run's users as --all-users.
    for s in &cfg.servers {
        a.push("--server".into());
        a.push(s.to_string());
    }
    if !cfg.source_addrs.is_empty() {
        a.push("--source-addrs".into());
        a.push(
            cfg.source_addrs
                .iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    if cfg.reconnect {
        a.push("--reconnect".into());
    }
    if !cfg.pin {
        a.push("--no-pin".into());
    }
    a
}

/// Starts one child per slice, each feeding `shared.workers[i]`.
pub fn spawn_children(
    cfg: &RunConfig,
    slices: &[UserRange],
    shared: Arc<Shared>,
) -> Result<Children, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find this program to re-run it: {e}"))?;
    let mut ch = Children {
        procs: Vec::new(),
        stdins: Vec::new(),
        readers: Vec::new(),
        users: slices.iter().map(|s| u64::from(s.len())).sum(),
    };
    for (i, slice) in slices.iter().enumerate() {
        let mut child = Command::new(&exe)
            .args(child_args(cfg, *slice))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start child {i}: {e}"))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(format!("child {i} has no pipes"));
        };
        let sh = shared.clone();
        let reader = std::thread::Builder::new()
            .name(format!("loadgen-child{i}"))
            .spawn(move || {
                let block = &sh.workers[i];
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    match serde_json::from_str::<Record>(&line) {
                        Ok(Record::Second {
                            counts,
                            hist,
                            connected,
                            inflight,
                            by_source,
                        }) => {
                            if let Ok(mut iv) = block.interval.lock() {
                                iv.add(&tally(counts, &hist));
                            }
                            if let Ok(mut v) = block.by_source.lock() {
                                *v = by_source;
                            }
                            block.connected.store(connected, Relaxed);
                            block.inflight.store(inflight, Relaxed);
                        }
                        Ok(Record::Connected { connected }) => {
                            block.connected.store(connected, Relaxed)
                        }
                        Ok(Record::Phase { i, counts, hist }) => {
                            block.add_phase(&tally(counts, &hist), i)
                        }
                        Ok(Record::Done) => break,
                        Err(e) => eprintln!("loadgen: child {i}: unreadable line ({e})"),
                    }
                }
                // Done, or the child died: it holds no users and waits for nothing.
                block.connected.store(0, Relaxed);
                block.inflight.store(0, Relaxed);
            })
            .map_err(|e| e.to_string())?;
        ch.procs.push(child);
        ch.stdins.push(stdin);
        ch.readers.push(reader);
    }
    Ok(ch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command as Sub};
    use crate::users::{split_even, Targets};
    use clap::Parser;

    #[test]
    fn children_get_the_servers_as_given_and_connect_users_alike() {
        for servers in [
            "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3",
            "198.18.0.10:1025=0..1334,198.18.0.10:1026=1334..2667",
        ] {
            let args = [
                "x",
                "run",
                "--users",
                "300..2000",
                "--server",
                servers,
                "--procs",
                "3",
            ];
            let Sub::Run(a) = Cli::try_parse_from(args).unwrap().command else {
                panic!()
            };
            let cfg = a.config().unwrap();
            let parent = Targets::new(&cfg.servers, cfg.all_users, cfg.users).unwrap();
            for slice in split_even(cfg.users, cfg.procs) {
                let argv = std::iter::once("x".to_string()).chain(child_args(&cfg, slice));
                let Sub::Run(b) = Cli::try_parse_from(argv).unwrap().command else {
                    panic!()
                };
                assert_eq!(b.server, a.server);
                let child = b.config().unwrap();
                assert!(child.child);
                assert_eq!((child.users, child.all_users), (slice, cfg.users));
                let tg = Targets::new(&child.servers, child.all_users, child.users).unwrap();
                for u in slice.start..slice.end {
                    assert_eq!(tg.server_for(u), parent.server_for(u), "user {u}");
                }
            }
        }
    }

    #[test]
    fn records_round_trip_with_histograms() {
        let mut t = Tally::default();
        t.counts.sent = 7;
        t.record_us(1234);
        let r = Record::Second {
            counts: t.counts,
            hist: histograms::encode(&t.latency).unwrap(),
            connected: 3,
            inflight: 1,
            by_source: vec![2, 1],
        };
        let s = serde_json::to_string(&r).unwrap();
        match serde_json::from_str::<Record>(&s).unwrap() {
            Record::Second {
                counts,
                hist,
                connected,
                ..
            } => {
                let back = tally(counts, &hist);
                assert_eq!((back.counts.sent, back.latency.len(), connected), (7, 1, 3));
            }
            _ => panic!("wrong record"),
        }
    }
}
