//! The open-loop schedule: no sockets, no worker, just due times.
//!
//! A [`Schedule`] is a fixed period between scheduled send times for this worker's
//! share of a rate; a request's latency runs from its scheduled time, not from when it
//! left, so a stall of the server (or of this worker) shows as latency, never as fewer
//! requests. What is sent when a time falls due is `requests`'.

/// Scheduled send times at a steady rate: the `k`-th falls one period after the
/// `k-1`-th, whenever the worker gets to it (a late worker sends the backlog at once,
/// each timed from its own scheduled time).
#[derive(Clone, Copy, Debug)]
pub(super) struct Schedule {
    /// Next due time, worker clock ns (fractional, so periods do not drift).
    next: f64,
    /// ns between two due times; 0 = off.
    period: f64,
    /// The rate the period was made for (requests/s), to notice a change.
    rate: f64,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            next: 0.0,
            period: 0.0,
            rate: -1.0,
        }
    }
}

impl Schedule {
    /// Follows `rate` (requests/s): a change restarts the schedule one period from
    /// `now`; 0 turns it off. Rates are bounded where they are read
    /// ([`crate::plan::MAX_RATE`]); the period is kept at 1 ns or more besides, so the
    /// schedule always moves forward.
    pub(super) fn follow(&mut self, rate: f64, now: u64) {
        if rate == self.rate {
            return;
        }
        self.rate = rate;
        self.period = if rate > 0.0 {
            (1e9 / rate).max(1.0)
        } else {
            0.0
        };
        self.next = now as f64 + self.period;
    }

    /// The next due time, if the schedule is on.
    pub(super) fn next_due(&self) -> Option<u64> {
        (self.period > 0.0).then_some(self.next as u64)
    }

    /// The earliest due time not after `now`, which is then done.
    pub(super) fn pop_due(&mut self, now: u64) -> Option<u64> {
        if self.period <= 0.0 || self.next > now as f64 {
            return None;
        }
        let at = self.next as u64;
        self.next += self.period;
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::Schedule;

    fn drain(s: &mut Schedule, now: u64) -> Vec<u64> {
        std::iter::from_fn(|| s.pop_due(now)).collect()
    }

    #[test]
    fn due_times_are_evenly_spaced_and_a_backlog_comes_at_once() {
        let mut s = Schedule::default();
        assert_eq!(s.pop_due(u64::MAX), None, "off until given a rate");
        s.follow(1000.0, 0);
        assert_eq!(s.next_due(), Some(1_000_000));
        assert_eq!(s.pop_due(999_999), None);
        // A worker 3.5 ms late sends three, each with its own scheduled time.
        assert_eq!(drain(&mut s, 3_500_000), [1_000_000, 2_000_000, 3_000_000]);
        assert_eq!(s.next_due(), Some(4_000_000));
    }

    #[test]
    fn a_rate_change_restarts_one_period_from_now_and_zero_stops() {
        let mut s = Schedule::default();
        s.follow(1000.0, 0);
        s.follow(1000.0, 500_000); // the same rate: nothing changes
        assert_eq!(s.next_due(), Some(1_000_000));
        s.follow(4000.0, 10_000_000);
        assert_eq!(s.next_due(), Some(10_250_000));
        assert_eq!(drain(&mut s, 11_000_000).len(), 4);
        s.follow(0.0, 11_000_000);
        assert_eq!((s.next_due(), s.pop_due(u64::MAX)), (None, None));
    }

    #[test]
    fn fractional_periods_do_not_drift() {
        let mut s = Schedule::default();
        s.follow(3.0, 0); // 333 333 333.3 ns
        let due = drain(&mut s, 10_000_000_000);
        assert_eq!(due.len(), 30);
        // The 30th falls on the 10th second (to within the float's rounding).
        assert!(due[29].abs_diff(10_000_000_000) <= 1, "{}", due[29]);
    }
}
