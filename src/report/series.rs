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

#[derive(Clone, Copy)]
enum Agg {
    Sum,
    Max,
}

impl Series {
    fn put(&mut self, name: impl Into<String>, t: f64, v: f64, agg: Agg) {
        // A line without a time (t = 0) cannot be placed: leave it out.
        if !t.is_finite() || t <= 0.0 || !v.is_finite() {
            return;
        }
        let e = self
            .map
            .entry(name.into())
            .or_default()
            .entry(t.round() as i64)
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

    /// Values with keys in `(start, end]`: a line stamped at `k` covers `(k-1, k]`.
    pub fn window(&self, name: &str, start: f64, end: f64) -> Vec<(i64, f64)> {
        let Some(m) = self.map.get(name) else {
            return Vec::new();
        };
        let lo = start.floor() as i64 + 1;
        let hi = end.floor() as i64;
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

pub fn build(run: &Run) -> Series {
    let mut s = Series::default();
    for h in &run.hosts {
        let host = &h.name;
        if h.role() == Role::Server {
            for l in &h.server {
                let dt = if l.interval_s > 0.0 {
                    l.interval_s
                } else {
                    1.0
                };
                let ps = &l.per_second;
                let t = l.t;
                let rate = |x: u64| x as f64 / dt;
                s.put("server.shake_qps", t, rate(ps.requests.shake), Agg::Sum);
                s.put(
                    format!("host.{host}.shake_qps"),
                    t,
                    rate(ps.requests.shake),
                    Agg::Sum,
                );
                // Served: answered with a packet or "none left", i.e. not shed.
                let served = rate(ps.shake.won + ps.shake.none);
                s.put("server.served_qps", t, served, Agg::Sum);
                s.put(format!("host.{host}.served_qps"), t, served, Agg::Sum);
                s.put("server.won", t, rate(ps.shake.won), Agg::Sum);
                s.put("server.none", t, rate(ps.shake.none), Agg::Sum);
                s.put("server.overloaded", t, rate(ps.shake.overloaded), Agg::Sum);
                s.put("server.issued", t, rate(ps.shake.issued), Agg::Sum);
                s.put("server.created", t, rate(ps.send.created), Agg::Sum);
                s.put("server.grabbed", t, rate(ps.send.grabbed), Agg::Sum);
                s.put("server.open", t, l.total.open as f64, Agg::Sum);
                s.put("server.logged_in", t, l.total.logged_in as f64, Agg::Sum);
                let tot = &l.total;
                for (k, v) in [
                    ("issued", tot.shake.issued),
                    ("won", tot.shake.won),
                    ("issued_cents", tot.shake.issued_cents),
                    ("won_cents", tot.shake.won_cents),
                    ("shake_outstanding_cents", tot.outstanding.shake_cents),
                    ("created_cents", tot.send.created_cents),
                    ("grabbed_cents", tot.send.grabbed_cents),
                    ("refunded_cents", tot.send.refunded_cents),
                    ("send_outstanding_cents", tot.outstanding.send_cents),
                ] {
                    s.put(format!("server.total.{k}"), t, v as f64, Agg::Sum);
                }
            }
        }
        for l in &h.loadgen {
            let dt = if l.interval_s > 0.0 {
                l.interval_s
            } else {
                1.0
            };
            let t = l.t;
            s.put("client.sent_qps", t, l.sent as f64 / dt, Agg::Sum);
            s.put("client.answered_qps", t, l.answered as f64 / dt, Agg::Sum);
            // Served answers (a packet or none left); older lines may only have totals.
            let served = if l.got + l.none > 0 {
                l.got + l.none
            } else {
                l.answered.saturating_sub(l.overloaded)
            };
            s.put("client.served_qps", t, served as f64 / dt, Agg::Sum);
            s.put("client.target_qps", t, l.target_qps, Agg::Sum);
            for (k, v) in [
                ("got", l.got),
                ("none", l.none),
                ("overloaded", l.overloaded),
                ("errors", l.errors),
                ("timeouts", l.timeouts),
                ("answered", l.answered),
                ("sent", l.sent),
            ] {
                s.put(format!("client.count.{k}"), t, v as f64, Agg::Sum);
            }
            s.put("client.connections", t, l.connections as f64, Agg::Sum);
            for (addr, n) in &l.connections_by_addr {
                s.put(format!("client.conn_addr.{addr}"), t, *n as f64, Agg::Sum);
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
                    s.put(format!("client.lat.{k}"), t, v, Agg::Max);
                }
            }
        }
        let iface = main_iface(&h.net);
        for l in &h.net {
            let t = l.t;
            if let Some(i) = iface.as_ref().and_then(|n| l.ifaces.get(n)) {
                let r = &i.per_second;
                s.put(format!("host.{host}.rx_pps"), t, r.rx_packets, Agg::Sum);
                s.put(format!("host.{host}.tx_pps"), t, r.tx_packets, Agg::Sum);
            }
            let drops: f64 = l
                .ifaces
                .values()
                .map(|i| i.per_second.rx_drop + i.per_second.tx_drop)
                .sum();
            s.put(
                format!("host.{host}.if_drops"),
                t,
                drops * l.interval_s,
                Agg::Sum,
            );
            let tcp = |k: &str| l.tcp_per_second.get(k).copied().unwrap_or(0.0) * l.interval_s;
            s.put(
                format!("host.{host}.retrans"),
                t,
                tcp("RetransSegs"),
                Agg::Sum,
            );
            s.put(
                format!("host.{host}.listen_drops"),
                t,
                tcp("ListenDrops") + tcp("ListenOverflows"),
                Agg::Sum,
            );
            s.put(format!("host.{host}.resets"), t, tcp("OutRsts"), Agg::Sum);
            if let Some(e) = l.tcp.get("CurrEstab") {
                s.put(format!("host.{host}.estab"), t, *e as f64, Agg::Sum);
            }
            s.put(format!("host.{host}.cpu"), t, l.cpu.total_pct, Agg::Max);
            s.put(
                format!("host.{host}.proc_cpu"),
                t,
                l.process.cpu_pct,
                Agg::Max,
            );
            s.put(
                format!("host.{host}.rss_mib"),
                t,
                l.process.rss_kib as f64 / 1024.0,
                Agg::Max,
            );
        }
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
        assert_eq!(s.span(), Some((10, 11)));
    }
}
