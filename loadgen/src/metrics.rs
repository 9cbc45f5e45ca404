//! What the workers count, and how it reaches the reporter without slowing them.
//!
//! Each worker accumulates into a private [`Pending`] and, every few milliseconds, adds
//! it into its own mutex-guarded block's [`Tally`]s: the per-second interval and the
//! current phase.
//! The reporter takes each block's interval once a second. Nothing on the request path
//! waits for anything but its own (uncontended) lock.
//!
//! Latency is recorded in microseconds from the request's *scheduled* send time to its
//! answer, so a stalled server shows up as latency, not as fewer requests.

use hdrhistogram::Histogram;
use redpacket_formats::histograms::new_latency_histogram;
use redpacket_formats::{Answered, Errors, Packets};
use serde::{Deserialize, Serialize};

/// Connection failure reasons, as counted and printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
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
    /// The connection failure an error of a socket call means, as counted and printed.
    pub fn of(e: &std::io::Error) -> Failure {
        match e.raw_os_error() {
            Some(libc::ECONNREFUSED) => Failure::Refused,
            Some(libc::ETIMEDOUT) => Failure::Timeout,
            Some(libc::ECONNRESET | libc::EPIPE | libc::ECONNABORTED) => Failure::Reset,
            Some(libc::EADDRNOTAVAIL | libc::EADDRINUSE) => Failure::NoPorts,
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => Failure::NoFiles,
            _ => Failure::Other,
        }
    }

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
}

/// Declares [`Counts`] and its `add` from one list: the load generator's own scalar
/// counters, then the sections it shares with the file format
/// ([`redpacket_formats::loadgen`]), which add themselves. A counter is named once.
macro_rules! counts {
    (
        scalars { $( $(#[$doc:meta])* $field:ident, )* }
        sections { $( $(#[$sdoc:meta])* $section:ident: $ty:ty, )* }
    ) => {
        /// Plain counters; every field adds up across workers, seconds and processes.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct Counts {
            $( $(#[$doc])* pub $field: u64, )*
            $( $(#[$sdoc])* pub $section: $ty, )*
            /// Failed connect or login attempts, by [`Failure`] (its `ALL` order).
            pub failed: [u64; Failure::ALL.len()],
        }

        impl Counts {
            pub fn add(&mut self, o: &Counts) {
                $( self.$field += o.$field; )*
                $( self.$section.add(&o.$section); )*
                for (a, b) in self.failed.iter_mut().zip(o.failed) {
                    *a += b;
                }
            }
        }
    };
}

counts! {
    scalars {
        /// Shake requests due by the schedule.
        scheduled,
        /// Shake requests written to a socket.
        sent,
        /// Shakes unanswered after `--timeout`.
        timeouts,
        /// Answers that came after their request had timed out.
        late,
        /// Logins completed.
        connects,
        /// Connections lost after login.
        disconnects,
    }
    sections {
        /// Shake answers by result (`total` left 0: see `answered`).
        results: Answered,
        /// Failed requests by kind (`total` left 0: see `errors`).
        error_kinds: Errors,
        /// Notifications, grabs, client sends and the money clients saw.
        packets: Packets,
    }
}

impl Counts {
    /// Shake answers by result, with their total.
    pub fn answers(&self) -> Answered {
        self.results.with_total()
    }
    pub fn answered(&self) -> u64 {
        self.answers().total
    }
    /// Requests that went wrong other than by timing out, by kind, with their total.
    pub fn error_kinds(&self) -> Errors {
        self.error_kinds.with_total()
    }
    pub fn errors(&self) -> u64 {
        self.error_kinds().total
    }
    pub fn fail(&mut self, f: Failure) {
        self.failed[f as usize] += 1;
    }
    /// Failed attempts by reason name, in [`Failure::ALL`] order.
    pub fn failures(&self) -> [(&'static str, u64); Failure::ALL.len()] {
        Failure::ALL.map(|f| (f.name(), self.failed[f as usize]))
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
}

/// What a worker counted since its last flush: the counters, and the latencies as the
/// few samples they are (a flush every 20 ms sees a handful). A [`Tally`]'s histogram
/// of the run's bounds is about 170 KB: allocating, clearing and adding one per flush
/// cost a load generator of fifty processes more than the requests it timed.
#[derive(Clone, Debug, Default)]
pub struct Pending {
    pub counts: Counts,
    /// Microseconds, as recorded.
    pub latency_us: Vec<u64>,
}

impl Pending {
    pub fn record_us(&mut self, us: u64) {
        self.latency_us.push(us);
    }
    /// Adds what is pending to `t`.
    pub fn add_to(&self, t: &mut Tally) {
        t.counts.add(&self.counts);
        for &us in &self.latency_us {
            t.record_us(us);
        }
    }
    /// Empties it for the next flush, keeping the samples' room.
    pub fn clear(&mut self) {
        self.counts = Counts::default();
        self.latency_us.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_samples_add_as_a_tally_would() {
        let mut p = Pending::default();
        p.counts.sent = 2;
        for us in [0, 5_000, u64::MAX] {
            p.record_us(us);
        }
        let mut direct = Tally::default();
        direct.counts.sent = 2;
        for us in [0, 5_000, u64::MAX] {
            direct.record_us(us);
        }
        let mut t = Tally::default();
        p.add_to(&mut t);
        assert_eq!(t.counts.sent, 2);
        assert_eq!(t.latency, direct.latency);
        p.clear();
        assert!(p.latency_us.is_empty() && p.counts.sent == 0);
    }

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
        assert!(std::mem::take(&mut a).latency.len() == 3 && a.latency.is_empty());
    }

    #[test]
    fn failures_by_reason() {
        let mut c = Counts::default();
        c.fail(Failure::NoFiles);
        assert_eq!(c.failures()[4], ("no_files", 1));
        // `failed` is indexed by the enum's value: ALL must be in declaration order.
        for (i, f) in Failure::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i);
        }
    }

    #[test]
    fn socket_errors_name_the_failure() {
        let of = |errno| Failure::of(&std::io::Error::from_raw_os_error(errno));
        assert_eq!(of(libc::ECONNREFUSED), Failure::Refused);
        assert_eq!(of(libc::ETIMEDOUT), Failure::Timeout);
        assert_eq!(of(libc::EPIPE), Failure::Reset);
        assert_eq!(of(libc::EADDRNOTAVAIL), Failure::NoPorts);
        assert_eq!(of(libc::EMFILE), Failure::NoFiles);
        assert_eq!(of(libc::EINVAL), Failure::Other);
        // An error that carries no errno (a short read, say) is no socket failure we name.
        let plain = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "short");
        assert_eq!(Failure::of(&plain), Failure::Other);
    }
}
