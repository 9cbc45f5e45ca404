//! One user's connection state: everything the engine keeps per user.
//!
//! Small on purpose (96 bytes, checked at compile time): a million users cost under
//! 100 MiB here. No heap buffer: a frame is at most 44 bytes, so a partial one waits in
//! the inline `rbuf`; the scheduled times of unanswered shakes sit in a 4-slot ring.

use redpacket_protocol::MAX_FRAME_LEN;
use std::os::fd::OwnedFd;

/// Shakes one user may have unanswered at once; a further one expires the oldest.
pub(crate) const PEND: usize = 4;

pub(crate) const DOWN: u8 = 0;
pub(crate) const CONNECTING: u8 = 1;
pub(crate) const LOGGING_IN: u8 = 2;
pub(crate) const READY: u8 = 3;

/// One user's connection: everything the engine keeps per user.
pub(crate) struct Conn {
    /// The user's socket while connecting or connected; dropping it closes it.
    pub(crate) fd: Option<OwnedFd>,
    pub(crate) state: u8,
    /// Failed attempts in a row (for backoff).
    pub(crate) attempts: u8,
    /// Ever logged in (first connects are always retried).
    pub(crate) ever: bool,
    pub(crate) rlen: u8,
    /// Answers still owed for shakes that already timed out.
    pub(crate) late: u8,
    pub(crate) npend: u8,
    pub(crate) phead: u8,
    pub(crate) grabs: u8,
    pub(crate) sends: u8,
    pub(crate) rbuf: [u8; MAX_FRAME_LEN],
    /// Scheduled send times (worker clock, ns) of unanswered shakes, a ring.
    pub(crate) pend: [u64; PEND],
    /// When the current connect or login started (worker clock, ns).
    pub(crate) since: u64,
}

impl Conn {
    pub(crate) fn new() -> Conn {
        Conn {
            fd: None,
            state: DOWN,
            attempts: 0,
            ever: false,
            rlen: 0,
            late: 0,
            npend: 0,
            phead: 0,
            grabs: 0,
            sends: 0,
            rbuf: [0; MAX_FRAME_LEN],
            pend: [0; PEND],
            since: 0,
        }
    }
    pub(crate) fn pop_pend(&mut self) -> Option<u64> {
        if self.npend == 0 {
            return None;
        }
        let t = self.pend[usize::from(self.phead)];
        self.phead = (self.phead + 1) % PEND as u8;
        self.npend -= 1;
        Some(t)
    }
    pub(crate) fn oldest_pend(&self) -> Option<u64> {
        (self.npend > 0).then(|| self.pend[usize::from(self.phead)])
    }
    pub(crate) fn push_pend(&mut self, t: u64) {
        let at = (usize::from(self.phead) + usize::from(self.npend)) % PEND;
        self.pend[at] = t;
        self.npend += 1;
    }
}

/// Bytes of engine state per user (the `Conn`), for the README's memory figures.
pub const CONN_BYTES: usize = std::mem::size_of::<Conn>();
// The per-user budget is 1 KiB in all; the engine's part must stay a small slice of it.
const _: () = assert!(CONN_BYTES <= 128);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_ring_is_fifo() {
        let mut c = Conn::new();
        for t in 1..=4 {
            c.push_pend(t);
        }
        assert_eq!(c.pop_pend(), Some(1));
        c.push_pend(5);
        assert_eq!(
            (1..=4).map(|_| c.pop_pend().unwrap()).collect::<Vec<_>>(),
            [2, 3, 4, 5]
        );
        assert_eq!(c.pop_pend(), None);
    }
}
