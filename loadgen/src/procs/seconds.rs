//! A child's seconds as the parent holds them until it writes their line.
//!
//! Every process ticks on whole seconds of the wall clock and stamps each second's
//! record with the second it covers (its end, in unix seconds). The parent files what a
//! child sends under that stamp and writes its line for second `k` from every child's
//! record stamped `k`, whenever it arrived: so the children's seconds add up second by
//! second, instead of landing in the parent's `k` or `k + 1` by the race of a pipe. A
//! record that comes after its second's line was written goes into the next line
//! written, and is counted as late.

use crate::metrics::Tally;
use std::collections::BTreeMap;

/// The stamp under which a record is filed: the whole second its interval ends in (a
/// last, partial interval ends between two whole seconds and files under the next).
pub fn stamp_of(t: f64) -> i64 {
    t.ceil() as i64
}

/// One child's records not yet written, by stamp.
#[derive(Default)]
pub struct StampedSeconds {
    pending: BTreeMap<i64, Tally>,
    /// The latest stamp this child reported; `None` before its first record.
    reported: Option<i64>,
    /// The child stopped reporting (done, or its pipe closed): nothing to wait for.
    ended: bool,
}

impl StampedSeconds {
    /// Files a record of the interval ending at unix time `t`.
    pub fn put(&mut self, t: f64, tally: &Tally) {
        let k = stamp_of(t);
        self.pending.entry(k).or_default().add(tally);
        self.reported = Some(self.reported.map_or(k, |r| r.max(k)));
    }

    /// The child will send no more seconds.
    pub fn end(&mut self) {
        self.ended = true;
    }

    /// Whether the line of second `k` has nothing more to wait for from this child.
    pub fn has_reported(&self, k: i64) -> bool {
        self.ended || self.reported.is_some_and(|r| r >= k)
    }

    /// Takes every record stamped `upto` or earlier into `into`; returns how many of
    /// them were stamped `written` or earlier, i.e. came after their own line.
    pub fn take_upto(&mut self, upto: i64, written: i64, into: &mut Tally) -> u64 {
        let later = self.pending.split_off(&upto.saturating_add(1));
        let taken = std::mem::replace(&mut self.pending, later);
        let mut late = 0;
        for (k, t) in &taken {
            into.add(t);
            if *k <= written {
                late += 1;
            }
        }
        late
    }

    /// Takes every record, whatever its stamp.
    pub fn take_all(&mut self, into: &mut Tally) {
        for t in std::mem::take(&mut self.pending).values() {
            into.add(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(n: u64) -> Tally {
        let mut t = Tally::default();
        t.counts.sent = n;
        t.record_us(100 * n);
        t
    }

    #[test]
    fn a_line_takes_its_own_second_whenever_it_arrived() {
        let mut s = StampedSeconds::default();
        assert!(!s.has_reported(100));
        // Second 101 arrives before the line of 100 is written: it waits for its own.
        s.put(100.0, &sent(5));
        s.put(101.0, &sent(7));
        assert!(s.has_reported(100) && s.has_reported(101) && !s.has_reported(102));
        let mut line = Tally::default();
        assert_eq!(s.take_upto(100, 99, &mut line), 0);
        assert_eq!((line.counts.sent, line.latency.len()), (5, 1));
        let mut line = Tally::default();
        assert_eq!(s.take_upto(101, 100, &mut line), 0);
        assert_eq!(line.counts.sent, 7);
    }

    #[test]
    fn a_record_after_its_line_goes_into_the_next_and_is_counted() {
        let mut s = StampedSeconds::default();
        let mut line = Tally::default();
        assert_eq!(s.take_upto(100, 99, &mut line), 0);
        s.put(100.0, &sent(5));
        s.put(101.0, &sent(7));
        let mut line = Tally::default();
        assert_eq!(s.take_upto(101, 100, &mut line), 1);
        assert_eq!((line.counts.sent, line.latency.len()), (12, 2));
    }

    #[test]
    fn a_partial_last_second_files_under_the_next_and_take_all_empties() {
        assert_eq!(stamp_of(100.0), 100);
        assert_eq!(stamp_of(100.4), 101);
        let mut s = StampedSeconds::default();
        s.put(100.4, &sent(3));
        s.put(102.0, &sent(4));
        let mut line = Tally::default();
        assert_eq!(s.take_upto(100, 99, &mut line), 0);
        assert_eq!(line.counts.sent, 0);
        s.take_all(&mut line);
        assert_eq!(line.counts.sent, 7);
        s.take_all(&mut line);
        assert_eq!(line.counts.sent, 7);
        s.end();
        assert!(s.has_reported(i64::MAX));
    }
}
