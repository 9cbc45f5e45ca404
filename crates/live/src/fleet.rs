//! The fleet's seconds, put together from every host's per-second records as they
//! arrive, and given out once each second is whole or its deadline has passed.
//!
//! Pure: every call takes the wall-clock time it happens at, so the tests drive it
//! through any arrival order and delay without sleeping.
//!
//! A record's second is its stamp rounded to the nearest whole second, as the report
//! keys its per-second series (`crates/report/src/series.rs`): records of many processes
//! and hosts meet in the same second, and a second of the live view sums exactly the
//! records the report sums for it. Latency percentiles come from the second's
//! histograms merged, as in the report.

use hdrhistogram::Histogram;
use redpacket_formats::live::Slowest;
use redpacket_formats::{histograms, Latency, LiveLine, LoadgenLine, ServerLine};
use std::collections::BTreeMap;

/// What a host runs; it decides which records it writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Loadgen,
    Server,
}

/// How long after a second ends its line is given out even if a host has not gone past
/// it: the view is never more than this behind (a second is usually out a second after
/// it ends, when every host's next record is in).
pub const DEADLINE_S: f64 = 2.0;

/// A host that has written nothing for this long is named as missing (within 5 s of
/// its last record, with a second's line to carry the name).
pub const MISSING_AFTER_S: f64 = 3.0;

/// One host of the run and what it has reported.
struct Host {
    role: Role,
    /// Each file it writes (a load generator's `loadgen.jsonl`, each server instance's
    /// `server.jsonl`) and the last second it has reported in it.
    streams: BTreeMap<String, Option<i64>>,
    /// When its last record arrived (wall clock).
    last_arrival: Option<f64>,
}

impl Host {
    /// Whether every file of the host has gone past second `k`: a file may hold two
    /// records of one second (the last, written at stop, ends between whole seconds), so
    /// a second is whole only once each file has a record of a later one (or at its
    /// deadline).
    fn has(&self, k: i64) -> bool {
        self.streams.values().all(|s| s.is_some_and(|s| s > k))
    }
}

/// One host's share of one second.
#[derive(Default)]
struct HostSecond {
    /// When its last record of the second arrived.
    arrived: f64,
    sent: u64,
    answered: u64,
    errors: u64,
    timeouts: u64,
    /// Gauges: the largest a record of the second showed.
    users: u64,
    target: f64,
    /// Server: shake requests received.
    shakes: u64,
}

/// One second being put together.
#[derive(Default)]
struct Second {
    hosts: BTreeMap<String, HostSecond>,
    phases: BTreeMap<String, u32>,
    /// The second's latency histograms merged, or `None` once a record that answered
    /// something came without one (an older writer): then the worst record's values.
    hist: Option<Histogram<u64>>,
    hist_broken: bool,
    worst: Latency,
}

/// What a record did to the view.
#[derive(Debug, PartialEq, Eq)]
pub enum Fed {
    /// Counted into its second.
    Counted,
    /// Its second had already been given out: the report has it, the live line not.
    Late,
    /// Of a second before the view's first (a server's, before the load began).
    Before,
    /// Not a record of the file's kind (a partial or foreign line): left out.
    Unreadable,
    /// From a host or file not in the plan: left out.
    Unknown,
}

/// The fleet's seconds.
pub struct Fleet {
    hosts: BTreeMap<String, Host>,
    seconds: BTreeMap<i64, Second>,
    /// The next second to give out; set by the first load generator record.
    next: Option<i64>,
    /// When the view started (wall clock): a host never heard from is missing since.
    started: f64,
    /// The first second given out: records of earlier ones (a server's lines from
    /// before the load generators started, read as the view starts) are not late.
    first: Option<i64>,
    /// The last second to give out, if the run's end is known, and the end itself.
    last: Option<i64>,
    end: Option<f64>,
    pub late: u64,
    pub unreadable: u64,
}

impl Fleet {
    /// A view of `hosts`, each (name, role, the names of its files), started at `now`.
    pub fn new<'a>(
        hosts: impl IntoIterator<Item = (&'a str, Role, Vec<String>)>,
        now: f64,
    ) -> Fleet {
        let hosts = hosts
            .into_iter()
            .map(|(name, role, files)| {
                let streams = files.into_iter().map(|f| (f, None)).collect();
                let host = Host {
                    role,
                    streams,
                    last_arrival: None,
                };
                (name.to_string(), host)
            })
            .collect();
        Fleet {
            hosts,
            seconds: BTreeMap::new(),
            next: None,
            started: now,
            first: None,
            last: None,
            end: None,
            late: 0,
            unreadable: 0,
        }
    }

    /// Gives out no second after the one holding `t` (the run's end), once its records
    /// are in or its deadline is past.
    pub fn end_at(&mut self, t: f64) {
        self.last = Some(t.ceil() as i64);
        self.end = Some(t);
    }

    /// Whether every second up to the run's end has been given out.
    pub fn done(&self) -> bool {
        matches!((self.next, self.last), (Some(n), Some(l)) if n > l)
    }

    /// One line of `file` of `host`, arrived at `now`.
    pub fn feed(&mut self, host: &str, file: &str, line: &str, now: f64) -> Fed {
        let Some(h) = self.hosts.get_mut(host) else {
            return Fed::Unknown;
        };
        let Some(stream) = h.streams.get_mut(file) else {
            return Fed::Unknown;
        };
        let parsed = match h.role {
            Role::Loadgen => serde_json::from_str::<LoadgenLine>(line)
                .ok()
                .map(|l| (l.t, Record::Loadgen(Box::new(l)))),
            Role::Server => serde_json::from_str::<ServerLine>(line)
                .ok()
                .map(|l| (l.t, Record::Server(Box::new(l)))),
        };
        let Some((k, record)) = parsed.and_then(|(t, r)| Some((key(t)?, r))) else {
            self.unreadable += 1;
            return Fed::Unreadable;
        };
        *stream = Some(stream.map_or(k, |s| s.max(k)));
        h.last_arrival = Some(now);
        if h.role == Role::Loadgen && self.next.is_none() {
            // The view starts with the load: servers' earlier seconds are not shown.
            self.next = Some(k);
            self.first = Some(k);
            self.seconds = self.seconds.split_off(&k);
        }
        if self.first.is_some_and(|f| k < f) {
            return Fed::Before;
        }
        if self.next.is_some_and(|n| k < n) {
            self.late += 1;
            return Fed::Late;
        }
        let second = self.seconds.entry(k).or_default();
        let hs = second.hosts.entry(host.to_string()).or_default();
        hs.arrived = hs.arrived.max(now);
        match record {
            Record::Loadgen(l) => second.loadgen(host, &l),
            Record::Server(l) => {
                second.hosts.get_mut(host).expect("entered above").shakes +=
                    l.per_second.requests.shake
            }
        }
        Fed::Counted
    }

    /// The seconds ready at `now`: every host has reported them, or their deadline has
    /// passed. A second after the run's end is never given out.
    pub fn ready(&mut self, now: f64) -> Vec<LiveLine> {
        let mut out = Vec::new();
        while let Some(k) = self.next {
            if self.last.is_some_and(|l| k > l) {
                break;
            }
            let whole = self.hosts.values().all(|h| h.has(k));
            if !whole && now < k as f64 + DEADLINE_S {
                break;
            }
            self.next = Some(k + 1);
            // A second reaching past the run's end that no load generator wrote a
            // record of is after the run, not a second of it.
            if self.end.is_some_and(|e| k as f64 > e) && !self.loadgen_in(k) {
                self.seconds.remove(&k);
                continue;
            }
            out.push(self.line(k, now));
        }
        out
    }

    /// Every second still held, up to the last one any record reached, as they are:
    /// for a view told to stop (the run is over) rather than one waiting for its end.
    pub fn flush(&mut self, now: f64) -> Vec<LiveLine> {
        if let Some(&last) = self.seconds.keys().next_back() {
            self.last = Some(self.last.map_or(last, |l| l.min(last)));
        }
        self.ready(now + DEADLINE_S)
    }

    /// Whether any load generator wrote a record of second `k`.
    fn loadgen_in(&self, k: i64) -> bool {
        self.seconds.get(&k).is_some_and(|s| {
            s.hosts
                .keys()
                .any(|h| self.hosts.get(h).is_some_and(|h| h.role == Role::Loadgen))
        })
    }

    /// Second `k`'s line, its records dropped.
    fn line(&mut self, k: i64, now: f64) -> LiveLine {
        let s = self.seconds.remove(&k).unwrap_or_default();
        let mut line = LiveLine {
            t: k,
            phase: s
                .phases
                .iter()
                .max_by_key(|(_, n)| **n)
                .map(|(p, _)| p.clone())
                .unwrap_or_default(),
            hosts_expected: self.hosts.len(),
            ..LiveLine::default()
        };
        let mut slowest: Option<Slowest> = None;
        for (name, h) in &self.hosts {
            let Some(hs) = s.hosts.get(name) else {
                let since = h.last_arrival.unwrap_or(self.started);
                line.missing.insert(name.clone(), round1(now - since));
                if h.role == Role::Server {
                    line.servers.insert(name.clone(), 0);
                }
                continue;
            };
            line.hosts_reporting += 1;
            let after = round1(hs.arrived - k as f64);
            if slowest.as_ref().is_none_or(|w| after > w.after_s) {
                slowest = Some(Slowest {
                    host: name.clone(),
                    after_s: after,
                });
            }
            match h.role {
                Role::Loadgen => {
                    line.sent += hs.sent;
                    line.answered += hs.answered;
                    line.errors += hs.errors;
                    line.timeouts += hs.timeouts;
                    line.users += hs.users;
                    line.target += hs.target;
                }
                Role::Server => {
                    line.servers.insert(name.clone(), hs.shakes);
                }
            }
        }
        line.slowest = slowest;
        let lat = match (&s.hist, s.hist_broken) {
            (Some(h), false) => Latency::of(h),
            _ => s.worst,
        };
        (line.p50_ms, line.p99_ms, line.p999_ms) = (lat.p50, lat.p99, lat.p999);
        line
    }
}

enum Record {
    Loadgen(Box<LoadgenLine>),
    Server(Box<ServerLine>),
}

impl Second {
    fn loadgen(&mut self, host: &str, l: &LoadgenLine) {
        let hs = self.hosts.get_mut(host).expect("entered by feed");
        hs.sent += l.sent;
        hs.answered += l.answered;
        hs.errors += l.errors;
        hs.timeouts += l.timeouts;
        hs.users = hs.users.max(l.connections);
        hs.target = hs.target.max(l.target_qps);
        *self.phases.entry(l.phase.clone()).or_default() += 1;
        for (w, v) in [
            (&mut self.worst.p50, l.latency_ms.p50),
            (&mut self.worst.p99, l.latency_ms.p99),
            (&mut self.worst.p999, l.latency_ms.p999),
        ] {
            if let Some(v) = v {
                *w = Some(w.map_or(v, |w: f64| w.max(v)));
            }
        }
        if l.latency_hist.is_empty() {
            // A record that answered nothing has no latency to miss.
            if l.answered > 0 || l.latency_ms.p50.is_some() {
                self.hist_broken = true;
            }
            return;
        }
        match histograms::decode(&l.latency_hist) {
            Ok(h) => {
                let sum = self.hist.get_or_insert_with(|| {
                    let mut s = histograms::new_latency_histogram();
                    s.auto(true);
                    s
                });
                if sum.add(&h).is_err() {
                    self.hist_broken = true;
                }
            }
            Err(_) => self.hist_broken = true,
        }
    }
}

/// A record's second: its stamp to the nearest whole second; none for a stamp that
/// cannot be one.
fn key(t: f64) -> Option<i64> {
    (t.is_finite() && t > 0.0 && t < 1e11).then(|| t.round() as i64)
}

fn round1(x: f64) -> f64 {
    (x.max(0.0) * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lg(t: f64, sent: u64, users: u64) -> String {
        format!(
            r#"{{"t":{t},"interval_s":1.0,"phase":"30k","target_qps":100.0,"sent":{sent},"answered":{sent},"connections":{users}}}"#
        )
    }

    fn srv(t: f64, shakes: u64) -> String {
        let mut snap = redpacket_formats::server::Snapshot::default();
        snap.requests.shake = shakes;
        let line = ServerLine {
            t,
            interval_s: 1.0,
            per_second: snap.clone(),
            total: snap,
        };
        serde_json::to_string(&line).unwrap()
    }

    fn fleet() -> Fleet {
        Fleet::new(
            [
                ("cli1", Role::Loadgen, vec!["l".to_string()]),
                ("cli2", Role::Loadgen, vec!["l".to_string()]),
                ("srv1", Role::Server, vec!["i1".into(), "i2".into()]),
            ],
            99.0,
        )
    }

    #[test]
    fn a_second_is_out_once_every_file_has_gone_past_it_and_sums_every_host() {
        let mut f = fleet();
        for (h, file, line) in [
            ("cli1", "l", lg(100.0, 10, 5)),
            ("cli2", "l", lg(100.0, 20, 7)),
            ("srv1", "i1", srv(100.0, 12)),
            ("srv1", "i2", srv(100.0, 18)),
            ("cli1", "l", lg(101.0, 1, 5)),
            ("cli2", "l", lg(101.0, 1, 7)),
            ("srv1", "i1", srv(101.0, 1)),
        ] {
            assert_eq!(f.feed(h, file, &line, 101.1), Fed::Counted);
        }
        // srv1's second instance has not gone past 100 yet.
        assert!(f.ready(101.2).is_empty());
        f.feed("srv1", "i2", &srv(101.0, 1), 101.3);
        let out = f.ready(101.3);
        assert_eq!(out.len(), 1);
        let l = &out[0];
        assert_eq!((l.t, l.sent, l.answered, l.users), (100, 30, 30, 12));
        assert_eq!(l.target, 200.0);
        assert_eq!(l.servers["srv1"], 30);
        assert_eq!((l.hosts_reporting, l.hosts_expected), (3, 3));
        assert!(l.missing.is_empty());
        assert_eq!(l.phase, "30k");
    }

    #[test]
    fn a_host_that_stops_is_named_missing_within_five_seconds_and_the_rest_go_on() {
        let mut f = fleet();
        let mut named_at = None;
        // cli2 writes its last record at 100 and dies.
        for t in 100..=108 {
            let now = t as f64 + 0.1;
            f.feed("cli1", "l", &lg(t as f64, 10, 5), now);
            f.feed("srv1", "i1", &srv(t as f64, 10), now);
            f.feed("srv1", "i2", &srv(t as f64, 10), now);
            if t == 100 {
                f.feed("cli2", "l", &lg(t as f64, 10, 7), now);
            }
            for l in f.ready(now) {
                // Never more than the deadline behind.
                assert!(now - l.t as f64 <= DEADLINE_S + 0.11, "{} at {now}", l.t);
                if l.t >= 101 {
                    assert!(l.missing.contains_key("cli2"), "{l:?}");
                    assert_eq!(l.hosts_reporting, 2);
                    named_at.get_or_insert(now);
                }
            }
        }
        // Named within 5 s of its last record.
        let named_at = named_at.expect("cli2 named");
        assert!(named_at - 100.1 <= 5.0, "named at {named_at}");
        assert!(!f.done());
    }

    #[test]
    fn a_record_after_its_second_is_out_is_late_and_not_counted() {
        let mut f = fleet();
        f.feed("cli1", "l", &lg(100.0, 10, 5), 100.1);
        let out = f.ready(102.1);
        assert_eq!(out.len(), 1, "out at its deadline without the others");
        assert_eq!(out[0].missing.len(), 2);
        assert_eq!(f.feed("cli2", "l", &lg(100.0, 10, 5), 102.2), Fed::Late);
        assert_eq!(f.late, 1);
        assert_eq!(f.feed("cli2", "x", &lg(100.0, 10, 5), 102.2), Fed::Unknown);
        assert_eq!(
            f.feed("cli2", "l", "{\"t\": \"soon\"}", 102.2),
            Fed::Unreadable
        );
    }

    #[test]
    fn the_view_ends_with_the_run() {
        let mut f = fleet();
        f.end_at(101.4);
        f.feed("cli1", "l", &lg(100.0, 10, 5), 100.1);
        f.feed("cli1", "l", &lg(101.0, 10, 5), 101.1);
        // Its last record, at stop, after the end: second 101.
        f.feed("cli1", "l", &lg(101.45, 1, 5), 101.5);
        assert!(!f.done());
        let out = f.ready(200.0);
        // Second 102 reaches past the end and no load generator wrote of it.
        assert_eq!(out.iter().map(|l| l.t).collect::<Vec<_>>(), vec![100, 101]);
        assert_eq!(out[1].sent, 11);
        assert!(f.done());
    }

    #[test]
    fn a_servers_records_from_before_the_load_are_not_late() {
        let mut f = fleet();
        f.feed("cli1", "l", &lg(100.0, 10, 5), 100.1);
        assert_eq!(f.feed("srv1", "i1", &srv(98.0, 0), 100.2), Fed::Before);
        assert_eq!(f.late, 0);
    }
}
