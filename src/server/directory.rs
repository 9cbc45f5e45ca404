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

#[derive(Debug, Default)]
pub struct Directory {
    online: HashMap<u32, Loc>,
    /// Notifications for users who were offline, delivered at their next login.
    pending: HashMap<u32, Vec<Note>>,
    pending_count: usize,
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
        if let Some(notes) = self.pending.remove(&user) {
            self.pending_count -= notes.len();
            out.extend(
                notes
                    .into_iter()
                    .filter(|n| n.expires > now_unix)
                    .map(|n| Action::Deliver(at, n)),
            );
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
        match self.online.get(&user) {
            Some(&at) => {
                out.push(Action::Deliver(at, note));
                false
            }
            None => {
                self.pending.entry(user).or_default().push(note);
                self.pending_count += 1;
                true
            }
        }
    }

    /// Drops kept notifications whose packet has expired (their grabs would get 0).
    pub fn purge(&mut self, now_unix: u64) {
        let mut dropped = 0;
        self.pending.retain(|_, notes| {
            let before = notes.len();
            notes.retain(|n| n.expires > now_unix);
            dropped += before - notes.len();
            !notes.is_empty()
        });
        self.pending_count -= dropped;
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
}
