//! The line protocols between a `--procs` parent and its children, both ends.
//!
//! The parent writes `set MODE PHASE QPS SEND_RATE` to a child's stdin whenever the plan
//! (or `/qps`) changes ([`follow_parent`] applies them in the child); the child writes
//! one JSON `Record` a line to its stdout: a record per second (stamped with the whole
//! unix second it covers, with counts and the latency histogram in the serialised form
//! of `histograms.json` so the parent merges exactly), `connected` after its ramp,
//! per-phase totals and `done` at the end ([`read_child`] files the seconds by stamp for
//! the parent's lines, see [`super::seconds`], and adds up the rest).

use crate::metrics::{Counts, Tally};
use crate::run_state::{RunState, WorkerBlock, MODE_STOP};
use hdrhistogram::Histogram;
use redpacket_formats::histograms;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{mpsc, Arc, Mutex};

/// One line from a child.
#[derive(Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
enum Record {
    Second {
        /// The end of the interval, unix seconds: a whole second, but for the last
        /// (partial) one.
        t: f64,
        interval_s: f64,
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

/// What the writer thread turns into a line: a second's tally is encoded there.
enum Job {
    Second {
        t: f64,
        interval_s: f64,
        tally: Box<Tally>,
        connected: u64,
        inflight: u64,
        by_source: Vec<u64>,
    },
    Line(Box<Record>),
}

/// The child's writer: a thread at nice 19 that encodes and writes every record, in
/// order. The coordinator cuts a second at normal priority, on time (a cut made late
/// moves counts into the wrong second), and hands the tally over; encoding its
/// histogram (a deflate stream) and writing wait for a free CPU, inside the parent's
/// grace for a child's record.
struct Writer {
    tx: mpsc::Sender<Job>,
    thread: std::thread::JoinHandle<()>,
}

static WRITER: Mutex<Option<Writer>> = Mutex::new(None);

fn emit(job: Job) {
    let mut w = WRITER.lock().unwrap_or_else(|e| e.into_inner());
    if w.is_none() {
        let (tx, rx) = mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name("loadgen-writer".into())
            .spawn(move || {
                redpacket_sys::cores::background();
                for job in rx {
                    write(job);
                }
            });
        match spawned {
            Ok(thread) => *w = Some(Writer { tx, thread }),
            Err(_) => return write(job),
        }
    }
    if let Some(Err(mpsc::SendError(job))) = w.as_ref().map(|w| w.tx.send(job)) {
        write(job);
    }
}

fn write(job: Job) {
    let r = match job {
        Job::Second {
            t,
            interval_s,
            tally,
            connected,
            inflight,
            by_source,
        } => Record::Second {
            t,
            interval_s,
            counts: tally.counts,
            hist: encode(&tally.latency),
            connected,
            inflight,
            by_source,
        },
        Job::Line(r) => *r,
    };
    if let Ok(s) = serde_json::to_string(&r) {
        let out = std::io::stdout();
        let mut out = out.lock();
        let _ = writeln!(out, "{s}");
        let _ = out.flush();
    }
}

/// What a child reports with each second besides its tally: the gauges.
pub struct Gauges<'a> {
    pub connected: u64,
    pub inflight: u64,
    pub by_source: &'a [u64],
}

/// Sends the figures of the interval of `interval_s` ending at unix time `t` to the
/// parent.
pub fn emit_second(t: f64, interval_s: f64, tally: Tally, g: Gauges) {
    let Gauges {
        connected,
        inflight,
        by_source,
    } = g;
    emit(Job::Second {
        t,
        interval_s,
        tally: Box::new(tally),
        connected,
        inflight,
        by_source: by_source.to_vec(),
    });
}
/// Tells the parent how many users are in after the ramp.
pub fn emit_connected(connected: u64) {
    emit(Job::Line(Box::new(Record::Connected { connected })));
}
/// Sends phase `i`'s totals to the parent.
pub fn emit_phase(i: usize, t: &Tally) {
    emit(Job::Line(Box::new(Record::Phase {
        i,
        counts: t.counts,
        hist: encode(&t.latency),
    })));
}
/// Tells the parent this child has sent everything, once every earlier record is out.
pub fn emit_done() {
    emit(Job::Line(Box::new(Record::Done)));
    let w = WRITER.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(Writer { tx, thread }) = w {
        drop(tx);
        let _ = thread.join();
    }
}

/// A histogram for the pipe: nothing for an empty one (an idle second), which spares
/// the child a deflate stream (its set-up is most of an idle child's CPU) and the
/// parent its inflating.
fn encode(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        String::new()
    } else {
        histograms::encode(h).unwrap_or_default()
    }
}

fn tally(counts: Counts, hist: &str) -> Tally {
    let mut t = Tally {
        counts,
        ..Tally::default()
    };
    if hist.is_empty() {
        return t;
    }
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
pub fn follow_parent(shared: Arc<RunState>) {
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
                        shared.set_mode(m, Some(p));
                    }
                }
            }
            shared.set_mode(MODE_STOP, None);
        });
}

/// In the parent: reads child `i`'s records from its stdout into its `block` until
/// `done` or the end of the pipe; seconds are filed by their stamp.
pub fn read_child(stdout: impl Read, block: &WorkerBlock, i: usize) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        match serde_json::from_str::<Record>(&line) {
            Ok(Record::Second {
                t,
                interval_s: _,
                counts,
                hist,
                connected,
                inflight,
                by_source,
            }) => {
                let second = tally(counts, &hist);
                if let Ok(mut s) = block.seconds.lock() {
                    s.put(t, &second);
                }
                if let Ok(mut v) = block.by_source.lock() {
                    *v = by_source;
                }
                block.connected.store(connected, Relaxed);
                block.inflight.store(inflight, Relaxed);
            }
            Ok(Record::Connected { connected }) => block.connected.store(connected, Relaxed),
            Ok(Record::Phase { i, counts, hist }) => block.add_phase(&tally(counts, &hist), i),
            Ok(Record::Done) => break,
            Err(e) => eprintln!("loadgen: child {i}: unreadable line ({e})"),
        }
    }
    // Done, or the child died: it holds no users, and no line waits for it.
    if let Ok(mut s) = block.seconds.lock() {
        s.end();
    }
    block.connected.store(0, Relaxed);
    block.inflight.store(0, Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_histograms() {
        let mut t = Tally::default();
        t.counts.sent = 7;
        t.record_us(1234);
        let r = Record::Second {
            t: 1_795_000_001.0,
            interval_s: 1.0,
            counts: t.counts,
            hist: encode(&t.latency),
            connected: 3,
            inflight: 1,
            by_source: vec![2, 1],
        };
        let s = serde_json::to_string(&r).unwrap();
        match serde_json::from_str::<Record>(&s).unwrap() {
            Record::Second {
                t,
                counts,
                hist,
                connected,
                ..
            } => {
                let back = tally(counts, &hist);
                assert_eq!((back.counts.sent, back.latency.len(), connected), (7, 1, 3));
                assert_eq!(t, 1_795_000_001.0);
            }
            _ => panic!("wrong record"),
        }
    }

    #[test]
    fn an_empty_histogram_crosses_as_nothing_and_adds_nothing() {
        let idle = Tally::default();
        assert_eq!(encode(&idle.latency), "");
        let back = tally(Counts::default(), "");
        assert_eq!(back.latency.len(), 0);
        // Still a histogram of the usual bounds, which tallies add into.
        let mut busy = Tally::default();
        busy.record_us(5000);
        let mut sum = back;
        sum.latency.add(&busy.latency).unwrap();
        assert_eq!(sum.latency.len(), 1);
    }
}
