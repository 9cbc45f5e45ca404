//! The line a person reads each second.

use redpacket_formats::LiveLine;
use std::fmt::Write;

/// One second on one line, e.g. `12:00:05 30k  users 1000000  sent 29998/s of 30000
/// answered 29997/s  errors 0 timeouts 0  p50 0.41 p99 2.30 p99.9 8.10 ms  hosts 18/18
/// srv1 29990/s  slowest cli3 +0.6 s`, and `MISSING cli7 (6.0 s)` for a host without a
/// record of that second.
pub fn line(l: &LiveLine) -> String {
    let hms = l.t.rem_euclid(86_400);
    let mut s = format!(
        "{:02}:{:02}:{:02} {:<8} users {}  sent {}/s of {}  answered {}/s  errors {} timeouts {}",
        hms / 3600,
        hms / 60 % 60,
        hms % 60,
        l.phase,
        l.users,
        l.sent,
        l.target.round(),
        l.answered,
        l.errors,
        l.timeouts,
    );
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    let _ = write!(
        s,
        "  p50 {} p99 {} p99.9 {} ms  hosts {}/{}",
        ms(l.p50_ms),
        ms(l.p99_ms),
        ms(l.p999_ms),
        l.hosts_reporting,
        l.hosts_expected
    );
    for (host, rate) in &l.servers {
        let _ = write!(s, "  {host} {rate}/s");
    }
    if let Some(w) = l.slowest.as_ref().filter(|w| w.after_s >= 1.0) {
        let _ = write!(s, "  slowest {} +{:.1} s", w.host, w.after_s);
    }
    if !l.missing.is_empty() {
        let names: Vec<String> = l
            .missing
            .iter()
            .map(|(h, since)| format!("{h} ({since:.1} s)"))
            .collect();
        let _ = write!(s, "  MISSING {}", names.join(", "));
    }
    s
}
