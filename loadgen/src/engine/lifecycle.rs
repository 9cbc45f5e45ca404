//! A connection's life: connect at a bounded rate, log in, read and decode what
//! arrives, expire what waited too long, close, and retry with backoff.
//!
//! A user's socket is its [`Conn`]'s `OwnedFd`: closing a connection is dropping it.
//! Failures are counted by reason ([`Failure`]); a user who never logged in is always
//! retried, one who was in only with `reconnect`.

use super::checks::Seen;
use super::Worker;
use crate::conn::{CONNECTING, DOWN, LOGGING_IN, READY};
use crate::metrics::Failure;
use crate::run_state::MODE_LOAD;
use rand::Rng;
use redpacket_protocol::{decode, Frame};
use redpacket_sys::epoll::{self, WANT_CONNECT, WANT_READ_HANGUP};
use redpacket_sys::socket;
use std::cmp::Reverse;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering::Relaxed;

/// Most connects or logins a worker has under way at once.
const MAX_CONNECTING: usize = 2048;

/// The wait before attempt `attempts + 1`, ns: 100 ms doubling per failed attempt up
/// to 5 s, times `jitter` (drawn from 0.5..1.5), so a fleet of users refused together
/// does not come back together.
pub(super) fn backoff_ns(attempts: u8, jitter: f64) -> u64 {
    let base = (100_000_000u64 << u32::from(attempts.min(6))).min(5_000_000_000);
    (base as f64 * jitter) as u64
}

impl Worker {
    pub(super) fn wants_connect(&self) -> bool {
        (self.next_first < self.users.len())
            || self
                .retry
                .peek()
                .is_some_and(|Reverse((due, _))| *due <= self.now + 1_000_000)
    }

    pub(super) fn connect_some(&mut self) {
        let dt = self.now.saturating_sub(self.last_refill) as f64 / 1e9;
        self.last_refill = self.now;
        let cap = (self.cfg.connect_rate / 100.0).max(1.0);
        self.connect_tokens = (self.connect_tokens + dt * self.cfg.connect_rate).min(cap);
        while self.connect_tokens >= 1.0 && self.in_connect < MAX_CONNECTING {
            let idx = if self.next_first < self.users.len() {
                self.next_first += 1;
                self.next_first - 1
            } else {
                match self.retry.peek() {
                    Some(Reverse((due, idx))) if *due <= self.now => {
                        let idx = *idx;
                        self.retry.pop();
                        idx
                    }
                    _ => break,
                }
            };
            self.connect_tokens -= 1.0;
            self.connect(idx);
        }
    }

    pub(super) fn connect(&mut self, idx: u32) {
        let user = self.users.start + idx;
        let Some(dst) = self.cfg.targets.server_for(user) else {
            return;
        };
        let src = match self.cfg.source_addrs.len() {
            0 => None,
            n => Some(self.cfg.source_addrs[(user as usize) % n]),
        };
        match socket::start_connect(dst, src) {
            Ok(fd) => {
                if let Err(e) = self.ep.add(fd.as_fd(), WANT_CONNECT, u64::from(idx)) {
                    self.failed(idx, Failure::of(&e));
                    return;
                }
                let c = &mut self.conns[idx as usize];
                c.fd = Some(fd);
                c.state = CONNECTING;
                c.since = self.now;
                c.rlen = 0;
                self.in_connect += 1;
            }
            Err(e) => self.failed(idx, Failure::of(&e)),
        }
    }

    /// Counts a failed attempt and schedules the next one with backoff and jitter.
    pub(super) fn failed(&mut self, idx: u32, why: Failure) {
        self.tally.counts.fail(why);
        let c = &mut self.conns[idx as usize];
        c.attempts = c.attempts.saturating_add(1);
        let retry = !c.ever || self.cfg.reconnect;
        if retry {
            let delay = backoff_ns(c.attempts, self.rng.random_range(0.5..1.5));
            self.retry.push(Reverse((self.now + delay, idx)));
        }
    }

    /// Closes a connection; its unanswered requests count as dropped.
    pub(super) fn drop_conn(&mut self, idx: u32, why: Failure) {
        let c = &mut self.conns[idx as usize];
        c.fd = None;
        let was = c.state;
        c.state = DOWN;
        let lost = u64::from(c.npend) + u64::from(c.grabs) + u64::from(c.sends);
        c.npend = 0;
        c.phead = 0;
        c.late = 0;
        c.rlen = 0;
        let had_grabs = c.grabs > 0;
        c.grabs = 0;
        c.sends = 0;
        self.inflight -= lost.min(self.inflight);
        self.tally.counts.error_kinds.dropped += lost;
        self.answers.forget(idx, had_grabs);
        match was {
            READY => {
                self.connected -= 1;
                if let Some(n) = self.by_source_slot(idx) {
                    self.by_source[n] -= 1;
                }
                self.tally.counts.disconnects += 1;
            }
            CONNECTING | LOGGING_IN => self.in_connect -= 1,
            _ => {}
        }
        self.failed(idx, why);
    }

    pub(super) fn send_frame(&mut self, idx: u32, f: Frame) -> bool {
        let written = match &self.conns[idx as usize].fd {
            Some(fd) => socket::write_all(fd.as_fd(), f.encode(self.unix).as_bytes()),
            None => return false,
        };
        match written {
            Ok(()) => true,
            Err(e) => {
                self.tally.counts.error_kinds.write_failed += 1;
                let why = if socket::would_block(&e) {
                    Failure::Other
                } else {
                    Failure::of(&e)
                };
                self.drop_conn(idx, why);
                false
            }
        }
    }

    /// Expires connects, logins and shakes that waited too long.
    pub(super) fn sweep(&mut self) {
        let timeout = self.cfg.timeout.as_nanos() as u64;
        let ctimeout = self.cfg.connect_timeout.as_nanos() as u64;
        for idx in 0..self.conns.len() as u32 {
            let c = &mut self.conns[idx as usize];
            match c.state {
                CONNECTING | LOGGING_IN if self.now.saturating_sub(c.since) > ctimeout => {
                    self.drop_conn(idx, Failure::Timeout);
                }
                READY => {
                    while let Some(t) = c.oldest_pend() {
                        if self.now.saturating_sub(t) <= timeout {
                            break;
                        }
                        let _ = c.pop_pend();
                        c.late = c.late.saturating_add(1);
                        self.inflight -= 1;
                        self.tally.counts.timeouts += 1;
                    }
                }
                _ => {}
            }
        }
    }

    pub(super) fn on_event(&mut self, idx: u32, bits: u32) {
        let Some(c) = self.conns.get(idx as usize) else {
            return;
        };
        let Some(fd) = c.fd.as_ref() else {
            return;
        };
        match c.state {
            CONNECTING => {
                if let Some(e) = socket::so_error(fd.as_fd()) {
                    self.drop_conn(idx, Failure::of(&e));
                    return;
                }
                if !epoll::can_write(bits) {
                    if epoll::hung_up(bits) {
                        self.drop_conn(idx, Failure::Reset);
                    }
                    return;
                }
                if let Err(e) = self.ep.modify(fd.as_fd(), WANT_READ_HANGUP, u64::from(idx)) {
                    self.drop_conn(idx, Failure::of(&e));
                    return;
                }
                self.conns[idx as usize].state = LOGGING_IN;
                self.conns[idx as usize].since = self.now;
                let user = self.users.start + idx;
                self.send_frame(idx, Frame::LoginRequest { user });
            }
            LOGGING_IN | READY => self.on_readable(idx),
            _ => {}
        }
    }

    /// Reads what a connection's socket holds and applies every whole frame: the socket
    /// is watched edge-triggered, so it is read until a read comes up short.
    pub(super) fn on_readable(&mut self, idx: u32) {
        while self.read_once(idx) {}
    }

    /// One read; true when it filled the buffer (more may wait) and the connection is
    /// still open.
    fn read_once(&mut self, idx: u32) -> bool {
        let c = &mut self.conns[idx as usize];
        let have = usize::from(c.rlen);
        self.scratch[..have].copy_from_slice(&c.rbuf[..have]);
        let Some(fd) = c.fd.as_ref() else {
            return false;
        };
        let room = self.scratch.len() - have;
        let got = match socket::read_stamped(fd.as_fd(), &mut self.scratch[have..]) {
            Ok((0, _)) => {
                self.drop_conn(idx, Failure::Reset);
                return false;
            }
            Ok((n, stamp)) => {
                self.answered_at = self.arrival(stamp);
                n
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return true,
            Err(e) if socket::would_block(&e) => return false,
            Err(e) => {
                self.drop_conn(idx, Failure::of(&e));
                return false;
            }
        };
        let end = have + got;
        let mut at = 0;
        while at < end {
            match decode(&self.scratch[at..end]) {
                Ok(Some(d)) => {
                    at += d.len;
                    if !self.on_frame(idx, d.frame) {
                        return false;
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    self.tally.counts.error_kinds.bad_answer += 1;
                    self.drop_conn(idx, Failure::Other);
                    return false;
                }
            }
        }
        let rest = end - at;
        let c = &mut self.conns[idx as usize];
        c.rbuf[..rest].copy_from_slice(&self.scratch[at..end]);
        c.rlen = rest as u8;
        got == room
    }

    /// Applies what the answer checks make of one frame; false if the connection was
    /// closed.
    pub(super) fn on_frame(&mut self, idx: u32, f: Frame) -> bool {
        let me = self.users.start + idx;
        let seen = self.answers.check(
            idx,
            me,
            &mut self.conns[idx as usize],
            f,
            self.answered_at,
            &mut self.tally,
            &mut self.inflight,
        );
        match seen {
            Seen::Counted => true,
            Seen::LoggedIn => {
                let c = &mut self.conns[idx as usize];
                c.state = READY;
                c.ever = true;
                c.attempts = 0;
                self.in_connect -= 1;
                self.connected += 1;
                if let Some(n) = self.by_source_slot(idx) {
                    self.by_source[n] += 1;
                }
                self.tally.counts.connects += 1;
                true
            }
            Seen::Notified { packet, amount } => {
                if self.shared.mode.load(Relaxed) == MODE_LOAD {
                    let (lo, hi) = self.cfg.think_ms;
                    let ms = self.rng.random_range(lo..=hi.max(lo));
                    let due = self.now + ms * 1_000_000;
                    self.grab_timers.push(Reverse((due, idx, packet, amount)));
                }
                true
            }
            Seen::Close(why) => {
                self.drop_conn(idx, why);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::backoff_ns;

    #[test]
    fn backoff_doubles_to_five_seconds_with_jitter() {
        assert_eq!(backoff_ns(0, 1.0), 100_000_000);
        assert_eq!(backoff_ns(1, 1.0), 200_000_000);
        assert_eq!(backoff_ns(5, 1.0), 3_200_000_000);
        assert_eq!(backoff_ns(6, 1.0), 5_000_000_000);
        assert_eq!(backoff_ns(200, 1.0), 5_000_000_000);
        assert_eq!(backoff_ns(1, 0.5), 100_000_000);
        assert_eq!(backoff_ns(6, 1.5), 7_500_000_000);
    }
}
