//! A worker's inbox: the messages other threads send it, and a bell that wakes it from
//! its epoll wait only when it sleeps there.
//!
//! The queue is tokio's unbounded channel, used without a runtime (`send`, `try_recv`,
//! `close`): the worker closes it at shutdown before taking its last messages, so a
//! packet granted then is either taken in or handed back to its sender, never lost.
//! The bell is an eventfd in the worker's epoll set. A sender rings it only when the
//! worker said it is about to sleep, and only the first sender does: a busy worker is
//! never woken, and no system call is made, for each message.

use super::Msg;
use redpacket_sys::wake::Waker;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{fence, AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use tokio::sync::mpsc;

/// The sending side, one per worker, shared by every thread (in `WorkerState`).
#[derive(Debug)]
pub struct Inbox {
    tx: mpsc::UnboundedSender<Msg>,
    bell: Arc<Bell>,
}

/// The receiving side, owned by the worker's thread.
#[derive(Debug)]
pub struct Mailbox {
    rx: mpsc::UnboundedReceiver<Msg>,
    bell: Arc<Bell>,
    /// False from a sleep that found the inbox empty until a ring or the next take: a
    /// message since then came with a ring, or to an awake worker after its wait.
    may_hold: bool,
}

#[derive(Debug)]
struct Bell {
    waker: Waker,
    /// The worker is in (or about to enter) its epoll wait: the next sender rings.
    asleep: AtomicBool,
}

/// A new inbox and the mailbox its messages arrive in.
pub fn inbox() -> io::Result<(Inbox, Mailbox)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let bell = Arc::new(Bell {
        waker: Waker::new()?,
        asleep: AtomicBool::new(false),
    });
    Ok((
        Inbox {
            tx,
            bell: bell.clone(),
        },
        Mailbox {
            rx,
            bell,
            may_hold: true,
        },
    ))
}

impl Inbox {
    /// Queues a message, waking the worker if it sleeps; the message comes back when
    /// the worker has stopped taking messages (shutdown).
    pub fn send(&self, msg: Msg) -> Result<(), mpsc::error::SendError<Msg>> {
        self.tx.send(msg)?;
        // Pairs with the fence in `Mailbox::sleep`: either the worker sees this message
        // before it sleeps, or this sees that it sleeps.
        fence(SeqCst);
        if self.bell.asleep.swap(false, SeqCst) {
            self.bell.waker.wake();
        }
        Ok(())
    }

    /// Wakes the worker whatever it is doing (to notice shutdown).
    pub fn ring(&self) {
        self.bell.waker.wake();
    }
}

impl Mailbox {
    /// The bell's descriptor, for the worker's epoll set.
    pub fn bell(&self) -> BorrowedFd<'_> {
        self.bell.waker.as_fd()
    }

    /// The bell rang: takes its rings (its descriptor is no longer readable).
    pub fn rang(&mut self) {
        self.bell.waker.take();
        self.may_hold = true;
    }

    /// Moves up to `max` waiting messages into `batch`; how many. The first take after
    /// a sleep that found the inbox empty, with no ring since, looks at nothing (a poll
    /// of the queue a wake-up saved): what was sent after that wait went to an awake
    /// worker, is taken by the next take, and keeps the worker from sleeping meanwhile
    /// ([`Mailbox::sleep`] looks again).
    pub fn take(&mut self, batch: &mut Vec<Msg>, max: usize) -> usize {
        if !std::mem::replace(&mut self.may_hold, true) {
            return 0;
        }
        let mut n = 0;
        while n < max {
            match self.rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
            n += 1;
        }
        n
    }

    /// The worker is about to sleep in its epoll wait: from now the next sender rings.
    /// False (and it must not sleep) when a message came in first.
    pub fn sleep(&mut self) -> bool {
        self.bell.asleep.store(true, SeqCst);
        fence(SeqCst);
        if self.rx.is_empty() {
            self.may_hold = false;
            return true;
        }
        self.bell.asleep.store(false, SeqCst);
        false
    }

    /// The worker is up again: senders need not ring.
    pub fn awake(&self) {
        self.bell.asleep.store(false, SeqCst);
    }

    /// Stops the inbox (a send now fails and hands its message back) and takes what
    /// was sent before.
    pub fn close(&mut self, batch: &mut Vec<Msg>) {
        self.rx.close();
        while let Ok(m) = self.rx.try_recv() {
            batch.push(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redpacket_sys::epoll::{Epoll, NO_EVENT, WANT_READ};
    use std::time::Duration;

    fn kick() -> Msg {
        Msg::Kick {
            at: super::super::ConnKey {
                set: 0,
                slot: 0,
                gen: 0,
            },
        }
    }

    #[test]
    fn a_sender_rings_only_a_sleeping_worker_and_only_once() {
        let (tx, mut rx) = inbox().unwrap();
        let ep = Epoll::new().unwrap();
        ep.add(rx.bell(), WANT_READ, 1).unwrap();
        let mut ev = [NO_EVENT; 4];
        // Awake: messages queue, the bell stays silent.
        tx.send(kick()).unwrap();
        assert_eq!(ep.wait(&mut ev, Duration::ZERO).unwrap(), 0);
        assert!(!rx.sleep(), "a message waits: no sleeping");
        let mut batch = Vec::new();
        assert_eq!(rx.take(&mut batch, 8), 1);
        // Asleep: the first send rings, the next does not ring again.
        assert!(rx.sleep());
        tx.send(kick()).unwrap();
        assert_eq!(ep.wait(&mut ev, Duration::from_secs(5)).unwrap(), 1);
        rx.rang();
        tx.send(kick()).unwrap();
        assert_eq!(ep.wait(&mut ev, Duration::ZERO).unwrap(), 0, "rung once");
        rx.awake();
        assert_eq!(rx.take(&mut batch, 8), 2);
    }

    #[test]
    fn after_a_sleep_with_no_ring_a_take_skips_once_and_the_next_sleep_is_refused() {
        let (tx, mut rx) = inbox().unwrap();
        let mut batch = Vec::new();
        assert!(rx.sleep());
        rx.awake();
        // Sent to the awake worker after its wait: no ring.
        tx.send(kick()).unwrap();
        assert_eq!(
            rx.take(&mut batch, 8),
            0,
            "the poll a sleep with no ring saves"
        );
        assert!(!rx.sleep(), "the message keeps the worker up");
        assert_eq!(rx.take(&mut batch, 8), 1);
        assert_eq!(batch.len(), 1);
    }

    #[test]
    fn a_closed_inbox_hands_a_message_back_and_keeps_what_came_before() {
        let (tx, mut rx) = inbox().unwrap();
        tx.send(kick()).unwrap();
        let mut batch = Vec::new();
        rx.close(&mut batch);
        assert_eq!(batch.len(), 1);
        assert!(matches!(tx.send(kick()), Err(e) if matches!(e.0, Msg::Kick { .. })));
    }
}
