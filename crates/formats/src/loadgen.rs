//! The load generator's files: `loadgen.jsonl` (a line per second) and `summary.json`
//! (the whole run), as the load generator writes them and the report reads them.
//!
//! Units: times are unix seconds, latencies milliseconds, rates per second, money cents,
//! everything else a count. The flat fields of [`LoadgenLine`] are the run-folder schema
//! the report's tables are built from; the objects after them are detail.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latency percentiles in milliseconds, measured from each request's scheduled send
/// time; all `None` (JSON `null`) when nothing was answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Latency {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
    pub max: Option<f64>,
}

impl Latency {
    /// The percentiles of a histogram of microseconds
    /// ([`super::histograms::new_latency_histogram`]), in milliseconds.
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        // Microseconds to milliseconds, kept to the microsecond.
        let ms = |us: u64| Some(us as f64 / 1000.0);
        Latency {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// Declares a section of counts (a struct of `u64` fields that add up over seconds,
/// workers, processes and hosts) and its `add`, from one list of fields. With `(total)` after
/// its name, the section also has a `total` field, the sum of the others, which
/// `with_total` fills: the load generator counts the parts only (its `Counts` holds
/// these very sections), so a field cannot be counted and forgotten in the file.
macro_rules! sections {
    ($( $(#[$m:meta])* $name:ident $(($total:ident))? { $( $(#[$fm:meta])* $f:ident ),* $(,)? } )*) => {$(
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(default)]
        pub struct $name {
            $( pub $total: u64, )?
            $( $(#[$fm])* pub $f: u64, )*
        }
        impl $name {
            /// Adds every field of `o` (counts of another second, worker or host).
            pub fn add(&mut self, o: &Self) {
                $( self.$total += o.$total; )?
                $( self.$f += o.$f; )*
            }
        }
        sections!(@total $name $($total)? { $($f),* });
    )*};
    (@total $name:ident { $($f:ident),* }) => {};
    (@total $name:ident $total:ident { $($f:ident),* }) => {
        impl $name {
            /// The section with `total` set to the sum of the other fields.
            pub fn with_total(mut self) -> Self {
                self.$total = 0 $( + self.$f )*;
                self
            }
        }
    };
}

sections! {
    /// Shake answers by result.
    Answered(total) {
        /// Result 14: a packet was won.
        got,
        /// Result 15: none left.
        none,
        /// Result 17: shed by the server's rate budget.
        overloaded,
    }
    /// Requests that went wrong, by kind (timeouts are counted apart).
    Errors(total) {
        /// Due while the user was not connected (not sent).
        not_connected,
        /// Sent, then the connection dropped before the answer.
        dropped,
        /// Answers that failed a check (command, user id, result or amount).
        bad_answer,
        /// Socket writes that failed or would block (the connection is then closed).
        write_failed,
    }
    /// Notifications, grabs and client sends.
    Packets {
        /// Send notifications (0x0004) received.
        notified,
        /// Grabs (0x0005) sent, won (amount > 0), denied (0).
        grabs,
        grab_won,
        grab_denied,
        /// Client sends (0x0007) sent, created (result 0), refused (result 1-3).
        sends,
        send_ok,
        send_refused,
        /// Money seen by clients, cents: won by shakes, grabbed, sent (created).
        won_cents,
        grabbed_cents,
        sent_cents,
    }
}

/// Connection events of one second (the gauge is [`LoadgenLine::connections`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnEvents {
    pub connects: u64,
    pub disconnects: u64,
    pub failed: BTreeMap<String, u64>,
}

/// One line of `loadgen.jsonl`: what one load generator did in one second.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoadgenLine {
    /// Unix seconds: the whole unix second the interval ends on, on every process and host alike, so
    /// records of many processes add up second by second (the last line, written at stop,
    /// ends when the process stopped).
    pub t: f64,
    /// Seconds covered by the counts (about 1); 0 or absent means 1.
    pub interval_s: f64,
    /// The phase running at the middle of the interval.
    pub phase: String,
    /// This process tree's target shakes per second at `t`.
    pub target_qps: f64,
    /// Shakes due by the schedule in the interval.
    pub scheduled: u64,
    /// Shake requests written to a socket in the interval.
    pub sent: u64,
    /// Answers received in the interval (got + none + overloaded).
    pub answered: u64,
    pub got: u64,
    pub none: u64,
    pub overloaded: u64,
    /// Failed requests (the kinds are in `error_kinds`), timeouts apart.
    pub errors: u64,
    pub timeouts: u64,
    /// Answers to requests that had already timed out.
    pub late: u64,
    /// Users logged in now (gauge).
    pub connections: u64,
    /// Users logged in now by local source address (gauge), with `--source-addrs`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub connections_by_addr: BTreeMap<String, u64>,
    /// Requests awaiting an answer plus grabs awaiting their think time (gauge).
    pub inflight: u64,
    /// Latency of the shakes answered in the interval.
    pub latency_ms: Latency,
    /// The same latencies as a histogram of microseconds, encoded as in
    /// `histograms.json` ([`super::histograms::ENCODING`]): processes and hosts merge
    /// these second by second into exact fleet-wide percentiles. Empty in files of
    /// writers that did not record it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub latency_hist: String,
    pub error_kinds: Errors,
    pub packets: Packets,
    pub conn_events: ConnEvents,
}

/// One phase in `summary.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PhaseSummary {
    pub name: String,
    pub target_qps: f64,
    /// Shakes sent per second of the phase's wall time.
    pub achieved_qps: f64,
    /// Unix seconds (fractional): when the phase really began and ended.
    pub start: f64,
    pub end: f64,
    pub scheduled: u64,
    pub sent: u64,
    pub answered: u64,
    pub errors: u64,
    pub timeouts: u64,
    /// (errors + timeouts) / scheduled.
    pub error_rate: f64,
    pub results: Answered,
    pub error_kinds: Errors,
    pub packets: Packets,
    /// Whole-phase percentiles from the load generator's histogram.
    pub latency_ms: Latency,
}

/// Connection figures: a gauge and counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Connections {
    /// Users logged in at the end of the last phase (gauge).
    pub connected: u64,
    /// Logins completed, connections lost after login.
    pub connects: u64,
    pub disconnects: u64,
    /// Failed connect or login attempts by reason.
    pub failed: BTreeMap<String, u64>,
}

/// Cents seen on each side, and whether they agree.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Money {
    /// Cents won by shakes (result 14), as clients saw them.
    pub client_won_cents: u64,
    /// Cents granted to grabs, as clients saw them.
    pub client_grabbed_cents: u64,
    /// Cents of client sends the server accepted.
    pub client_sent_cents: u64,
    /// The same from the servers' `/stats` (summed), when `--server-control` was given.
    pub server_won_cents: Option<u64>,
    pub server_grabbed_cents: Option<u64>,
    pub server_created_cents: Option<u64>,
    /// Both sides agree on won and grabbed cents; `None` when not checked.
    pub reconciled: Option<bool>,
    pub note: String,
}

impl Money {
    /// Whether the load generator recorded any money at all (old or money-less runs
    /// read as all zeros).
    pub fn is_empty(&self) -> bool {
        *self == Money::default()
    }
}

/// Thresholds and how the run fared against them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Verdict {
    pub max_p99_ms: Option<f64>,
    pub max_error_rate: Option<f64>,
    pub passed: bool,
    pub failures: Vec<String>,
}

/// `summary.json`, written by a load generator when it ends.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoadgenSummary {
    /// The user ids this load generator drove, `START..END`.
    pub users: String,
    pub phases: Vec<PhaseSummary>,
    pub connections: Connections,
    /// Seconds from the first connect to the end of the ramp.
    pub connect_s: f64,
    /// The instant asked with `--start-at` (unix s); absent when load began after the
    /// ramp.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_at: Option<f64>,
    /// Users of this load generator not logged in when the first phase began (the ramp
    /// was cut by `--start-at` or `--connect-deadline`; they keep connecting during it).
    pub users_not_connected_at_start: u64,
    /// Per-second records of `--procs` children that came after their second's line was
    /// written (each went into the next line): 0 when every second lined up.
    pub late_child_records: u64,
    pub money: Money,
    pub verdict: Verdict,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loadgen_line_tolerates_nulls_and_missing_fields() {
        let l: LoadgenLine =
            serde_json::from_str(r#"{"t":5,"sent":3,"latency_ms":{"p50":null,"p99":2.5}}"#)
                .unwrap();
        assert_eq!(l.sent, 3);
        assert_eq!(l.latency_ms.p50, None);
        assert_eq!(l.latency_ms.p99, Some(2.5));
        assert_eq!(l.packets, Packets::default());
    }

    #[test]
    fn sections_add_and_total() {
        let mut e = Errors {
            not_connected: 1,
            dropped: 2,
            ..Errors::default()
        };
        e.add(&Errors {
            bad_answer: 4,
            write_failed: 8,
            ..Errors::default()
        });
        assert_eq!(e.total, 0);
        assert_eq!(e.with_total().total, 15);
        let a = Answered {
            got: 1,
            none: 2,
            overloaded: 3,
            total: 99,
        };
        assert_eq!(a.with_total().total, 6);
    }

    #[test]
    fn latency_of_a_histogram_in_ms() {
        let mut h = super::super::histograms::new_latency_histogram();
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        let p = Latency::of(&h);
        assert!((p.p50.unwrap() - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.max.unwrap() - 1000.0).abs() < 1.0, "{p:?}");
        h.reset();
        assert_eq!(Latency::of(&h), Latency::default());
    }
}
