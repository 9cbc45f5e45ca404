//! Per-second series from every host, aligned on whole seconds.
//!
//! Hosts sample at different offsets within a second, so each reading is keyed by its
//! time rounded to the nearest second, and series from several hosts are summed (QPS,
//! connections) or maxed (CPU) per key. Client latency percentiles do not add up: when
//! every load generator line of a second carries its histogram (`latency_hist`), the
//! second's histograms are merged and its percentiles read from the sum (exact); a
//! second where any line lacks one (older writers) keeps the worst line's value.

use std::collections::BTreeMap;

use super::load::{Role, Run};
use redpacket_formats::{histograms, Latency};

/// A count as one line wrote it: (stamp, interval, events).
type Line = (f64, f64, f64);

/// Name -> (second -> value).
#[derive(Debug, Default)]
pub struct Series {
    map: BTreeMap<String, BTreeMap<i64, f64>>,
    /// Every count as its lines wrote it, one list per process in time order:
    /// (stamp, interval, events), so a phase can be cut at its own boundaries whatever
    /// second each process happened to stamp.
    events: BTreeMap<String, Vec<Vec<Line>>>,
    /// Name -> (second -> the time its lines cover, from the earliest line's start to
    /// the latest line's stamp), so a peak can leave out a second that straddles a
    /// phase's edge.
    covers: BTreeMap<String, BTreeMap<i64, (f64, f64)>>,
    /// Seconds whose client latency is read from their merged histograms (exact).
    pub latency_merged: usize,
    /// Latency histograms of `loadgen.jsonl` lines that could not be decoded (no real
    /// writer makes one); their seconds keep the worst line's values.
    pub latency_undecodable: usize,
}

/// How far a second's lines may reach past a phase's edge and still count as inside
/// it: clock jitter between a line's stamp and the phase's, not a share of another
/// phase's load.
const EDGE_SLACK_S: f64 = 0.01;

#[derive(Clone, Copy, Debug)]
enum Agg {
    Sum,
    Max,
}

impl Series {
    #[cfg(test)]
    fn put(&mut self, name: &str, t: f64, v: f64, agg: Agg) {
        // A line without a time (t = 0) cannot be placed: leave it out.
        if let Some(k) = key(t).filter(|_| v.is_finite()) {
            self.put_key(name, k, v, agg);
        }
    }

    fn put_key(&mut self, name: &str, k: i64, v: f64, agg: Agg) {
        let e = self
            .map
            .entry(name.to_string())
            .or_default()
            .entry(k)
            .or_insert(match agg {
                Agg::Sum => 0.0,
                Agg::Max => f64::MIN,
            });
        match agg {
            Agg::Sum => *e += v,
            Agg::Max => *e = e.max(v),
        }
    }

    /// Records that second `k` of `name` covers `(lo, hi]`, widening what it covered.
    fn cover_key(&mut self, name: &str, k: i64, (lo, hi): (f64, f64)) {
        let e = self
            .covers
            .entry(name.to_string())
            .or_default()
            .entry(k)
            .or_insert((lo, hi));
        *e = (e.0.min(lo), e.1.max(hi));
    }

    /// The peak of a per-second series over `[start, end)`, from the seconds wholly
    /// inside it: a second whose lines reach across an edge (the idle phase's first
    /// second, with the end of the connect ramp in it) is left out, as no share of it
    /// can be told apart. A second known only by its key covers `(k - 1, k]`.
    pub fn peak(&self, name: &str, start: f64, end: f64) -> Option<f64> {
        let m = self.map.get(name)?;
        if !start.is_finite() || !end.is_finite() || end <= start {
            return None;
        }
        let covers = self.covers.get(name);
        let lo = start.floor() as i64;
        let hi = end.ceil() as i64 + 1;
        m.range(lo..=hi)
            .filter(|(k, _)| {
                let (a, b) = covers
                    .and_then(|c| c.get(k))
                    .copied()
                    .unwrap_or((**k as f64 - 1.0, **k as f64));
                a >= start - EDGE_SLACK_S && b <= end + EDGE_SLACK_S
            })
            .map(|(_, v)| *v)
            .reduce(f64::max)
    }

    pub fn get(&self, name: &str) -> Option<&BTreeMap<i64, f64>> {
        self.map.get(name)
    }

    /// Values of the seconds that belong to `[start, end)`. A line stamped `t` covers
    /// the second before `t`, so second `k` (lines stamped near `k`) is centred on
    /// `k - 0.5`; it belongs to the phase that holds its centre.
    pub fn window(&self, name: &str, start: f64, end: f64) -> Vec<(i64, f64)> {
        let Some(m) = self.map.get(name) else {
            return Vec::new();
        };
        if !start.is_finite() || !end.is_finite() {
            return Vec::new();
        }
        let lo = (start + 0.5).ceil() as i64;
        let hi = (end + 0.5).ceil() as i64 - 1;
        if lo > hi {
            return Vec::new();
        }
        m.range(lo..=hi).map(|(k, v)| (*k, *v)).collect()
    }

    /// The count of a counter between `start` and `end`, cut at exactly those times,
    /// the same way for every process (client and server alike), so a phase's counts
    /// agree to within the events in flight across its edges.
    ///
    /// A line stamped `t` with interval `dt` covers `(t - dt, t]`. A line inside the
    /// window counts whole; a line across an edge is split there, each side at the rate
    /// of the neighbouring line on that side (a phase changes the rate at its edge, so
    /// spreading the line evenly would give the old rate's share to the new phase). A
    /// process counts nothing before its first line or after its last: the missing
    /// neighbour's rate is 0, so a run's last phase, which ends inside each process's
    /// short shutdown line, keeps that line's events (the load stopped with the phase,
    /// the process a little later). The parts of a line always add up to
    /// the line, so adjacent phases lose and double nothing. A series known only by
    /// whole seconds (no lines kept) takes second `k` as `(k - 1, k]`, spread evenly.
    /// `None` when no line touches the window.
    pub fn cut(&self, name: &str, start: f64, end: f64) -> Option<f64> {
        if let Some(procs) = self.events.get(name) {
            if !start.is_finite() || !end.is_finite() || end <= start {
                return None;
            }
            let mut seen = false;
            let mut total = 0.0;
            for lines in procs {
                for (i, &(t, dt, v)) in lines.iter().enumerate() {
                    let lo = t - dt;
                    if t <= start || lo >= end {
                        continue;
                    }
                    seen = true;
                    let rate = |j: Option<usize>| {
                        j.and_then(|j| lines.get(j)).map_or(0.0, |&(_, d, c)| c / d)
                    };
                    let (prev, next) = (rate(i.checked_sub(1)), rate(Some(i + 1)));
                    let share = match (lo < start, t > end) {
                        (false, false) => 1.0,
                        (true, false) => split((prev, start - lo), (next, t - start)),
                        (false, true) => split((next, t - end), (prev, end - lo)),
                        (true, true) => (end - start) / dt,
                    };
                    total += v * share;
                }
            }
            return seen.then_some(total);
        }
        self.cut_with_cover(name, start, end)
            .map(|(total, _)| total)
    }

    /// The mean rate of a counter over `[start, end)`: its cut count over the phase's
    /// length, so it agrees with the phase's counts (`name` without `/s`).
    pub fn cut_rate(&self, name: &str, start: f64, end: f64) -> Option<f64> {
        self.cut(name, start, end).map(|c| c / (end - start))
    }

    /// The mean of a per-second series over `[start, end)`, each second weighted by the
    /// share of it inside the window (the same cut as [`Series::cut`]); seconds without
    /// a line are left out rather than counted as zero.
    pub fn cut_mean(&self, name: &str, start: f64, end: f64) -> Option<f64> {
        self.cut_with_cover(name, start, end)
            .map(|(total, cover)| total / cover)
    }

    /// The cut total and the seconds of data it covers.
    fn cut_with_cover(&self, name: &str, start: f64, end: f64) -> Option<(f64, f64)> {
        let m = self.map.get(name)?;
        if !start.is_finite() || !end.is_finite() || end <= start {
            return None;
        }
        let lo = start.floor() as i64 + 1;
        let hi = end.ceil() as i64;
        let mut cover = 0.0;
        let mut total = 0.0;
        for (k, v) in m.range(lo..=hi) {
            let kf = *k as f64;
            let share = (kf.min(end) - (kf - 1.0).max(start)).clamp(0.0, 1.0);
            if share > 0.0 {
                cover += share;
                total += v * share;
            }
        }
        (cover > 0.0).then_some((total, cover))
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.map.keys()
    }

    /// The first and last second any series has.
    pub fn span(&self) -> Option<(i64, i64)> {
        let lo = self.map.values().filter_map(|m| m.keys().next()).min()?;
        let hi = self
            .map
            .values()
            .filter_map(|m| m.keys().next_back())
            .max()?;
        Some((*lo, *hi))
    }
}

/// The share of a line inside a phase, from its part outside and its part inside, each
/// as (rate, length); by length alone when both rates are 0.
fn split(outside: (f64, f64), inside: (f64, f64)) -> f64 {
    let (o, i) = (outside.0 * outside.1, inside.0 * inside.1);
    if o + i > 0.0 {
        i / (o + i)
    } else {
        inside.1 / (outside.1 + inside.1)
    }
}

/// The interface that carried the most packets on a host: the one whose PPS matters
/// (`lo` on a one-machine run, the NIC on a fleet).
pub fn main_iface(net: &[redpacket_formats::NetLine]) -> Option<String> {
    let last = net.last()?;
    last.ifaces
        .iter()
        .max_by_key(|(_, i)| i.total.rx_packets + i.total.tx_packets)
        .map(|(n, _)| n.clone())
}

/// One host's lines, accumulated per second before they meet other hosts' lines.
///
/// A host can write two lines stamped in the same second (the last line at shutdown
/// covers a fraction of a second): its counts and intervals are added up and the rate is
/// their quotient, never a sum of two rates. Gauges keep the larger value.
#[derive(Default)]
struct HostAcc {
    interval: BTreeMap<i64, f64>,
    /// Per second, the time its lines cover: (earliest start, latest stamp).
    spans: BTreeMap<i64, (f64, f64)>,
    /// The current line's (stamp, interval), for `events`.
    current: Option<(f64, f64)>,
    events: BTreeMap<String, Vec<Line>>,
    counts: BTreeMap<String, BTreeMap<i64, f64>>,
    gauges: BTreeMap<String, (Agg, BTreeMap<i64, f64>)>,
}

fn key(t: f64) -> Option<i64> {
    (t.is_finite() && t > 0.0).then(|| t.round() as i64)
}

impl HostAcc {
    fn line(&mut self, t: f64, dt: f64) {
        if let Some(k) = key(t) {
            let dt = if dt > 0.0 && dt.is_finite() { dt } else { 1.0 };
            *self.interval.entry(k).or_default() += dt;
            let e = self.spans.entry(k).or_insert((t - dt, t));
            *e = (e.0.min(t - dt), e.1.max(t));
            self.current = Some((t, dt));
        }
    }
    fn count(&mut self, name: &str, t: f64, v: f64) {
        if let Some(k) = key(t).filter(|_| v.is_finite()) {
            if let Some((lt, dt)) = self.current.filter(|c| c.0 == t) {
                self.events
                    .entry(name.to_string())
                    .or_default()
                    .push((lt, dt, v));
            }
            *self
                .counts
                .entry(name.to_string())
                .or_default()
                .entry(k)
                .or_default() += v;
        }
    }
    /// A gauge; `across` says how hosts combine (connections add up, latency maxes).
    fn gauge(&mut self, name: &str, t: f64, v: f64, across: Agg) {
        if let Some(k) = key(t).filter(|_| v.is_finite()) {
            let e = self
                .gauges
                .entry(name.to_string())
                .or_insert((across, BTreeMap::new()))
                .1
                .entry(k)
                .or_insert(f64::MIN);
            *e = e.max(v);
        }
    }
    /// Adds this host's series to `s`: each count as `name` (events in the second) and
    /// `name/s` (events per second), each gauge as `name`.
    fn flush(self, s: &mut Series) {
        for (name, ev) in self.events {
            s.events.entry(name).or_default().push(ev);
        }
        for (name, m) in self.counts {
            for (k, c) in m {
                let dt = self.interval.get(&k).copied().unwrap_or(1.0);
                let rate = format!("{name}/s");
                s.put_key(&name, k, c, Agg::Sum);
                s.put_key(&rate, k, c / dt, Agg::Sum);
                if let Some(&span) = self.spans.get(&k) {
                    s.cover_key(&name, k, span);
                    s.cover_key(&rate, k, span);
                }
            }
        }
        for (name, (agg, m)) in self.gauges {
            for (k, v) in m {
                s.put_key(&name, k, v, agg);
                if let Some(&span) = self.spans.get(&k) {
                    s.cover_key(&name, k, span);
                }
            }
        }
    }
}

/// One server line into its host's accumulator: the fleet's `server.*` series, the
/// host's `host.<host>.*` (its instances added up) and, for an instance,
/// `host.<host>/instance-I.*`.
fn server_line(acc: &mut HostAcc, host: &str, unit: &str, l: &redpacket_formats::ServerLine) {
    let (t, ps, tot) = (l.t, &l.per_second, &l.total);
    acc.line(t, l.interval_s);
    // Served: answered with a packet or "none left", i.e. not shed.
    let served = (ps.shake.won + ps.shake.none) as f64;
    for (k, v) in [
        ("server.shake", ps.requests.shake as f64),
        ("server.served", served),
        ("server.won", ps.shake.won as f64),
        ("server.none", ps.shake.none as f64),
        ("server.overloaded", ps.shake.overloaded as f64),
        ("server.issued", ps.shake.issued as f64),
        ("server.created", ps.send.created as f64),
        ("server.grabbed", ps.send.grabbed as f64),
    ] {
        acc.count(k, t, v);
    }
    acc.gauge("server.open", t, tot.open as f64, Agg::Sum);
    acc.gauge("server.logged_in", t, tot.logged_in as f64, Agg::Sum);
    // The run's own sockets on this host: servers' open connections here, added to the
    // load generator's logged-in users below (processes add up per second).
    acc.gauge(
        &format!("host.{host}.own_sockets"),
        t,
        tot.open as f64,
        Agg::Sum,
    );
    let mut units = vec![host.to_string()];
    if unit != host {
        units.push(unit.to_string());
    }
    for u in &units {
        acc.count(&format!("host.{u}.served"), t, served);
        acc.count(
            &format!("host.{u}.server.overloaded"),
            t,
            ps.shake.overloaded as f64,
        );
        acc.gauge(
            &format!("host.{u}.server.open"),
            t,
            tot.open as f64,
            Agg::Sum,
        );
    }
    for (k, v) in [
        ("issued_cents", tot.shake.issued_cents),
        ("won_cents", tot.shake.won_cents),
        ("shake_outstanding_cents", tot.outstanding.shake_cents),
        ("created_cents", tot.send.created_cents),
        ("grabbed_cents", tot.send.grabbed_cents),
        ("refunded_cents", tot.send.refunded_cents),
        ("send_outstanding_cents", tot.outstanding.send_cents),
    ] {
        acc.gauge(&format!("server.total.{k}"), t, v as f64, Agg::Sum);
    }
}

/// Every host's lines as series. Names: `server.*`, `client.*` (all hosts of that role
/// together), `host.<name>.*` (one host; `host.<name>/instance-I.*` one of its server
/// instances); counts also have a `/s` rate series.
pub fn build(run: &Run) -> Series {
    let mut s = Series::default();
    for h in &run.hosts {
        let host = &h.name;
        if h.role() == Role::Server {
            // Each server process has its own lines and intervals: an accumulator each,
            // summed into the host's and the fleet's series when flushed.
            for log in &h.servers {
                let unit = log.label(host);
                let mut acc = HostAcc::default();
                for l in &log.lines {
                    server_line(&mut acc, host, &unit, l);
                }
                acc.flush(&mut s);
            }
        }
        let mut acc = HostAcc::default();
        for l in &h.loadgen {
            loadgen_line(&mut acc, host, l);
        }
        acc.flush(&mut s);
        // Each file has its own intervals: a fresh accumulator for the sampler's lines.
        let mut acc = HostAcc::default();
        let iface = main_iface(&h.net);
        for l in &h.net {
            net_line(&mut acc, host, iface.as_ref(), l);
        }
        acc.flush(&mut s);
    }
    merged_latency(run, &mut s);
    s
}

/// After this many undecodable histograms the rest of the run's are not tried: a real
/// writer makes none, and each try costs up to `histograms::MAX_DECODED` inflated.
const UNDECODABLE_BUDGET: usize = 16;

/// The percentiles of each second's merged latency histograms, over the worst line's
/// values, for every second whose load generator lines all carry one.
///
/// One second at a time: its histograms are decoded one by one into a sum and dropped,
/// so memory stays at one second's sum however long the run. A histogram that cannot
/// be decoded (`histograms::decode` refuses what would cost more than a real one)
/// leaves that second's worst-line values, and is counted.
fn merged_latency(run: &Run, s: &mut Series) {
    // Second -> the histograms of its lines, or None once a line lacks one.
    let mut seconds: BTreeMap<i64, Option<Vec<&str>>> = BTreeMap::new();
    for h in &run.hosts {
        for l in &h.loadgen {
            let Some(k) = key(l.t) else { continue };
            let e = seconds.entry(k).or_insert_with(|| Some(Vec::new()));
            match e {
                Some(v) if !l.latency_hist.is_empty() => v.push(&l.latency_hist),
                // A line that answered nothing has no latency to miss.
                Some(_) if l.answered == 0 && l.latency_ms.p50.is_none() => {}
                _ => *e = None,
            }
        }
    }
    for (k, hists) in seconds {
        let Some(hists) = hists.filter(|v| !v.is_empty()) else {
            continue;
        };
        if s.latency_undecodable >= UNDECODABLE_BUDGET {
            s.latency_undecodable += hists.len();
            continue;
        }
        let mut sum = histograms::new_latency_histogram();
        sum.auto(true);
        let ok = hists.iter().all(|enc| match histograms::decode(enc) {
            Ok(h) => sum.add(&h).is_ok(),
            Err(_) => false,
        });
        if !ok {
            s.latency_undecodable += 1;
            continue;
        }
        s.latency_merged += 1;
        let lat = Latency::of(&sum);
        for (name, v) in [
            ("p50", lat.p50),
            ("p90", lat.p90),
            ("p99", lat.p99),
            ("p999", lat.p999),
            ("max", lat.max),
        ] {
            let m = s.map.entry(format!("client.lat.{name}")).or_default();
            match v {
                Some(v) => m.insert(k, v),
                None => m.remove(&k),
            };
        }
    }
}

/// One load generator line into its host's accumulator: the fleet's `client.*` series
/// (counts, target, users, users by source address, latency percentiles) and the host's
/// own `host.<host>.client.*`.
fn loadgen_line(acc: &mut HostAcc, host: &str, l: &redpacket_formats::LoadgenLine) {
    let t = l.t;
    acc.line(t, l.interval_s);
    // Served answers (a packet or none left); older lines may only have totals.
    let served = if l.got + l.none > 0 {
        l.got + l.none
    } else {
        l.answered.saturating_sub(l.overloaded)
    };
    for (k, v) in [
        ("sent", l.sent),
        ("answered", l.answered),
        ("served", served),
        ("got", l.got),
        ("none", l.none),
        ("overloaded", l.overloaded),
        ("errors", l.errors),
        ("timeouts", l.timeouts),
    ] {
        acc.count(&format!("client.{k}"), t, v as f64);
    }
    for (k, v) in [
        ("sent", l.sent),
        ("errors", l.errors),
        ("timeouts", l.timeouts),
    ] {
        acc.count(&format!("host.{host}.client.{k}"), t, v as f64);
    }
    acc.gauge("client.target_qps", t, l.target_qps, Agg::Sum);
    acc.gauge("client.connections", t, l.connections as f64, Agg::Sum);
    acc.gauge(
        &format!("host.{host}.client.connections"),
        t,
        l.connections as f64,
        Agg::Sum,
    );
    acc.gauge(
        &format!("host.{host}.own_sockets"),
        t,
        l.connections as f64,
        Agg::Sum,
    );
    for (addr, n) in &l.connections_by_addr {
        acc.gauge(&format!("client.conn_addr.{addr}"), t, *n as f64, Agg::Sum);
    }
    let lat = &l.latency_ms;
    for (k, v) in [
        ("p50", lat.p50),
        ("p90", lat.p90),
        ("p99", lat.p99),
        ("p999", lat.p999),
        ("max", lat.max),
    ] {
        if let Some(v) = v {
            acc.gauge(&format!("client.lat.{k}"), t, v, Agg::Max);
        }
    }
}

/// One sampler line (`net.jsonl`) into its host's accumulator, as `host.<host>.*`: the
/// busiest interface's packets, drops, TCP retransmits, listen drops and resets,
/// established connections, CPU (all cores, the busiest, the sampling process) and its
/// memory.
fn net_line(acc: &mut HostAcc, host: &str, iface: Option<&String>, l: &redpacket_formats::NetLine) {
    let t = l.t;
    let dt = if l.interval_s > 0.0 {
        l.interval_s
    } else {
        1.0
    };
    acc.line(t, dt);
    let k = |m: &str| format!("host.{host}.{m}");
    if let Some(i) = iface.and_then(|n| l.ifaces.get(n)) {
        let r = &i.per_second;
        acc.count(&k("rx_packets"), t, r.rx_packets * dt);
        acc.count(&k("tx_packets"), t, r.tx_packets * dt);
    }
    let drops: f64 = l
        .ifaces
        .values()
        .map(|i| i.per_second.rx_drop + i.per_second.tx_drop)
        .sum();
    acc.count(&k("if_drops"), t, drops * dt);
    let tcp = |n: &str| l.tcp_per_second.get(n).copied().unwrap_or(0.0) * dt;
    acc.count(&k("retrans"), t, tcp("RetransSegs"));
    acc.count(
        &k("listen_drops"),
        t,
        tcp("ListenDrops") + tcp("ListenOverflows"),
    );
    acc.count(&k("resets"), t, tcp("OutRsts"));
    if let Some(e) = l.tcp.get("CurrEstab") {
        acc.gauge(&k("estab"), t, *e as f64, Agg::Sum);
    }
    acc.gauge(&k("cpu"), t, l.cpu.total_pct, Agg::Max);
    // One saturated core (interrupts, one hot worker) hides in the average.
    let busiest = l.cpu.cores_pct.iter().copied().fold(0.0, f64::max);
    acc.gauge(&k("core_max"), t, busiest, Agg::Max);
    acc.gauge(&k("proc_cpu"), t, l.process.cpu_pct, Agg::Max);
    acc.gauge(
        &k("rss_mib"),
        t,
        l.process.rss_kib as f64 / 1024.0,
        Agg::Max,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_and_windows_are_half_open() {
        let mut s = Series::default();
        s.put("a", 10.4, 1.0, Agg::Sum);
        s.put("a", 9.6, 2.0, Agg::Sum); // same second from another host
        s.put("a", 11.0, 5.0, Agg::Sum);
        s.put("a", 12.0, f64::NAN, Agg::Sum);
        assert_eq!(s.get("a").unwrap()[&10], 3.0);
        assert_eq!(s.window("a", 10.0, 11.0), vec![(11, 5.0)]);
        assert_eq!(s.window("a", 9.0, 11.0).len(), 2);
        // Second 11 is centred on 10.5: in a phase from 10.3, not in one from 10.6.
        assert_eq!(s.window("a", 10.3, 11.3), vec![(11, 5.0)]);
        assert_eq!(s.window("a", 9.3, 10.3), vec![(10, 3.0)]);
        assert!(s.window("a", 10.6, 11.4).is_empty());
        assert_eq!(s.span(), Some((10, 11)));
    }

    #[test]
    fn cuts_take_the_share_of_each_edge_second() {
        let mut s = Series::default();
        for k in 10..=14 {
            s.put("a", k as f64, 100.0, Agg::Sum);
        }
        // Second 10 covers (9, 10]: a cut from 9.25 takes three quarters of it.
        assert_eq!(s.cut("a", 9.25, 10.0), Some(75.0));
        // (9.25, 12.5): 75 + 100 + 100 + 50.
        assert_eq!(s.cut("a", 9.25, 12.5), Some(325.0));
        // Two adjacent phases split every second between them, losing nothing.
        let (x, y) = (
            s.cut("a", 9.0, 11.7).unwrap(),
            s.cut("a", 11.7, 14.0).unwrap(),
        );
        assert!(
            (x - 270.0).abs() < 1e-9 && (y - 230.0).abs() < 1e-9,
            "{x} {y}"
        );
        assert_eq!(x + y, s.cut("a", 9.0, 14.0).unwrap());
        // Outside the data, or an empty window: nothing to say.
        assert_eq!(s.cut("a", 20.0, 30.0), None);
        assert_eq!(s.cut("a", 12.0, 12.0), None);
        assert_eq!(s.cut("b", 9.0, 14.0), None);
        // A mean weighs each second by its share and skips seconds without a line.
        s.put("g", 10.0, 10.0, Agg::Max);
        s.put("g", 11.0, 40.0, Agg::Max);
        s.put("g", 13.0, 40.0, Agg::Max);
        // Half of second 10 (10) and all of second 11 (40): (5 + 40) / 1.5.
        assert_eq!(s.cut_mean("g", 9.5, 11.0), Some(30.0));
        assert_eq!(s.cut_mean("g", 10.0, 13.0), Some(40.0));
    }

    #[test]
    fn an_edge_line_is_split_at_the_rates_on_either_side() {
        // One process's lines, stamped at .8: nothing, then 200 a second from a phase
        // that starts at 11.9 (the line of (10.8, 11.8] is all before it).
        let mut acc = HostAcc::default();
        for (t, v) in [
            (10.8, 0.0),
            (11.8, 0.0),
            (12.8, 180.0),
            (13.8, 200.0),
            (14.8, 200.0),
        ] {
            acc.line(t, 1.0);
            acc.count("won", t, v);
        }
        let mut s = Series::default();
        acc.flush(&mut s);
        // The line across 11.9 has no events before it (its left neighbour's rate is 0):
        // all 180 belong to the phase, not the 0.9 an even spread would give.
        assert_eq!(s.cut("won", 11.9, 14.8), Some(580.0));
        assert_eq!(s.cut("won", 10.0, 11.9), Some(0.0));
        // A phase ending inside the last line keeps all of it: after its last line the
        // process counted nothing (the load stopped with the phase, the process after).
        assert_eq!(s.cut("won", 11.9, 14.3), Some(580.0));
        assert_eq!(s.cut("won", 14.3, 15.0), Some(0.0));
        // Inside the first line, the same: before it the process counted nothing.
        assert_eq!(s.cut("won", 9.5, 10.0), Some(0.0));
        // Two adjacent phases share every line between them.
        let (x, y) = (
            s.cut("won", 9.0, 13.3).unwrap(),
            s.cut("won", 13.3, 15.0).unwrap(),
        );
        assert!((x + y - 580.0).abs() < 1e-9, "{x} + {y}");
        // A line with rate on both sides splits in proportion: (12.8, 13.8] cut at 13.3
        // has 180/s before and 200/s after.
        assert!((x - (180.0 + 200.0 * 90.0 / 190.0)).abs() < 1e-9, "{x}");
    }

    #[test]
    fn two_lines_of_one_host_in_a_second_make_one_rate() {
        let mut acc = HostAcc::default();
        acc.line(100.28, 1.0);
        acc.count("x", 100.28, 600.0);
        acc.line(100.31, 0.02);
        acc.count("x", 100.31, 12.0);
        acc.gauge("g", 100.28, 5.0, Agg::Sum);
        acc.gauge("g", 100.31, 4.0, Agg::Sum);
        let mut s = Series::default();
        acc.flush(&mut s);
        assert_eq!(s.get("x").unwrap()[&100], 612.0);
        assert_eq!(s.get("x/s").unwrap()[&100], 600.0);
        assert_eq!(s.get("g").unwrap()[&100], 5.0);
    }
}
