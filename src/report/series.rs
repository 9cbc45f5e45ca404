//! Per-second series from every host, aligned on whole seconds.
//!
//! Hosts sample at different offsets within a second, so each reading is keyed by its
//! time rounded to the nearest second, and series from several hosts are summed (QPS,
//! connections) or maxed (latency: the worst client is the one users feel) per key.

use std::collections::BTreeMap;

use super::load::{Role, Run};

/// Name -> (second -> value).
#[derive(Debug, Default)]
pub struct Series {
    map: BTreeMap<String, BTreeMap<i64, f64>>,
}

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

/// The interface that carried the most packets on a host: the one whose PPS matters
/// (`lo` on a one-machine run, the NIC on a fleet).
pub fn main_iface(net: &[crate::sysmon::NetLine]) -> Option<String> {
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
        }
    }
    fn count(&mut self, name: &str, t: f64, v: f64) {
        if let Some(k) = key(t).filter(|_| v.is_finite()) {
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
        for (name, m) in self.counts {
            for (k, c) in m {
                let dt = self.interval.get(&k).copied().unwrap_or(1.0);
                s.put_key(&name, k, c, Agg::Sum);
                s.put_key(&format!("{name}/s"), k, c / dt, Agg::Sum);
            }
        }
        for (name, (agg, m)) in self.gauges {
            for (k, v) in m {
                s.put_key(&name, k, v, agg);
            }
        }
    }
}

/// One server line into its host's accumulator: the fleet's `server.*` series, the
/// host's `host.<host>.*` (its instances added up) and, for an instance,
/// `host.<host>/instance-I.*`.
fn server_line(acc: &mut HostAcc, host: &str, unit: &str, l: &crate::formats::ServerLine) {
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
        acc.flush(&mut s);
        // Each file has its own intervals: a fresh accumulator for the sampler's lines.
        let mut acc = HostAcc::default();
        let iface = main_iface(&h.net);
        for l in &h.net {
            let t = l.t;
            let dt = if l.interval_s > 0.0 {
                l.interval_s
            } else {
                1.0
            };
            acc.line(t, dt);
            let k = |m: &str| format!("host.{host}.{m}");
            if let Some(i) = iface.as_ref().and_then(|n| l.ifaces.get(n)) {
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
        acc.flush(&mut s);
    }
    s
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
