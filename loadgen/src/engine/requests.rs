//! What a worker sends when the schedule says: shakes, client sends and grabs.
//!
//! Shakes take users round-robin, so each user shakes at most once per users/rate
//! seconds; client sends go from random connected users to random others; grabs follow
//! a notification after the user's think time. The due times are `schedule`'s.

use super::Worker;
use crate::conn::{PEND, READY};
use rand::Rng;
use redpacket_protocol::{Frame, MAX_RECIPIENTS};
use std::cmp::Reverse;

impl Worker {
    /// Re-reads the rates; a change restarts that schedule one period from now.
    pub(super) fn rates(&mut self) {
        let share = f64::from(self.users.len()) / f64::from(self.shared.all_users.len().max(1));
        self.shake_due.follow(self.shared.qps() * share, self.now);
        self.send_due
            .follow(self.shared.send_rate() * share, self.now);
    }

    pub(super) fn shakes(&mut self) {
        if self.conns.is_empty() {
            return;
        }
        let n = self.conns.len() as u32;
        while let Some(sched) = self.shake_due.pop_due(self.now) {
            let idx = self.rr;
            self.rr = (self.rr + 1) % n;
            self.tally.counts.scheduled += 1;
            let c = &mut self.conns[idx as usize];
            if c.state != READY {
                self.tally.counts.error_kinds.not_connected += 1;
                continue;
            }
            if usize::from(c.npend) == PEND {
                // Open loop: the new request goes out; the oldest stops being waited for.
                let _ = c.pop_pend();
                c.late = c.late.saturating_add(1);
                self.inflight -= 1;
                self.tally.counts.timeouts += 1;
            }
            let user = self.users.start + idx;
            if self.send_frame(idx, Frame::ShakeRequest { user }) {
                self.conns[idx as usize].push_pend(sched);
                self.inflight += 1;
                self.tally.counts.sent += 1;
            }
        }
    }

    pub(super) fn random_ready(&mut self) -> Option<u32> {
        let n = self.conns.len() as u32;
        for _ in 0..8 {
            let i = self.rng.random_range(0..n);
            if self.conns[i as usize].state == READY {
                return Some(i);
            }
        }
        None
    }

    pub(super) fn sends(&mut self) {
        if self.conns.is_empty() {
            return;
        }
        let all = self.shared.all_users;
        while self.send_due.pop_due(self.now).is_some() {
            let Some(idx) = self.random_ready() else {
                self.tally.counts.error_kinds.not_connected += 1;
                continue;
            };
            let me = self.users.start + idx;
            let want = (MAX_RECIPIENTS as u32).min(all.len().saturating_sub(1));
            if want == 0 {
                continue;
            }
            let mut to = [0u32; MAX_RECIPIENTS];
            let mut k = 0;
            while k < want as usize {
                let u = self.rng.random_range(all.start..all.end);
                if u != me && !to[..k].contains(&u) {
                    to[k] = u;
                    k += 1;
                }
            }
            let (lo, hi) = self.cfg.send_cents;
            let amount = self.rng.random_range(lo.max(want)..=hi.max(lo.max(want)));
            let f = Frame::SendRequest {
                user: me,
                amount,
                count: want,
                users: to,
            };
            if self.send_frame(idx, f) {
                self.answers
                    .send_sent(&mut self.conns[idx as usize], idx, amount);
                self.inflight += 1;
                self.tally.counts.packets.sends += 1;
            }
        }
    }

    pub(super) fn grabs(&mut self) {
        while let Some(Reverse((due, idx, packet, amount))) = self.grab_timers.peek().copied() {
            if due > self.now {
                break;
            }
            self.grab_timers.pop();
            if self.conns[idx as usize].state != READY {
                self.tally.counts.error_kinds.not_connected += 1;
                continue;
            }
            let user = self.users.start + idx;
            if self.send_frame(idx, Frame::GrabRequest { user, packet }) {
                self.answers
                    .grab_sent(&mut self.conns[idx as usize], idx, packet, amount);
                self.inflight += 1;
                self.tally.counts.packets.grabs += 1;
            }
        }
    }
}
