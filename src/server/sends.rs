//! User-to-user red packets owned by one worker.
//!
//! A packet lives on the worker whose index is `id % workers`, so every grab for it goes
//! to one place and "once per recipient" needs no lock. Shares are drawn when the packet
//! is made ([`crate::split`]), so the money is fixed from the start: every cent is later
//! grabbed, or returned to the sender when the time-to-live runs out.

use crate::split::Shares;
use redpacket_protocol::MAX_RECIPIENTS;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Packet {
    /// Who gets the remainder back at expiry (0 for campaign packets).
    pub sender: u32,
    pub recipients: [u32; MAX_RECIPIENTS],
    pub count: u8,
    shares: Shares,
    /// Bit i set: recipient i has grabbed.
    grabbed: u8,
    /// Shares handed out so far (they go in order).
    taken: u8,
    /// Milliseconds since the store's epoch (8 bytes where an `Instant` takes 16).
    expires: u64,
}

impl Packet {
    fn remainder(&self) -> u32 {
        self.shares[usize::from(self.taken)..usize::from(self.count)]
            .iter()
            .sum()
    }
}

/// What a grab request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grab {
    /// A share, in cents; `last` when it was the packet's final share.
    Share { cents: u32, last: bool },
    /// Not a recipient, already grabbed, expired or unknown: answered 0.
    Denied,
}

/// The packets this worker owns. How many it may hold is decided outside, by the
/// reservations of [`super::SendSlots`], so a campaign's packets are never refused here.
#[derive(Debug)]
pub struct Sends {
    worker: u32,
    workers: u32,
    next_seq: u32,
    ttl: Duration,
    epoch: Instant,
    packets: HashMap<u32, Packet>,
    /// Packet ids by expiry (milliseconds since `epoch`); the TTL is fixed, so this is
    /// also creation order.
    expiry: VecDeque<(u64, u32)>,
    /// Outstanding packets per sending user (campaigns, sender 0, are not counted). An
    /// entry lives only while its count is above 0, so the map is bounded by the
    /// packets themselves, whoever sends.
    by_sender: HashMap<u32, u32>,
}

impl Sends {
    pub fn new(worker: usize, workers: usize, ttl: Duration) -> Sends {
        Sends {
            worker: worker as u32,
            workers: workers as u32,
            next_seq: 1,
            ttl,
            epoch: Instant::now(),
            packets: HashMap::new(),
            expiry: VecDeque::new(),
            by_sender: HashMap::new(),
        }
    }

    /// The worker that owns packet `id`.
    pub fn owner(id: u32, workers: usize) -> usize {
        (id % workers as u32) as usize
    }

    pub fn outstanding(&self) -> usize {
        self.packets.len()
    }

    /// Packets `user` sent that this store still holds.
    pub fn sent_by(&self, user: u32) -> u32 {
        self.by_sender.get(&user).copied().unwrap_or(0)
    }

    fn forget(&mut self, id: u32) -> Option<Packet> {
        let p = self.packets.remove(&id)?;
        if p.sender != 0 {
            if let std::collections::hash_map::Entry::Occupied(mut e) =
                self.by_sender.entry(p.sender)
            {
                *e.get_mut() -= 1;
                if *e.get() == 0 {
                    e.remove();
                }
            }
        }
        Some(p)
    }

    /// Cents of every packet not yet fully grabbed: the ledger's "outstanding".
    pub fn outstanding_cents(&self) -> u64 {
        self.packets
            .values()
            .map(|p| u64::from(p.remainder()))
            .sum()
    }

    fn next_id(&mut self) -> u32 {
        loop {
            let id = self
                .next_seq
                .wrapping_mul(self.workers)
                .wrapping_add(self.worker);
            self.next_seq = self.next_seq.wrapping_add(1);
            if self.next_seq > u32::MAX / self.workers {
                self.next_seq = 1;
            }
            // Ids of packets still alive are skipped after a wrap; id 0 is never used.
            if id != 0 && !self.packets.contains_key(&id) {
                return id;
            }
        }
    }

    /// Stores a packet whose shares are already drawn; returns its id.
    pub fn create(
        &mut self,
        sender: u32,
        recipients: [u32; MAX_RECIPIENTS],
        count: u8,
        shares: Shares,
        now: Instant,
    ) -> u32 {
        let id = self.next_id();
        let expires = self.ms(now + self.ttl);
        if sender != 0 {
            *self.by_sender.entry(sender).or_default() += 1;
        }
        self.packets.insert(
            id,
            Packet {
                sender,
                recipients,
                count,
                shares,
                grabbed: 0,
                taken: 0,
                expires,
            },
        );
        self.expiry.push_back((expires, id));
        id
    }

    fn ms(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// A grab by `user` (the connection's logged-in user, never the frame's claim).
    pub fn grab(&mut self, id: u32, user: u32) -> Grab {
        let Some(p) = self.packets.get_mut(&id) else {
            return Grab::Denied;
        };
        let Some(i) = p.recipients[..usize::from(p.count)]
            .iter()
            .position(|&r| r == user)
        else {
            return Grab::Denied;
        };
        if p.grabbed & (1 << i) != 0 {
            return Grab::Denied;
        }
        p.grabbed |= 1 << i;
        let cents = p.shares[usize::from(p.taken)];
        p.taken += 1;
        let last = p.taken == p.count;
        if last {
            self.forget(id);
        }
        Grab::Share { cents, last }
    }

    /// Removes packets past their time-to-live; returns (packets refunded, cents).
    pub fn expire(&mut self, now: Instant) -> (u64, u64) {
        let (mut n, mut cents) = (0, 0);
        let now = self.ms(now);
        while let Some(&(at, id)) = self.expiry.front() {
            if at > now {
                break;
            }
            self.expiry.pop_front();
            // Fully grabbed packets are already gone; an id reused after a wrap has a
            // later expiry of its own, which its own entry will meet.
            if let Some(p) = self.packets.get(&id) {
                if p.expires <= now {
                    tracing::debug!(
                        "packet {id} expired: {} cents back to user {}",
                        p.remainder(),
                        p.sender
                    );
                    n += 1;
                    cents += u64::from(p.remainder());
                    self.forget(id);
                }
            }
        }
        if self.expiry.is_empty() && self.expiry.capacity() > 1024 {
            // A burst of packets is over: give its bookkeeping back.
            self.expiry = VecDeque::new();
            self.packets.shrink_to_fit();
            self.by_sender.shrink_to_fit();
        }
        (n, cents)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_recipient_grabs_once_and_shares_add_up() {
        let mut s = Sends::new(1, 2, Duration::from_secs(60));
        let now = Instant::now();
        let id = s.create(9, [1, 2, 3], 3, [5, 6, 7], now);
        assert_eq!(Sends::owner(id, 2), 1);
        assert_eq!(s.grab(id, 9), Grab::Denied, "the sender is no recipient");
        let a = s.grab(id, 2);
        assert_eq!(s.grab(id, 2), Grab::Denied, "second grab");
        let b = s.grab(id, 1);
        let c = s.grab(id, 3);
        let cents = |g| match g {
            Grab::Share { cents, .. } => cents,
            Grab::Denied => 0,
        };
        assert_eq!(cents(a) + cents(b) + cents(c), 18);
        assert_eq!(
            c,
            Grab::Share {
                cents: 7,
                last: true
            }
        );
        assert_eq!(s.outstanding(), 0);
        assert_eq!(s.sent_by(9), 0, "the sender's count follows its packets");
        assert_eq!(s.grab(id, 1), Grab::Denied, "gone");
    }

    #[test]
    fn expiry_refunds_exactly_the_remainder() {
        let mut s = Sends::new(0, 1, Duration::from_secs(10));
        let t0 = Instant::now();
        let id = s.create(9, [1, 2, 0], 2, [40, 60, 0], t0);
        let _ = s.create(0, [1, 2, 0], 2, [40, 60, 0], t0);
        assert_eq!(s.sent_by(9), 1, "campaign packets are nobody's");
        let _ = s.grab(id, 2);
        assert_eq!(s.outstanding_cents(), 160);
        assert_eq!(s.expire(t0 + Duration::from_secs(5)), (0, 0));
        assert_eq!(s.expire(t0 + Duration::from_secs(10)), (2, 160));
        assert_eq!(s.sent_by(9), 0);
        assert_eq!(s.outstanding_cents(), 0);
        assert_eq!(s.grab(id, 1), Grab::Denied);
    }

    #[test]
    fn ids_are_unique_nonzero_and_owned() {
        let mut s = Sends::new(2, 3, Duration::from_secs(10));
        let now = Instant::now();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let id = s.create(0, [1, 0, 0], 1, [1, 0, 0], now);
            assert!(id != 0 && seen.insert(id));
            assert_eq!(Sends::owner(id, 3), 2);
        }
    }
}
