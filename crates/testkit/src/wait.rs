//! Waiting on another process (a ready file, a port, a counter in a log) without a fixed
//! sleep: poll a condition until it holds or a deadline passes. A short interval keeps
//! fast machines fast; the deadline keeps a slow or broken one from hanging the run.

use std::time::{Duration, Instant};

/// The interval of [`until`].
pub const EVERY: Duration = Duration::from_millis(20);

/// Calls `f` every `every` until it returns `Some`, or `None` once `limit` has passed
/// (`f` is called at least once, and once more at or after the deadline).
pub fn poll<T>(limit: Duration, every: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// [`poll`] every [`EVERY`]; panics with "waited LIMIT for WHAT" at the deadline.
pub fn until<T>(what: &str, limit: Duration, f: impl FnMut() -> Option<T>) -> T {
    poll(limit, EVERY, f).unwrap_or_else(|| panic!("waited {limit:?} for {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_until_true_or_the_deadline() {
        let mut n = 0;
        let got = until("the third call", Duration::from_secs(5), || {
            n += 1;
            (n == 3).then_some(n)
        });
        assert_eq!(got, 3);
        let t = Instant::now();
        let never = poll(Duration::from_millis(60), Duration::from_millis(10), || {
            None::<()>
        });
        assert!(never.is_none() && t.elapsed() >= Duration::from_millis(60));
        let caught = std::panic::catch_unwind(|| until("nothing", Duration::ZERO, || None::<()>));
        let msg = *caught.unwrap_err().downcast::<String>().unwrap();
        assert_eq!(msg, "waited 0ns for nothing");
    }
}
