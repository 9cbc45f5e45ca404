//! The server's counters and the files made of them: `server.jsonl` ([`SecondLine`]),
//! `/stats` ([`Snapshot`]) and `server-summary.json` ([`Summary`]).
//!
//! Counters: kept per worker on the request path, summed off it.
//!
//! Each worker owns one [`Counters`] block and is its only writer, so an increment is an
//! uncontended relaxed atomic add on a cache line no other core writes. The control
//! thread reads every block to build a [`Snapshot`] for `/stats`, `/metrics` and the
//! per-second log; nothing on the request path ever waits for it.
//!
//! A snapshot is also the schema of those outputs: `/stats` is one snapshot, and each
//! per-second line carries the snapshot and its difference from the previous one.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why a connection was closed. Every close is counted under exactly one reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum CloseReason {
    /// The client closed its end cleanly.
    ClientClosed,
    /// The connection was reset or failed with an I/O error.
    Reset,
    /// No login frame within the login deadline.
    LoginTimeout,
    /// The first frame was not a login.
    NotLoginFirst,
    /// A frame length outside the protocol's range.
    BadLength,
    /// A command the protocol does not define.
    UnknownCommand,
    /// A known command with the wrong length.
    LengthMismatch,
    /// A server-to-client frame (a response or notification) sent by a client, or a
    /// login for another user on a logged-in connection.
    UnexpectedCommand,
    /// The client did not read its answers: the bounded write queue overflowed.
    SlowReader,
    /// The same user logged in on another connection.
    Replaced,
    /// The connection was open when the server shut down.
    Shutdown,
    /// Accepted while the server already held `--max-conns` connections, or refused at
    /// once because the process had no descriptor left.
    OverCapacity,
}

impl CloseReason {
    pub const ALL: [CloseReason; 12] = [
        CloseReason::ClientClosed,
        CloseReason::Reset,
        CloseReason::LoginTimeout,
        CloseReason::NotLoginFirst,
        CloseReason::BadLength,
        CloseReason::UnknownCommand,
        CloseReason::LengthMismatch,
        CloseReason::UnexpectedCommand,
        CloseReason::SlowReader,
        CloseReason::Replaced,
        CloseReason::Shutdown,
        CloseReason::OverCapacity,
    ];

    /// The name used in JSON and Prometheus labels.
    pub fn name(self) -> &'static str {
        match self {
            CloseReason::ClientClosed => "client_closed",
            CloseReason::Reset => "reset",
            CloseReason::LoginTimeout => "login_timeout",
            CloseReason::NotLoginFirst => "not_login_first",
            CloseReason::BadLength => "bad_length",
            CloseReason::UnknownCommand => "unknown_command",
            CloseReason::LengthMismatch => "length_mismatch",
            CloseReason::UnexpectedCommand => "unexpected_command",
            CloseReason::SlowReader => "slow_reader",
            CloseReason::Replaced => "replaced",
            CloseReason::Shutdown => "shutdown",
            CloseReason::OverCapacity => "over_capacity",
        }
    }

    /// Whether this close was caused by bytes the client sent that we do not accept.
    pub fn is_bad_input(self) -> bool {
        matches!(
            self,
            CloseReason::NotLoginFirst
                | CloseReason::BadLength
                | CloseReason::UnknownCommand
                | CloseReason::LengthMismatch
                | CloseReason::UnexpectedCommand
        )
    }
}

/// Declares the counter block and the matching snapshot sections in one place, so a
/// counter cannot be added to one and forgotten in the other.
macro_rules! counters {
    ($( $section:ident : $sec_ty:ident { $( $(#[$doc:meta])* $field:ident ),* $(,)? } )*) => {
        /// One worker's counters (or the control thread's, for what it issues).
        #[derive(Default, Debug)]
        #[repr(align(128))]
        pub struct Counters {
            $( $( $(#[$doc])* pub $field: AtomicU64, )* )*
            closes: [AtomicU64; CloseReason::ALL.len()],
        }

        $(
            /// A field missing from a file written before it existed reads as 0.
            #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
            #[serde(default)]
            pub struct $sec_ty {
                $( $(#[$doc])* pub $field: u64, )*
            }
            impl $sec_ty {
                fn add(&mut self, c: &Counters) {
                    $( self.$field += c.$field.load(Relaxed); )*
                }
                fn minus(&self, prev: &Self) -> Self {
                    Self { $( $field: self.$field.wrapping_sub(prev.$field), )* }
                }
            }
        )*

        /// Counter sections of a snapshot, as summed over every block.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct Totals {
            $( pub $section: $sec_ty, )*
            pub closes: [u64; CloseReason::ALL.len()],
        }

        impl Totals {
            pub fn sum<'a>(blocks: impl IntoIterator<Item = &'a Counters>) -> Totals {
                let mut t = Totals::default();
                for c in blocks {
                    $( t.$section.add(c); )*
                    for (sum, n) in t.closes.iter_mut().zip(&c.closes) {
                        *sum += n.load(Relaxed);
                    }
                }
                t
            }
            pub fn minus(&self, prev: &Totals) -> Totals {
                let mut closes = [0; CloseReason::ALL.len()];
                for (i, c) in closes.iter_mut().enumerate() {
                    *c = self.closes[i].wrapping_sub(prev.closes[i]);
                }
                Totals { $( $section: self.$section.minus(&prev.$section), )* closes }
            }
        }
    };
}

counters! {
    connections: ConnectionCounts {
        /// Connections accepted.
        accepted,
        /// Connections closed, for any reason.
        closed,
        /// Logins accepted.
        logins,
        /// Logins that ended (connection closed or replaced).
        logouts,
        /// accept() failures, each followed by a backoff (out of descriptors, a pending
        /// connection is refused with the spare instead, counted as over_capacity).
        accept_errors,
    }
    requests: RequestCounts {
        login,
        shake,
        grab,
        send,
    }
    shake: ShakeCounts {
        /// Shake packets created by campaigns.
        issued,
        issued_cents,
        /// Shake requests answered 14 (got a packet).
        won,
        won_cents,
        /// Shake requests answered 15 (none left).
        none,
        /// Shake requests answered 17 (shed: over the `--max-qps` budget).
        overloaded,
    }
    send: SendCounts {
        /// User-to-user packets created (campaign or client send frame).
        created,
        created_cents,
        /// Client send frames refused, for any of the reasons below or a bad amount or
        /// bad recipients.
        rejected,
        /// Sends answered 3: the worker's share of `--max-outstanding-sends` was full.
        busy,
        /// Sends answered 4: the sender had `--max-sends-per-user` packets outstanding.
        user_limited,
        /// Sends answered 5: the connection sent faster than `--send-rate`.
        rate_limited,
        /// Notification frames written to a recipient's connection.
        notified,
        /// Notifications kept for a recipient who was offline, delivered at login.
        deferred,
        /// Grab requests answered with a share.
        grabbed,
        grabbed_cents,
        /// Grab requests answered 0 (not a recipient, already grabbed, expired, unknown).
        grab_denied,
        /// Packets whose remainder went back to the sender at expiry.
        refunded,
        refunded_cents,
    }
    control: ControlCounts {
        /// Connections the control server accepted.
        conns,
        /// Control connections closed to make room under `--control-max-conns`.
        evicted,
        /// Control connections closed for not sending a whole request head in time.
        header_timeouts,
        /// Control connections closed after `--control-idle-timeout` without a byte.
        idle_timeouts,
        /// Control connections refused at once: the process was out of descriptors.
        refused,
        /// Control requests answered 401 (no token, or a wrong one).
        unauthorized,
    }
}

impl Counters {
    /// Adds one to a counter. Each block has one writer, so this never contends.
    #[inline]
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }

    #[inline]
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }

    /// Counts one close, under its reason.
    pub fn close(&self, reason: CloseReason) {
        Counters::inc(&self.closed);
        Counters::inc(&self.closes[reason as usize]);
    }
}

/// Money still in play, derived from the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outstanding {
    /// Shake packets issued and not yet won.
    pub shake: u64,
    pub shake_cents: u64,
    /// User-to-user packets not yet fully grabbed nor refunded (a gauge the workers
    /// publish each tick; 0 in a snapshot built from counters alone).
    #[serde(default)]
    pub send: u64,
    /// User-to-user cents neither grabbed nor refunded.
    pub send_cents: u64,
}

/// Everything `/stats` shows: one consistent read of every counter block.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Seconds since the server started.
    pub uptime_s: f64,
    pub workers: usize,
    /// Connections open now (gauge).
    pub open: u64,
    /// Users logged in now (gauge).
    pub logged_in: u64,
    pub connections: ConnectionCounts,
    pub requests: RequestCounts,
    pub shake: ShakeCounts,
    pub send: SendCounts,
    /// The control server's own connections (absent from older files).
    #[serde(default)]
    pub control: ControlCounts,
    pub outstanding: Outstanding,
    /// Closes by reason, keyed by [`CloseReason::name`].
    pub closes: std::collections::BTreeMap<String, u64>,
}

impl Snapshot {
    pub fn from_totals(t: &Totals, workers: usize, uptime_s: f64) -> Snapshot {
        let c = &t.connections;
        Snapshot {
            uptime_s,
            workers,
            open: c.accepted.saturating_sub(c.closed),
            logged_in: c.logins.saturating_sub(c.logouts),
            connections: t.connections,
            requests: t.requests,
            shake: t.shake,
            send: t.send,
            control: t.control,
            outstanding: Outstanding {
                shake: t.shake.issued.saturating_sub(t.shake.won),
                shake_cents: t.shake.issued_cents.saturating_sub(t.shake.won_cents),
                send_cents: t
                    .send
                    .created_cents
                    .saturating_sub(t.send.grabbed_cents + t.send.refunded_cents),
                send: 0,
            },
            closes: CloseReason::ALL
                .iter()
                .map(|r| (r.name().to_string(), t.closes[*r as usize]))
                .collect(),
        }
    }
}

impl Snapshot {
    /// What changed since `prev`: counters become differences, gauges stay current.
    pub fn minus(&self, prev: &Snapshot) -> Snapshot {
        let mut d = self.clone();
        d.connections = self.connections.minus(&prev.connections);
        d.requests = self.requests.minus(&prev.requests);
        d.shake = self.shake.minus(&prev.shake);
        d.send = self.send.minus(&prev.send);
        d.control = self.control.minus(&prev.control);
        for (reason, n) in d.closes.iter_mut() {
            *n = n.wrapping_sub(prev.closes.get(reason).copied().unwrap_or(0));
        }
        d
    }
}

/// The current unix time in seconds, with sub-second precision.
pub fn unix_now_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// One line of the per-second log (JSON Lines): the totals at time `t` and what changed
/// since the previous line (`per_second` has the same shape as `total`; its counters are
/// differences over `interval_s`, its gauges are current).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SecondLine {
    /// Unix seconds: the whole unix second the interval ends on, on every process and host alike, so
    /// records of many processes add up second by second (the last line, written at stop,
    /// ends when the process stopped).
    pub t: f64,
    /// Seconds since the previous line (about 1).
    pub interval_s: f64,
    pub per_second: Snapshot,
    pub total: Snapshot,
}

impl SecondLine {
    /// The line a person reads on the terminal each second: users, request rates, wins
    /// and errors (closes for bad input, slow readers and over capacity, login timeouts,
    /// accept errors), e.g. `[    12s] users 10000 (open 10000) | shakes 4001/s: won
    /// 200, none 3801, shed 0 | grabs 600/s, sends 200/s | errors 0/s (0 in all) |
    /// cents won 123456, grabbed 654321`.
    pub fn human(&self) -> String {
        let (p, t) = (&self.per_second, &self.total);
        let secs = if self.interval_s > 0.0 {
            self.interval_s
        } else {
            1.0
        };
        let rate = |n: u64| (n as f64 / secs).round() as u64;
        let errors = |s: &Snapshot| -> u64 {
            s.closes
                .iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "client_closed" | "reset" | "replaced" | "shutdown"
                    )
                })
                .map(|(_, n)| n)
                .sum::<u64>()
                + s.connections.accept_errors
        };
        format!(
            "[{:>6.0}s] users {} (open {}) | shakes {}/s: won {}, none {}, shed {} | grabs {}/s, sends {}/s | errors {}/s ({} in all) | cents won {}, grabbed {}",
            t.uptime_s,
            t.logged_in,
            t.open,
            rate(p.requests.shake),
            rate(p.shake.won),
            rate(p.shake.none),
            rate(p.shake.overloaded),
            rate(p.requests.grab),
            rate(p.requests.send),
            rate(errors(p)),
            errors(t),
            t.shake.won_cents,
            t.send.grabbed_cents,
        )
    }
}

/// Money a thread still held when it stopped: the ledger's "outstanding", counted from
/// the pools and packets themselves rather than derived from counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Held {
    pub shake: u64,
    pub shake_cents: u64,
    pub send: u64,
    pub send_cents: u64,
}

impl std::ops::AddAssign for Held {
    fn add_assign(&mut self, o: Held) {
        self.shake += o.shake;
        self.shake_cents += o.shake_cents;
        self.send += o.send;
        self.send_cents += o.send_cents;
    }
}

/// The final account written at shutdown, also the file `server-summary.json` (the
/// report reads it back with this type: the two verdicts are required, the rest may be
/// absent).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Summary {
    #[serde(default)]
    pub stats: Snapshot,
    /// Counted from what the pools and packets actually held at the end.
    #[serde(default)]
    pub held: Held,
    /// issued = won + held, for shake packets (cents).
    pub shake_balanced: bool,
    /// created = grabbed + refunded + held, for user-to-user packets (cents).
    pub send_balanced: bool,
    /// This life's number in its folder of a run (`--host-dir`), 1 for the first; 0
    /// when not written there (and in files written before lives were counted).
    #[serde(default)]
    pub life: u32,
    /// The earlier lives in the same folder that ended without their final account
    /// (killed): their ledgers are lost, so this account covers only part of the
    /// server's money ([`crate::lives`]).
    #[serde(default)]
    pub lives_lost: u32,
    /// When each of those lives was last seen and restarted.
    #[serde(default)]
    pub lost_lives: Vec<crate::lives::LostLife>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_blocks_and_differences_subtract() {
        let a = Counters::default();
        let b = Counters::default();
        Counters::inc(&a.shake);
        Counters::add(&b.shake, 4);
        a.close(CloseReason::SlowReader);
        let t1 = Totals::sum([&a, &b]);
        assert_eq!(t1.requests.shake, 5);
        assert_eq!(t1.connections.closed, 1);
        assert_eq!(t1.closes[CloseReason::SlowReader as usize], 1);
        Counters::inc(&b.shake);
        let t2 = Totals::sum([&a, &b]);
        assert_eq!(t2.minus(&t1).requests.shake, 1);
        let s = Snapshot::from_totals(&t2, 2, 1.0);
        assert_eq!(s.closes["slow_reader"], 1);
    }

    #[test]
    fn a_section_written_before_a_counter_existed_still_reads() {
        let old = r#"{"created":3,"rejected":1,"notified":0,"deferred":0,"grabbed":0,"grabbed_cents":0,"grab_denied":0,"refunded":0,"refunded_cents":0,"created_cents":9}"#;
        let s: SendCounts = serde_json::from_str(old).unwrap();
        assert_eq!((s.created, s.rejected, s.user_limited), (3, 1, 0));
    }

    #[test]
    fn the_human_line_gives_rates_and_errors() {
        let a = Counters::default();
        Counters::add(&a.shake, 8);
        a.close(CloseReason::SlowReader);
        a.close(CloseReason::ClientClosed);
        let t = Totals::sum([&a]);
        let total = Snapshot::from_totals(&t, 2, 3.0);
        let line = SecondLine {
            t: 0.0,
            interval_s: 2.0,
            per_second: total.clone(),
            total,
        };
        let h = line.human();
        assert!(h.contains("shakes 4/s"), "{h}");
        assert!(h.contains("errors 1/s (1 in all)"), "{h}");
        assert_eq!(h.lines().count(), 1, "{h}");
    }

    #[test]
    fn outstanding_is_what_is_neither_won_nor_returned() {
        let c = Counters::default();
        Counters::add(&c.issued, 10);
        Counters::add(&c.issued_cents, 1000);
        Counters::add(&c.won, 4);
        Counters::add(&c.won_cents, 300);
        Counters::add(&c.created_cents, 500);
        Counters::add(&c.grabbed_cents, 200);
        Counters::add(&c.refunded_cents, 100);
        let s = Snapshot::from_totals(&Totals::sum([&c]), 1, 0.0);
        assert_eq!(s.outstanding.shake, 6);
        assert_eq!(s.outstanding.shake_cents, 700);
        assert_eq!(s.outstanding.send_cents, 200);
    }
}
