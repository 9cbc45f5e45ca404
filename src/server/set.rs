//! A SET: a group of a few thousand connections inside one worker.
//!
//! The SET owns its connections' slots, its share of shake packets and the demand it saw
//! since the last tick (which decides its next share). Slots are reused through a free
//! list and stamped with a generation, so a stale [`ConnKey`] held in a message can never
//! reach the connection that took the slot later.

use super::{ConnKey, ShakePacket};
use crate::stats::CloseReason;
use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::task::Waker;

/// What the worker knows of one connection; the connection's task owns the socket.
///
/// Idle, a slot holds no heap memory: `out` stays an empty `Vec` unless the client stops
/// reading, and it is freed again once drained.
#[derive(Debug)]
pub struct Slot {
    pub gen: u32,
    pub fd: RawFd,
    /// The logged-in user, once the login frame arrived.
    pub user: Option<u32>,
    /// Answers the kernel would not take yet, oldest first (bounded by `--write-queue`).
    /// Boxed: a slot pays one pointer for it, not a whole `Vec`, while it is unused
    /// (nearly always), at the price of a second allocation when a client lags.
    #[allow(clippy::box_collection)]
    pub out: Option<Box<Vec<u8>>>,
    /// Bytes handed to the kernel since its unsent bytes were last measured (SIOCOUTQNSD).
    pub unmeasured: u16,
    /// Wakes the connection's task when someone else writes to or closes it.
    pub waker: Option<Waker>,
    /// Set when the connection must close; its task closes it at the next wake.
    pub close: Option<CloseReason>,
    pub live: bool,
    /// The send rate limit's "theoretical arrival time" (GCRA, a token bucket kept in
    /// one number): microseconds since the worker's epoch, wrapping.
    pub send_tat: u32,
}

impl Slot {
    fn vacant() -> Slot {
        Slot {
            gen: 0,
            fd: -1,
            user: None,
            out: None,
            unmeasured: 0,
            waker: None,
            close: None,
            live: false,
            send_tat: 0,
        }
    }

    /// Marks the connection for closing and wakes its task. The first reason stands.
    pub fn close(&mut self, reason: CloseReason) {
        if self.close.is_none() {
            self.close = Some(reason);
        }
        if let Some(w) = &self.waker {
            w.wake_by_ref();
        }
    }
}

#[derive(Debug, Default)]
pub struct Set {
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
    /// This SET's share of shake packets.
    pub pool: VecDeque<ShakePacket>,
    /// Shake requests seen since the last tick.
    pub demand: u64,
}

impl Set {
    #[cfg(test)]
    pub fn live(&self) -> usize {
        self.live
    }

    /// Takes a slot for a new connection; `None` when the SET is full.
    pub fn insert(&mut self, index: u32, fd: RawFd, capacity: usize) -> Option<ConnKey> {
        let slot = match self.free.pop() {
            Some(s) => s,
            None if self.slots.len() < capacity => {
                self.slots.push(Slot::vacant());
                (self.slots.len() - 1) as u32
            }
            None => return None,
        };
        let s = &mut self.slots[slot as usize];
        s.gen = s.gen.wrapping_add(1);
        s.fd = fd;
        s.user = None;
        s.out = None;
        s.unmeasured = 0;
        s.waker = None;
        s.close = None;
        s.live = true;
        s.send_tat = 0;
        self.live += 1;
        Some(ConnKey {
            set: index,
            slot,
            gen: s.gen,
        })
    }

    pub fn get_mut(&mut self, key: ConnKey) -> Option<&mut Slot> {
        self.slots
            .get_mut(key.slot as usize)
            .filter(|s| s.live && s.gen == key.gen)
    }

    /// Frees a connection's slot; returns its user if it had logged in.
    pub fn remove(&mut self, key: ConnKey) -> Option<Option<u32>> {
        let s = self.get_mut(key)?;
        s.live = false;
        s.fd = -1;
        s.out = None;
        s.waker = None;
        let user = s.user.take();
        self.live -= 1;
        self.free.push(key.slot);
        Some(user)
    }

    /// Keys of every live connection in this SET (numbered `index`).
    pub fn live_keys(&self, index: u32) -> impl Iterator<Item = ConnKey> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.live)
            .map(move |(i, s)| ConnKey {
                set: index,
                slot: i as u32,
                gen: s.gen,
            })
    }

    pub fn slots_mut(&mut self) -> impl Iterator<Item = &mut Slot> {
        self.slots.iter_mut().filter(|s| s.live)
    }
}

/// The per-connection send rate (`--send-rate`): a token bucket of one second's worth
/// (at least one token), as the generic cell rate algorithm, so a connection pays
/// four bytes of its slot for it and nothing else.
#[derive(Clone, Copy, Debug)]
pub struct SendRate {
    /// Microseconds between sends at the rate; 0 = unlimited.
    interval: u32,
    /// How far ahead of now the arrival time may run: (burst - 1) intervals.
    tolerance: u32,
}

impl SendRate {
    pub fn new(per_second: f64) -> SendRate {
        if per_second <= 0.0 {
            return SendRate {
                interval: 0,
                tolerance: 0,
            };
        }
        // Slower than one send in 100 s is treated as one send in 100 s.
        let interval = (1e6 / per_second).clamp(1.0, 1e8) as u32;
        let burst = per_second.max(1.0).floor();
        SendRate {
            interval,
            tolerance: ((burst - 1.0) * f64::from(interval)).min(1e9) as u32,
        }
    }

    /// Whether a send at `now_us` is allowed; updates the connection's `tat`.
    pub fn allow(&self, tat: &mut u32, now_us: u32) -> bool {
        if self.interval == 0 {
            return true;
        }
        let ahead = tat.wrapping_sub(now_us) as i32;
        // An arrival time in the past, or further ahead than a legal one can be (the
        // clock wrapped while the connection was idle): the bucket is full.
        if ahead <= 0 || ahead as u64 > u64::from(self.tolerance) + u64::from(self.interval) {
            *tat = now_us.wrapping_add(self.interval);
            return true;
        }
        if ahead as u32 > self.tolerance {
            return false;
        }
        *tat = tat.wrapping_add(self.interval);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_rate_allows_a_second_of_burst_then_the_rate() {
        let r = SendRate::new(10.0);
        let mut tat = 0u32;
        let t0 = 5_000_000u32;
        let burst = (0..50).filter(|_| r.allow(&mut tat, t0)).count();
        assert_eq!(burst, 10);
        // 100 ms later: one more token.
        assert!(r.allow(&mut tat, t0 + 100_000));
        assert!(!r.allow(&mut tat, t0 + 100_000));
        // Over 10 s at full pipelining: about 10 per second.
        let mut ok = 0;
        for ms in 0..10_000u32 {
            for _ in 0..10 {
                ok += u32::from(r.allow(&mut tat, t0 + 200_000 + ms * 1000));
            }
        }
        assert!((99..=102).contains(&ok), "{ok}");
        // Idle across a wrap of the microsecond clock: the bucket is full again.
        let later = tat.wrapping_add(u32::MAX / 2 + 7);
        assert!((0..10).all(|_| r.allow(&mut tat, later)));
        assert!(SendRate::new(0.0).allow(&mut tat, 0), "0 = unlimited");
        let slow = SendRate::new(0.5);
        let mut t = 0;
        assert!(slow.allow(&mut t, 1_000));
        assert!(!slow.allow(&mut t, 1_000_000));
        assert!(slow.allow(&mut t, 2_001_000));
    }

    #[test]
    fn a_slot_stays_small() {
        // Per idle user: the README's memory figure counts this slot.
        assert!(
            std::mem::size_of::<Slot>() <= 56,
            "{}",
            std::mem::size_of::<Slot>()
        );
    }

    #[test]
    fn slots_are_reused_and_stale_keys_miss() {
        let mut s = Set::default();
        let a = s.insert(0, 10, 2).unwrap();
        let b = s.insert(0, 11, 2).unwrap();
        assert!(s.insert(0, 12, 2).is_none(), "full");
        assert_eq!(s.live(), 2);
        s.get_mut(a).unwrap().user = Some(7);
        assert_eq!(s.remove(a), Some(Some(7)));
        assert_eq!(s.remove(a), None, "removed twice");
        let c = s.insert(0, 13, 2).unwrap();
        assert_eq!(c.slot, a.slot);
        assert!(s.get_mut(a).is_none(), "old generation no longer matches");
        assert!(s.get_mut(c).is_some() && s.get_mut(b).is_some());
    }
}
