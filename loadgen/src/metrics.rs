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
use redpacket::formats::histograms::new_latency_histogram;
use serde::{Deserialize, Serialize};

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
            latency: new_latency_histogram(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_add_counts_and_histograms() {
        let mut a = Tally::default();
        a.counts.sent = 2;
        a.record_us(0); // kept as 1 us, the histogram's floor
        a.record_us(5_000);
        let mut b = Tally::default();
        b.counts.sent = 3;
        b.record_us(u64::MAX); // saturates at the top instead of failing
        a.add(&b);
        assert_eq!((a.counts.sent, a.latency.len()), (5, 3));
        assert_eq!(a.latency.min(), 1);
        assert!(a.take().latency.len() == 3 && a.latency.is_empty());
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
