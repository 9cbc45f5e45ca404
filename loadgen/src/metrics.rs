//! What the workers count, and how it reaches the reporter without slowing them.
//!
//! Each worker accumulates into a private [`Tally`] and, every few milliseconds, adds it
//! into its own mutex-guarded block: the per-second interval and the current phase.
//! The reporter takes each block's interval once a second. Nothing on the request path
//! waits for anything but its own (uncontended) lock.
//!
//! Latency is recorded in microseconds from the request's *scheduled* send time to its
//! answer, so a stalled server shows up as latency, not as fewer requests.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency the histograms keep exactly, microseconds (longer values saturate).
pub const MAX_LATENCY_US: u64 = 600_000_000;

pub fn new_histogram() -> Histogram<u64> {
    // 3 significant figures from 1 us to 10 minutes.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static histogram bounds are valid")
}

/// Connection failure reasons, as counted and printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    Refused,
    Timeout,
    Reset,
    NoPorts,
    NoFiles,
    /// Login refused or answered with the wrong user id.
    Login,
    Other,
}

impl Failure {
    pub const ALL: [Failure; 7] = [
        Failure::Refused,
        Failure::Timeout,
        Failure::Reset,
        Failure::NoPorts,
        Failure::NoFiles,
        Failure::Login,
        Failure::Other,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Failure::Refused => "refused",
            Failure::Timeout => "timeout",
            Failure::Reset => "reset",
            Failure::NoPorts => "no_ports",
            Failure::NoFiles => "no_files",
            Failure::Login => "login",
            Failure::Other => "other",
        }
    }
    /// Classifies an errno from socket/bind/connect/read.
    pub fn from_errno(e: i32) -> Failure {
        match e {
            libc::ECONNREFUSED => Failure::Refused,
            libc::ETIMEDOUT => Failure::Timeout,
            libc::ECONNRESET | libc::EPIPE | libc::ECONNABORTED => Failure::Reset,
            libc::EADDRNOTAVAIL | libc::EADDRINUSE => Failure::NoPorts,
            libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM => Failure::NoFiles,
            _ => Failure::Other,
        }
    }
}

/// Plain counters; every field adds up across workers, seconds and processes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Shake requests due by the schedule.
    pub scheduled: u64,
    /// Shake requests written to a socket.
    pub sent: u64,
    /// Shake answers by result: 14 got, 15 none, 17 overloaded.
    pub got: u64,
    pub none: u64,
    pub overloaded: u64,
    /// Shakes unanswered after `--timeout`.
    pub timeouts: u64,
    /// Answers that came after their request had timed out.
    pub late: u64,
    /// Due while the user was not connected (not sent).
    pub not_connected: u64,
    /// Sent, then the connection dropped before the answer.
    pub dropped: u64,
    /// Answers that failed a check (command, user id, result or amount).
    pub bad_answer: u64,
    /// Socket writes that failed or would block (the connection is then closed).
    pub write_failed: u64,
    /// Send notifications (0x0004) received, and grabs (0x0005) sent / won / denied.
    pub notified: u64,
    pub grabs: u64,
    pub grab_won: u64,
    pub grab_denied: u64,
    /// Client sends (0x0007) sent, created (result 0), refused (result 1-3).
    pub sends: u64,
    pub send_ok: u64,
    pub send_refused: u64,
    /// Money seen by clients, cents.
    pub won_cents: u64,
    pub grabbed_cents: u64,
    pub sent_cents: u64,
    /// Connection events.
    pub connects: u64,
    pub disconnects: u64,
    pub fail_refused: u64,
    pub fail_timeout: u64,
    pub fail_reset: u64,
    pub fail_no_ports: u64,
    pub fail_no_files: u64,
    pub fail_login: u64,
    pub fail_other: u64,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        macro_rules! add { ($($f:ident),*) => { $( self.$f += o.$f; )* } }
        add!(
            scheduled,
            sent,
            got,
            none,
            overloaded,
            timeouts,
            late,
            not_connected,
            dropped,
            bad_answer,
            write_failed,
            notified,
            grabs,
            grab_won,
            grab_denied,
            sends,
            send_ok,
            send_refused,
            won_cents,
            grabbed_cents,
            sent_cents,
            connects,
            disconnects,
            fail_refused,
            fail_timeout,
            fail_reset,
            fail_no_ports,
            fail_no_files,
            fail_login,
            fail_other
        );
    }
    pub fn answered(&self) -> u64 {
        self.got + self.none + self.overloaded
    }
    /// Requests that went wrong other than by timing out.
    pub fn errors(&self) -> u64 {
        self.not_connected + self.dropped + self.bad_answer + self.write_failed
    }
    pub fn fail(&mut self, f: Failure) {
        *match f {
            Failure::Refused => &mut self.fail_refused,
            Failure::Timeout => &mut self.fail_timeout,
            Failure::Reset => &mut self.fail_reset,
            Failure::NoPorts => &mut self.fail_no_ports,
            Failure::NoFiles => &mut self.fail_no_files,
            Failure::Login => &mut self.fail_login,
            Failure::Other => &mut self.fail_other,
        } += 1;
    }
    pub fn failures(&self) -> [(&'static str, u64); 7] {
        [
            ("refused", self.fail_refused),
            ("timeout", self.fail_timeout),
            ("reset", self.fail_reset),
            ("no_ports", self.fail_no_ports),
            ("no_files", self.fail_no_files),
            ("login", self.fail_login),
            ("other", self.fail_other),
        ]
    }
}

/// Counters plus the latency of the shakes answered.
#[derive(Clone, Debug)]
pub struct Tally {
    pub counts: Counts,
    pub latency: Histogram<u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            counts: Counts::default(),
            latency: new_histogram(),
        }
    }
}

impl Tally {
    pub fn add(&mut self, o: &Tally) {
        self.counts.add(&o.counts);
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&o.latency);
    }
    pub fn record_us(&mut self, us: u64) {
        self.latency.saturating_record(us.max(1));
    }
    pub fn take(&mut self) -> Tally {
        std::mem::take(self)
    }
}

/// Latency percentiles, milliseconds; all `None` (JSON `null`) when nothing was answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
    pub max: Option<f64>,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        // Microseconds to milliseconds, kept to the microsecond.
        let ms = |us: u64| Some(us as f64 / 1000.0);
        Percentiles {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// A histogram as text (V2 serialization, hex) so child processes can hand theirs to
/// the parent, which merges them exactly.
pub fn histogram_to_hex(h: &Histogram<u64>) -> String {
    use hdrhistogram::serialization::{Serializer, V2Serializer};
    let mut buf = Vec::new();
    if V2Serializer::new().serialize(h, &mut buf).is_err() {
        return String::new();
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn histogram_from_hex(s: &str) -> Option<Histogram<u64>> {
    use hdrhistogram::serialization::Deserializer;
    if s.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    let h: Histogram<u64> = Deserializer::new().deserialize(&mut &bytes?[..]).ok()?;
    let mut out = new_histogram();
    out.add(&h).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_in_ms_and_hex_round_trip() {
        let mut t = Tally::default();
        for us in 1..=1000 {
            t.record_us(us * 1000);
        }
        let p = Percentiles::of(&t.latency);
        assert!((p.p50.unwrap() - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.max.unwrap() - 1000.0).abs() < 1.0, "{p:?}");
        assert_eq!(Percentiles::of(&new_histogram()).p99, None);
        let h = histogram_from_hex(&histogram_to_hex(&t.latency)).unwrap();
        assert_eq!(h.len(), 1000);
        assert_eq!(Percentiles::of(&h), p);
        assert!(histogram_from_hex("zz").is_none());
    }

    #[test]
    fn errno_classes() {
        assert_eq!(Failure::from_errno(libc::ECONNREFUSED), Failure::Refused);
        assert_eq!(Failure::from_errno(libc::EADDRNOTAVAIL), Failure::NoPorts);
        assert_eq!(Failure::from_errno(libc::EMFILE), Failure::NoFiles);
        let mut c = Counts::default();
        c.fail(Failure::NoFiles);
        assert_eq!(c.failures()[4], ("no_files", 1));
    }
}
