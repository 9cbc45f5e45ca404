//! Where each user is: kept by the user's home worker (`user % workers`).
//!
//! A user may land on any worker (the kernel picks the listener), but every fact about a
//! user goes to one place, so "the newest login wins" and "notify this user now or at
//! login" need no shared map and no lock: logins, logouts and notifications are messages
//! to the home worker, handled in the order they arrive.

use super::{Loc, Note};
use std::collections::HashMap;

/// What the home worker must do after an update.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Close the older connection of a user who logged in again.
    Kick(Loc),
    /// Push a notification to the connection at `Loc`.
    Deliver(Loc, Note),
}

/// The end of a chain of kept notifications.
const NIL: u32 = u32::MAX;

/// A notification kept for an offline user, packed to 32 bytes (a [`Note`] plus a link
/// to the same user's next one): at the send cap a worker may keep millions of them.
#[derive(Clone, Copy, Debug)]
struct Kept {
    packet: u32,
    amount: u32,
    users: [u32; redpacket_protocol::MAX_RECIPIENTS],
    /// Unix seconds (a `u32` holds them until 2106).
    expires: u32,
    next: u32,
    shares: u8,
}

impl Kept {
    fn note(&self) -> Note {
        Note {
            packet: self.packet,
            amount: self.amount,
            shares: self.shares,
            users: self.users,
            expires: u64::from(self.expires),
        }
    }
}

#[derive(Debug)]
pub struct Directory {
    online: HashMap<u32, Loc>,
    /// Users with notifications kept for their next login: first and last index in
    /// `kept`, oldest first. One flat slab instead of a `Vec` per user: a kept
    /// notification costs its 32 bytes and a share of one map entry, no allocation.
    pending: HashMap<u32, (u32, u32)>,
    kept: Vec<Kept>,
    /// Free slots of `kept`, linked through `next`.
    free: u32,
    pending_count: usize,
}

impl Default for Directory {
    fn default() -> Directory {
        Directory {
            online: HashMap::new(),
            pending: HashMap::new(),
            kept: Vec::new(),
            free: NIL,
            pending_count: 0,
        }
    }
}

impl Directory {
    pub fn home(user: u32, workers: usize) -> usize {
        (user % workers as u32) as usize
    }

    #[cfg(test)]
    pub fn online(&self) -> usize {
        self.online.len()
    }

    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.pending_count
    }

    /// `user` logged in at `at`: kick any older connection, deliver what waited.
    pub fn login(&mut self, user: u32, at: Loc, now_unix: u64, out: &mut Vec<Action>) {
        if let Some(old) = self.online.insert(user, at) {
            if old != at {
                out.push(Action::Kick(old));
            }
        }
        if let Some((mut i, _)) = self.pending.remove(&user) {
            while i != NIL {
                let k = self.kept[i as usize];
                if u64::from(k.expires) > now_unix {
                    out.push(Action::Deliver(at, k.note()));
                }
                self.release(i);
                i = k.next;
            }
            self.shrink_if_empty();
        }
    }

    /// The connection at `at` closed; the user is offline unless a newer login replaced it.
    pub fn logout(&mut self, user: u32, at: Loc) {
        if self.online.get(&user) == Some(&at) {
            self.online.remove(&user);
        }
    }

    /// A notification for `user`: delivered now if online, else kept. Returns whether it
    /// was kept for later.
    pub fn notify(&mut self, user: u32, note: Note, out: &mut Vec<Action>) -> bool {
        if let Some(&at) = self.online.get(&user) {
            out.push(Action::Deliver(at, note));
            return false;
        }
        let k = Kept {
            packet: note.packet,
            amount: note.amount,
            users: note.users,
            expires: note.expires.min(u64::from(u32::MAX)) as u32,
            next: NIL,
            shares: note.shares,
        };
        let i = if self.free != NIL {
            let i = self.free;
            self.free = self.kept[i as usize].next;
            self.kept[i as usize] = k;
            i
        } else {
            self.kept.push(k);
            (self.kept.len() - 1) as u32
        };
        self.pending_count += 1;
        match self.pending.get_mut(&user) {
            Some((_, last)) => {
                let prev = std::mem::replace(last, i);
                self.kept[prev as usize].next = i;
            }
            None => {
                self.pending.insert(user, (i, i));
            }
        }
        true
    }

    fn release(&mut self, i: u32) {
        self.kept[i as usize].next = self.free;
        self.free = i;
        self.pending_count -= 1;
    }

    /// After a burst of offline recipients has logged in or expired, give the slab back.
    fn shrink_if_empty(&mut self) {
        if self.pending_count == 0 && self.kept.capacity() > 1024 {
            self.kept = Vec::new();
            self.free = NIL;
            self.pending.shrink_to_fit();
        }
    }

    /// Drops kept notifications whose packet has expired (their grabs would get 0).
    pub fn purge(&mut self, now_unix: u64) {
        let mut dropped = Vec::new();
        let kept = &mut self.kept;
        self.pending.retain(|_, (first, last)| {
            // Rebuild the chain from the notes still alive, in order.
            let (mut i, mut head, mut tail) = (*first, NIL, NIL);
            while i != NIL {
                let next = kept[i as usize].next;
                if u64::from(kept[i as usize].expires) > now_unix {
                    kept[i as usize].next = NIL;
                    if tail == NIL {
                        head = i;
                    } else {
                        kept[tail as usize].next = i;
                    }
                    tail = i;
                } else {
                    dropped.push(i);
                }
                i = next;
            }
            (*first, *last) = (head, tail);
            head != NIL
        });
        for i in dropped {
            self.release(i);
        }
        self.shrink_if_empty();
    }
}

#[cfg(test)]
mod tests {
    use super::super::ConnKey;
    use super::*;

    fn loc(worker: u16, slot: u32) -> Loc {
        Loc {
            worker,
            conn: ConnKey {
                set: 0,
                slot,
                gen: 1,
            },
        }
    }

    fn note(packet: u32, expires: u64) -> Note {
        Note {
            packet,
            amount: 10,
            shares: 1,
            users: [5, 0, 0],
            expires,
        }
    }

    #[test]
    fn newest_login_wins_and_old_one_is_kicked() {
        let mut d = Directory::default();
        let mut out = Vec::new();
        d.login(5, loc(0, 1), 0, &mut out);
        assert!(out.is_empty());
        d.login(5, loc(1, 2), 0, &mut out);
        assert_eq!(out, vec![Action::Kick(loc(0, 1))]);
        // The old connection's logout must not take the new one offline.
        d.logout(5, loc(0, 1));
        assert_eq!(d.online(), 1);
        d.logout(5, loc(1, 2));
        assert_eq!(d.online(), 0);
    }

    #[test]
    fn offline_users_get_their_notes_at_login_unless_expired() {
        let mut d = Directory::default();
        let mut out = Vec::new();
        assert!(d.notify(5, note(1, 100), &mut out));
        assert!(d.notify(5, note(2, 10), &mut out));
        assert_eq!(d.pending(), 2);
        d.login(5, loc(0, 1), 50, &mut out);
        assert_eq!(out, vec![Action::Deliver(loc(0, 1), note(1, 100))]);
        assert_eq!(d.pending(), 0);
        out.clear();
        assert!(!d.notify(5, note(3, 100), &mut out));
        assert_eq!(out, vec![Action::Deliver(loc(0, 1), note(3, 100))]);
    }

    #[test]
    fn purge_drops_expired_notes() {
        let mut d = Directory::default();
        let mut out = Vec::new();
        d.notify(1, note(1, 10), &mut out);
        d.notify(2, note(2, 100), &mut out);
        d.purge(50);
        assert_eq!(d.pending(), 1);
    }

    #[test]
    fn kept_notes_come_out_in_order_and_slots_are_reused() {
        let mut d = Directory::default();
        let mut out = Vec::new();
        for p in 1..=5 {
            d.notify(7, note(p, if p == 3 { 10 } else { 100 }), &mut out);
            d.notify(8, note(100 + p, 100), &mut out);
        }
        d.purge(50);
        assert_eq!(d.pending(), 9);
        d.login(7, loc(0, 1), 50, &mut out);
        let got: Vec<u32> = out
            .iter()
            .map(|a| match a {
                Action::Deliver(_, n) => n.packet,
                Action::Kick(_) => 0,
            })
            .collect();
        assert_eq!(got, vec![1, 2, 4, 5]);
        assert_eq!(d.pending(), 5);
        // Freed slots are taken again before the slab grows.
        let len = d.kept.len();
        for p in 0..5 {
            d.notify(9, note(200 + p, 100), &mut out);
        }
        assert_eq!(d.kept.len(), len);
        out.clear();
        d.login(8, loc(0, 2), 50, &mut out);
        assert_eq!(out.len(), 5);
        assert_eq!(d.pending(), 5);
    }
}
