//! A SET: a group of a few thousand connections inside one worker, with their slots,
//! their share of shake packets and the answers they owe.
//!
//! This is the middle of the request path: socket ([`redpacket_sys::socket`]) -> frame
//! ([`redpacket_protocol::decode_stream`]) -> SET (here) -> answer ([`super::requests`]).
//! Every socket of every SET is in the worker's one epoll set, its event's data naming
//! the SET, the slot and the slot's generation ([`EventKeys`]); the worker hands each
//! event to its SET ([`Set::serve_event`]), which reads once, decodes every whole
//! frame, asks the [`Answer`] for the answers and writes them. No task and no buffer
//! per connection: a connection is a [`Slot`], and the read and answer buffers are the
//! SET's, reused. One epoll set, not one per SET watched by the worker's: each wake-up
//! then costs one `epoll_wait`, not the worker's plus a poll of each ready SET's
//! descriptor and a wait on each (about a tenth of a worker's CPU at a million users,
//! where every wake-up serves a request or two; bench/README.md).
//!
//! **Edge-triggered, with a list of the unfinished.** Each ready connection gets one
//! read of up to 4 KiB a round. A read shorter than asked drained the socket: the
//! kernel reports it again only when new bytes arrive. One that filled the buffer may
//! have more: it joins the SET's `again` list, and each later round reads the
//! connections of that list once each, oldest first, after the new events
//! ([`Set::serve_again`]), so a client that pipelines without pause cannot starve the
//! others (tested). Level-triggered epoll would keep such a connection in the kernel's
//! ready list instead, but it also puts back every connection it reports and polls
//! each again at the next wait: at a million users, where each socket is cold by the
//! time it is touched again, those polls were a tenth of a worker's CPU
//! (bench/README.md). A round reads at most [`BATCH`] unfinished connections of a SET;
//! while any is left, the worker turns again without sleeping, after its timers, its
//! messages and its new events.
//!
//! **Writes** go straight to the socket. Only when the kernel will not take an answer
//! does the slot get a write queue (bounded by `--write-queue`, counted with the kernel's
//! unsent bytes), and only then is the socket watched for EPOLLOUT; once the queue is
//! written the queue is freed and the socket is watched for input alone again.
//!
//! Slots are reused through a free list and stamped with a generation, so a stale
//! [`ConnKey`] held in a message (or in an event of the same round) can never reach the
//! connection that took the slot later.

use super::{ConnKey, ShakePacket};
use redpacket_formats::server::CloseReason;
use redpacket_protocol::{decode_stream, Frame, FrameError, Partial, MAX_FRAME_LEN};
use redpacket_sys::epoll::{self, Epoll};
use redpacket_sys::socket;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;

/// Unfinished connections of a SET read per round at most, before the worker turns to
/// its other work; also the events one wait of the worker takes at most.
pub const BATCH: usize = 256;
/// Bytes read per call: many pipelined frames at once.
const READ_BUF: usize = 4096;
/// Answers never exceed 28 bytes for a request of at least 16: room for every answer
/// to one full read plus a carried partial frame.
const OUT_BUF: usize = (READ_BUF + MAX_FRAME_LEN) / 16 * 28 + MAX_FRAME_LEN;
/// Bytes a connection may hand the kernel between two measures of what it has not sent:
/// the kernel may hold at most this much more than `--write-queue` before we notice.
const MEASURE_EVERY: u16 = 512;

/// What answers the frames a SET decodes: the request logic, which the SET does not
/// know (it lives in `requests`, which the SET does not import).
pub trait Answer {
    /// Answers one frame from the connection at `key`. `Ok(None)`: the answer comes
    /// later (a grab of a packet another worker owns). `Err`: the connection closes.
    fn answer(
        &mut self,
        key: ConnKey,
        conn: &mut Slot,
        shakes: &mut SetShakes,
        frame: Frame,
    ) -> Result<Option<Frame>, CloseReason>;
    /// A connection closed: count it, and tell its user's home worker if it was logged in.
    fn closed(&mut self, key: ConnKey, user: Option<u32>, reason: CloseReason);
    /// Unix seconds, the time in every frame sent.
    fn now_unix(&self) -> u64;
}

/// One connection: its socket and what the request logic keeps for it.
///
/// Idle, a slot holds no heap memory: `partial` is allocated only while a frame is cut
/// between two reads, `out` only while the client does not read, and both are freed as
/// soon as they are empty again. 40 bytes.
#[derive(Debug, Default)]
pub struct Slot {
    gen: u32,
    /// The connection's socket; `None` while the slot is free. Its only owner.
    fd: Option<OwnedFd>,
    /// The logged-in user, once the login frame arrived.
    pub user: Option<u32>,
    /// The send rate limit's "theoretical arrival time" (see `requests::SendRate`).
    pub send_tat: u32,
    /// Bytes handed to the kernel since its unsent bytes were last measured (SIOCOUTQNSD).
    unmeasured: u16,
    /// Shutting down: its input is no longer read; it closes once `out` is written.
    draining: bool,
    /// In the SET's `again` list: the last read filled the buffer, more may wait.
    again: bool,
    /// The start of a frame cut by the end of a read.
    partial: Option<Box<Partial>>,
    /// Answers the kernel would not take yet, oldest first (bounded by `--write-queue`).
    /// Boxed: a slot pays one pointer for it, not a whole `Vec`, while it is unused.
    #[allow(clippy::box_collection)]
    out: Option<Box<Vec<u8>>>,
}

/// A SET's shake packets (its share of the worker's pool) and the demand that decides
/// the next share.
#[derive(Debug, Default)]
pub struct SetShakes {
    pub pool: VecDeque<ShakePacket>,
    /// Shake requests seen since the last tick.
    pub demand: u64,
}

#[derive(Debug)]
pub struct Set {
    index: u32,
    /// The worker's epoll set, which holds every socket of every SET.
    epoll: Rc<Epoll>,
    keys: EventKeys,
    /// Slots at most.
    capacity: usize,
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
    /// Connections whose last read filled the buffer (their events' data), oldest
    /// first: read once each a round until a read comes up short.
    again: VecDeque<u64>,
    /// How many of `again` were there before this round's events: the ones the next
    /// [`Set::serve_again`] reads (the rest joined since and wait a round).
    earlier: usize,
    /// `--write-queue`.
    write_cap: usize,
    pub shakes: SetShakes,
    /// The read and answer buffers of a round, reused (not zeroed again) for every
    /// connection served.
    scratch: Option<Box<Scratch>>,
}

/// One read of bytes (after a carried partial frame) with the answers to it.
#[derive(Debug)]
struct Scratch {
    read: [u8; READ_BUF + MAX_FRAME_LEN],
    out: [u8; OUT_BUF],
}

impl Default for Scratch {
    fn default() -> Scratch {
        Scratch {
            read: [0; READ_BUF + MAX_FRAME_LEN],
            out: [0; OUT_BUF],
        }
    }
}

/// What a connection's events carry, the same for every SET of a worker: the slot's
/// generation in the high 32 bits; below it the SET's number, then the slot in as many
/// bits as `--set-size` needs (at most 20). The two keys the worker gives its listener
/// and its inbox's bell (all ones in the low 32 bits, and all ones but the last) are
/// never a connection's: the last two SET numbers are never used
/// ([`EventKeys::max_sets`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventKeys {
    slot_bits: u32,
}

impl EventKeys {
    /// For SETs of `set_size` slots (1..=1 << 20).
    pub fn new(set_size: usize) -> EventKeys {
        let slot_bits = usize::BITS - set_size.saturating_sub(1).leading_zeros();
        assert!(
            slot_bits <= 20,
            "--set-size is checked to be at most 1 << 20"
        );
        EventKeys { slot_bits }
    }

    /// SETs a worker may make: all the numbers the bits left hold but the last two.
    pub fn max_sets(self) -> usize {
        ((1u64 << (32 - self.slot_bits)) - 2) as usize
    }

    /// An event's data for a connection.
    pub fn data(self, key: ConnKey) -> u64 {
        u64::from(key.gen) << 32 | u64::from(key.set) << self.slot_bits | u64::from(key.slot)
    }

    /// The connection an event's data names.
    pub fn key_of(self, d: u64) -> ConnKey {
        let low = d as u32;
        ConnKey {
            set: ((low as u64) >> self.slot_bits) as u32,
            slot: low & ((1u32 << self.slot_bits) - 1),
            gen: (d >> 32) as u32,
        }
    }
}

fn close_reason(e: FrameError) -> CloseReason {
    match e {
        FrameError::BadLength { .. } => CloseReason::BadLength,
        FrameError::UnknownCommand { .. } => CloseReason::UnknownCommand,
        FrameError::LengthMismatch { .. } => CloseReason::LengthMismatch,
    }
}

impl Set {
    /// A new, empty SET numbered `index` (below `keys.max_sets()`) of up to
    /// `capacity` connections, its sockets watched by `epoll` (the worker's) with
    /// `keys`' data.
    pub fn new(
        index: u32,
        epoll: Rc<Epoll>,
        keys: EventKeys,
        capacity: usize,
        write_cap: usize,
    ) -> Set {
        debug_assert!((index as usize) < keys.max_sets());
        Set {
            index,
            epoll,
            keys,
            capacity,
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            again: VecDeque::new(),
            earlier: 0,
            write_cap,
            shakes: SetShakes::default(),
            scratch: Some(Box::default()),
        }
    }

    pub fn live(&self) -> usize {
        self.live
    }

    /// Takes in a connection; `Err(Some(fd))` when the SET is full (the socket is
    /// handed back), `Err(None)` when epoll refuses it (the socket is closed).
    pub fn insert(&mut self, fd: OwnedFd) -> Result<ConnKey, Option<OwnedFd>> {
        let slot = match self.free.pop() {
            Some(s) => s,
            None if self.slots.len() < self.capacity => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
            None => return Err(Some(fd)),
        };
        let s = &mut self.slots[slot as usize];
        let gen = s.gen.wrapping_add(1);
        let key = ConnKey {
            set: self.index,
            slot,
            gen,
        };
        if self
            .epoll
            .add(fd.as_fd(), epoll::WANT_READ, self.keys.data(key))
            .is_err()
        {
            self.free.push(slot);
            return Err(None);
        }
        *s = Slot {
            gen,
            fd: Some(fd),
            ..Slot::default()
        };
        self.live += 1;
        Ok(key)
    }

    pub fn get_mut(&mut self, key: ConnKey) -> Option<&mut Slot> {
        slot_mut(&mut self.slots, key)
    }

    /// Closes a connection (a reset for a slow reader) and frees its slot; tells `a`.
    pub fn close(&mut self, key: ConnKey, reason: CloseReason, a: &mut impl Answer) {
        let Some(s) = self.get_mut(key) else {
            return;
        };
        let Some(fd) = s.fd.take() else {
            return;
        };
        if reason == CloseReason::SlowReader {
            socket::reset_on_close(&fd);
        }
        // Closing the only descriptor of the socket also takes it out of the epoll set.
        drop(fd);
        let user = s.user.take();
        s.out = None;
        s.partial = None;
        s.draining = false;
        self.live -= 1;
        self.free.push(key.slot);
        a.closed(key, user, reason);
    }

    /// Serves one event of a connection of this SET, `key` decoded from its data by
    /// the worker: writes what waits if the socket can take it, reads if it has input
    /// (unless it is in `again`, which reads it in its turn).
    pub fn serve_event(&mut self, key: ConnKey, bits: u32, a: &mut impl Answer) {
        let Some(s) = self.get_mut(key) else {
            return; // closed earlier in this round
        };
        if s.out.is_some() && epoll::writable(bits) {
            match self.flush(key) {
                Ok(true) if self.get_mut(key).is_some_and(|s| s.draining) => {
                    self.close(key, CloseReason::Shutdown, a);
                    return;
                }
                Ok(_) => {}
                Err(r) => {
                    self.close(key, r, a);
                    return;
                }
            }
        }
        let skip = self.get_mut(key).is_none_or(|s| s.draining || s.again);
        if skip || !epoll::readable(bits) {
            return;
        }
        let mut sc = self.scratch.take().unwrap_or_default();
        self.read_fairly(key, a, &mut sc);
        self.scratch = Some(sc);
    }

    /// Whether connections wait in `again` for a round of their own.
    pub fn unfinished(&self) -> bool {
        !self.again.is_empty()
    }

    /// The round of the unfinished: reads once each connection that was in `again`
    /// before this round's events (at most [`BATCH`], oldest first); true when none is
    /// left for the next round.
    pub fn serve_again(&mut self, a: &mut impl Answer) -> bool {
        let mut sc = self.scratch.take().unwrap_or_default();
        for _ in 0..self.earlier.min(BATCH) {
            let Some(d) = self.again.pop_front() else {
                break;
            };
            let key = self.keys.key_of(d);
            match self.get_mut(key) {
                Some(s) if !s.draining => s.again = false,
                _ => continue, // closed, or shutting down: nothing more is read
            }
            self.read_fairly(key, a, &mut sc);
        }
        self.scratch = Some(sc);
        self.earlier = self.again.len();
        self.again.is_empty()
    }

    /// One read and its answers; a connection left with more to read joins `again`,
    /// one that failed is closed.
    fn read_fairly(&mut self, key: ConnKey, a: &mut impl Answer, sc: &mut Scratch) {
        match self.read_and_answer_in(key, a, sc) {
            Ok(true) => {}
            Ok(false) => {
                let d = self.keys.data(key);
                if let Some(s) = self.get_mut(key) {
                    s.again = true;
                    self.again.push_back(d);
                }
            }
            Err(r) => self.close(key, r, a),
        }
    }

    /// Reads once and answers every whole frame read. `Ok(true)` when the socket is
    /// drained (a short read): the edge-triggered epoll reports it when more comes;
    /// `Ok(false)` when more may wait (a full read, or a read interrupted by a signal).
    fn read_and_answer(&mut self, key: ConnKey, a: &mut impl Answer) -> Result<bool, CloseReason> {
        let mut sc = self.scratch.take().unwrap_or_default();
        let r = self.read_and_answer_in(key, a, &mut sc);
        self.scratch = Some(sc);
        r
    }

    fn read_and_answer_in(
        &mut self,
        key: ConnKey,
        a: &mut impl Answer,
        sc: &mut Scratch,
    ) -> Result<bool, CloseReason> {
        let Scratch { read: buf, out, .. } = sc;
        let mut o = 0;
        let mut close = None;
        let now = a.now_unix();
        let drained = {
            let Set { slots, shakes, .. } = self;
            let Some(slot) = slots.get_mut(key.slot as usize) else {
                return Ok(true);
            };
            let mut partial = slot.partial.take().map(|b| *b).unwrap_or_default();
            let carried = partial.restore(&mut buf[..]);
            let got = match &slot.fd {
                Some(fd) => socket::read(fd, &mut buf[carried..]),
                None => return Ok(true),
            };
            let n = match got {
                Ok(0) if carried == 0 => return Err(CloseReason::ClientClosed),
                Ok(0) => return Err(CloseReason::Reset),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    slot.partial = (!partial.is_empty()).then(|| Box::new(partial));
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    slot.partial = (!partial.is_empty()).then(|| Box::new(partial));
                    return Ok(false);
                }
                Err(_) => return Err(CloseReason::Reset),
            };
            let total = carried + n;
            let decoded = decode_stream(&buf[..total], &mut partial, |d| {
                match a.answer(key, slot, shakes, d.frame) {
                    Ok(Some(answer)) => {
                        let e = answer.encode(now);
                        let b = e.as_bytes();
                        out[o..o + b.len()].copy_from_slice(b);
                        o += b.len();
                        true
                    }
                    Ok(None) => true,
                    Err(r) => {
                        close = Some(r);
                        false
                    }
                }
            });
            if let Err(e) = decoded {
                close = Some(close_reason(e));
            }
            if close.is_none() && !partial.is_empty() {
                slot.partial = Some(Box::new(partial));
            }
            total < buf.len()
        };
        if o > 0 {
            if let Err(r) = self.send_or_queue(key, &out[..o]) {
                // Answers first; a bad frame after them still closes the connection.
                return Err(close.unwrap_or(r));
            }
        }
        match close {
            Some(r) => Err(r),
            None => Ok(drained),
        }
    }

    /// Writes frames to a connection (closing it if it lags past `--write-queue`).
    pub fn write(&mut self, key: ConnKey, bytes: &[u8], a: &mut impl Answer) {
        if let Err(r) = self.send_or_queue(key, bytes) {
            self.close(key, r, a);
        }
    }

    /// Straight to the socket when nothing is queued, else behind what is. A client
    /// that leaves more than `--write-queue` bytes waiting, counted in our queue and in
    /// the kernel's send queue (not yet sent) together, is a slow reader: what the
    /// kernel holds for a client that does not read is bounded too, whatever the
    /// socket's buffer size.
    fn send_or_queue(&mut self, key: ConnKey, bytes: &[u8]) -> Result<(), CloseReason> {
        let (cap, epoll, d) = (self.write_cap, &self.epoll, self.keys.data(key));
        let Some(slot) = slot_mut(&mut self.slots, key) else {
            return Ok(());
        };
        let Some(fd) = &slot.fd else {
            return Ok(());
        };
        let mut rest = bytes;
        if slot.out.is_none() {
            match socket::send(fd, bytes) {
                Ok(n) => {
                    rest = &bytes[n..];
                    slot.unmeasured = slot
                        .unmeasured
                        .saturating_add(n.min(usize::from(u16::MAX)) as u16);
                    if rest.is_empty() {
                        // The kernel took it all: measure its queue every few frames.
                        if slot.unmeasured >= MEASURE_EVERY && unread_in_kernel(slot) > cap {
                            return Err(CloseReason::SlowReader);
                        }
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return Err(CloseReason::Reset),
            }
        }
        // The kernel's buffer is full: what waits here adds to what waits there.
        let queued = slot.out.as_ref().map_or(0, |o| o.len());
        if queued + rest.len() + unread_in_kernel(slot) > cap {
            return Err(CloseReason::SlowReader);
        }
        let started = slot.out.is_none();
        slot.out
            .get_or_insert_with(Default::default)
            .extend_from_slice(rest);
        if started {
            // It lags: be woken when it can take more.
            let want = if slot.draining {
                epoll::WANT_WRITE_ONLY
            } else {
                epoll::WANT_WRITE
            };
            if let Some(fd) = &slot.fd {
                if epoll.modify(fd.as_fd(), want, d).is_err() {
                    return Err(CloseReason::Reset);
                }
            }
        }
        Ok(())
    }

    /// Writes what a connection has queued; true when the queue is empty (and then the
    /// socket is watched for input alone again).
    fn flush(&mut self, key: ConnKey) -> Result<bool, CloseReason> {
        let (epoll, d) = (&self.epoll, self.keys.data(key));
        let Some(slot) = slot_mut(&mut self.slots, key) else {
            return Ok(true);
        };
        let (Some(fd), Some(out)) = (&slot.fd, slot.out.as_mut()) else {
            return Ok(true);
        };
        while !out.is_empty() {
            match socket::send(fd, out) {
                Ok(n) => {
                    out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(_) => return Err(CloseReason::Reset),
            }
        }
        // Drained: give the memory back, an idle connection holds no buffer.
        slot.out = None;
        slot.unmeasured = 0;
        if !slot.draining && epoll.modify(fd.as_fd(), epoll::WANT_READ, d).is_err() {
            return Err(CloseReason::Reset);
        }
        Ok(true)
    }

    /// Shutdown: answers what each connection already sent (one read), then closes the
    /// ones with nothing left to write; the others close once their answers are written
    /// (their input is no longer read) or when the grace period ends.
    pub fn shutdown(&mut self, a: &mut impl Answer) {
        for key in self.live_keys() {
            if let Err(r) = self.read_and_answer(key, a) {
                if self.get_mut(key).is_some_and(|s| s.out.is_none()) {
                    self.close(key, r, a);
                    continue;
                }
            }
            let (epoll, d) = (&self.epoll, self.keys.data(key));
            let Some(s) = slot_mut(&mut self.slots, key) else {
                continue;
            };
            s.draining = true;
            if s.out.is_none() {
                self.close(key, CloseReason::Shutdown, a);
            } else if let Some(fd) = &s.fd {
                let _ = epoll.modify(fd.as_fd(), epoll::WANT_WRITE_ONLY, d);
            }
        }
    }

    /// Keys of every live connection in this SET.
    pub fn live_keys(&self) -> Vec<ConnKey> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.fd.is_some())
            .map(|(i, s)| ConnKey {
                set: self.index,
                slot: i as u32,
                gen: s.gen,
            })
            .collect()
    }
}

/// The live slot `key` names (a stale key, of a slot since reused, names none). A free
/// function, so the SET's handle to the worker's epoll can be used while the slot is
/// borrowed.
fn slot_mut(slots: &mut [Slot], key: ConnKey) -> Option<&mut Slot> {
    slots
        .get_mut(key.slot as usize)
        .filter(|s| s.fd.is_some() && s.gen == key.gen)
}

/// Bytes the kernel holds for a connection and has not sent yet, measured now; resets
/// the count of unmeasured bytes.
fn unread_in_kernel(slot: &mut Slot) -> usize {
    slot.unmeasured = 0;
    slot.fd
        .as_ref()
        .and_then(|fd| socket::unsent(fd).ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redpacket_sys::epoll::NO_EVENT;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    /// A SET alone in an epoll set of its own, as the first SET of a worker.
    fn set_of(capacity: usize, write_cap: usize) -> Set {
        let epoll = Rc::new(Epoll::new().unwrap());
        Set::new(0, epoll, EventKeys::new(capacity), capacity, write_cap)
    }

    /// What a worker's turn does for this SET: its ready events, then its unfinished;
    /// true when it left nothing ready.
    fn round(s: &mut Set, a: &mut impl Answer) -> bool {
        let mut evs = [NO_EVENT; BATCH];
        let n = s.epoll.wait(&mut evs, Duration::ZERO).unwrap();
        for ev in &evs[..n] {
            let key = s.keys.key_of(epoll::key(ev));
            assert_eq!(key.set, s.index);
            s.serve_event(key, epoll::bits(ev), a);
        }
        s.serve_again(a) && n < BATCH
    }

    #[test]
    fn event_keys_name_set_slot_and_generation_and_never_the_workers_own() {
        for size in [1, 2, 3, 4096, 10_000, 1 << 20] {
            let keys = EventKeys::new(size);
            let last = ConnKey {
                set: (keys.max_sets() - 1) as u32,
                slot: (size - 1) as u32,
                gen: u32::MAX,
            };
            for key in [
                ConnKey {
                    set: 0,
                    slot: 0,
                    gen: 1,
                },
                last,
            ] {
                assert_eq!(keys.key_of(keys.data(key)), key, "size {size}");
            }
            // The worker's listener and bell: u64::MAX and u64::MAX - 1.
            for own in [u64::MAX, u64::MAX - 1] {
                assert!(
                    keys.key_of(own).set as usize >= keys.max_sets(),
                    "size {size}"
                );
            }
        }
        assert_eq!(EventKeys::new(4096).max_sets(), (1 << 20) - 2);
    }

    /// Answers a login with ok, every other frame with nothing, and remembers closes.
    #[derive(Default)]
    struct Echo {
        closed: Vec<(ConnKey, Option<u32>, CloseReason)>,
        frames: usize,
    }

    impl Answer for Echo {
        fn answer(
            &mut self,
            _key: ConnKey,
            conn: &mut Slot,
            _shakes: &mut SetShakes,
            frame: Frame,
        ) -> Result<Option<Frame>, CloseReason> {
            self.frames += 1;
            match frame {
                Frame::LoginRequest { user } => {
                    conn.user = Some(user);
                    Ok(Some(Frame::LoginResponse { user, result: 0 }))
                }
                _ => Ok(None),
            }
        }
        fn closed(&mut self, key: ConnKey, user: Option<u32>, reason: CloseReason) {
            self.closed.push((key, user, reason));
        }
        fn now_unix(&self) -> u64 {
            1
        }
    }

    fn pair(l: &TcpListener) -> (TcpStream, OwnedFd) {
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        s.set_nonblocking(true).unwrap();
        (c, OwnedFd::from(s))
    }

    #[test]
    fn a_slot_stays_small() {
        // Per idle user: bench/README.md's memory figure counts this slot.
        assert!(
            std::mem::size_of::<Slot>() <= 40,
            "{}",
            std::mem::size_of::<Slot>()
        );
    }

    #[test]
    fn slots_are_reused_and_stale_keys_miss() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut s = set_of(2, 4096);
        let mut a = Echo::default();
        let (_c1, f1) = pair(&l);
        let (_c2, f2) = pair(&l);
        let (_c3, f3) = pair(&l);
        let k1 = s.insert(f1).unwrap();
        let k2 = s.insert(f2).unwrap();
        assert!(matches!(s.insert(f3), Err(Some(_))), "full: handed back");
        assert_eq!(s.live(), 2);
        s.get_mut(k1).unwrap().user = Some(7);
        s.close(k1, CloseReason::Replaced, &mut a);
        s.close(k1, CloseReason::Replaced, &mut a);
        assert_eq!(a.closed, vec![(k1, Some(7), CloseReason::Replaced)], "once");
        let (_c4, f4) = pair(&l);
        let k4 = s.insert(f4).unwrap();
        assert_eq!(k4.slot, k1.slot);
        assert!(s.get_mut(k1).is_none(), "old generation no longer matches");
        assert!(s.get_mut(k4).is_some() && s.get_mut(k2).is_some());
    }

    #[test]
    fn a_round_reads_decodes_answers_and_closes_bad_input_alone() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut s = set_of(16, 4096);
        let mut a = Echo::default();
        let (mut good, f1) = pair(&l);
        let (mut bad, f2) = pair(&l);
        let kg = s.insert(f1).unwrap();
        let kb = s.insert(f2).unwrap();
        assert!(round(&mut s, &mut a), "nothing ready");
        // A login cut in two reads, and a bad length on the other connection.
        let login = Frame::LoginRequest { user: 42 }.encode(1);
        good.write_all(&login.as_bytes()[..5]).unwrap();
        bad.write_all(&[0, 3, 0, 0]).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(round(&mut s, &mut a));
        assert_eq!(a.closed, vec![(kb, None, CloseReason::BadLength)]);
        assert!(
            s.get_mut(kg).unwrap().partial.is_some(),
            "half a frame carried"
        );
        good.write_all(&login.as_bytes()[5..]).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(round(&mut s, &mut a));
        let slot = s.get_mut(kg).unwrap();
        assert_eq!(slot.user, Some(42));
        assert!(slot.partial.is_none(), "freed once whole");
        let mut answer = [0u8; 20];
        good.read_exact(&mut answer).unwrap();
        let d = redpacket_protocol::decode(&answer).unwrap().unwrap();
        assert_eq!(
            d.frame,
            Frame::LoginResponse {
                user: 42,
                result: 0
            }
        );
        // The client closes: counted as its own close.
        drop(good);
        std::thread::sleep(Duration::from_millis(20));
        assert!(round(&mut s, &mut a));
        assert_eq!(a.closed[1], (kg, Some(42), CloseReason::ClientClosed));
        assert_eq!(s.live(), 0);
    }

    #[test]
    fn one_busy_connection_does_not_starve_the_others() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut s = set_of(16, 1 << 20);
        let mut a = Echo::default();
        let (mut busy, f1) = pair(&l);
        let (mut quiet, f2) = pair(&l);
        s.insert(f1).unwrap();
        s.insert(f2).unwrap();
        // 64 KiB of shakes from one client, one shake from the other.
        let shake = Frame::ShakeRequest { user: 0 }.encode(1);
        let many: Vec<u8> = (0..4096).flat_map(|_| shake.as_bytes().to_vec()).collect();
        busy.write_all(&many).unwrap();
        quiet.write_all(shake.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        // One round: one read each, the quiet one served, the busy one left ready.
        assert!(!round(&mut s, &mut a), "the busy socket is still ready");
        assert_eq!(a.frames, (READ_BUF + MAX_FRAME_LEN) / 16 + 1);
        let mut rounds = 1;
        while !round(&mut s, &mut a) {
            rounds += 1;
        }
        assert_eq!(a.frames, 4097);
        assert!(
            rounds >= many.len() / (READ_BUF + MAX_FRAME_LEN),
            "{rounds}"
        );
    }

    #[test]
    fn an_unfinished_connection_is_read_once_a_round_new_bytes_or_not() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut s = set_of(16, 1 << 20);
        let mut a = Echo::default();
        let (mut one, f1) = pair(&l);
        let (mut two, f2) = pair(&l);
        let k1 = s.insert(f1).unwrap();
        s.insert(f2).unwrap();
        let shake = Frame::ShakeRequest { user: 0 }.encode(1);
        let many: Vec<u8> = (0..2048).flat_map(|_| shake.as_bytes().to_vec()).collect();
        one.write_all(&many).unwrap();
        two.write_all(&many).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let per_read = (READ_BUF + MAX_FRAME_LEN) / 16;
        assert!(!round(&mut s, &mut a));
        assert_eq!(a.frames, 2 * per_read, "one read each");
        assert!(s.get_mut(k1).unwrap().again, "left unfinished");
        // More bytes for one while it waits: an edge, but still one read a round.
        // (Sent at once: Nagle would hold them until the server acknowledges.)
        one.set_nodelay(true).unwrap();
        one.write_all(shake.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(!round(&mut s, &mut a));
        assert_eq!(a.frames, 4 * per_read, "one read each again, none twice");
        assert_eq!(s.again.len(), 2, "each listed once");
        // No new byte arrives, yet the rest is read: the list, not an edge, brings it.
        while !round(&mut s, &mut a) {}
        assert_eq!(a.frames, 2 * 2048 + 1);
        assert!(s.again.is_empty() && !s.get_mut(k1).unwrap().again);
    }

    #[test]
    fn a_lagging_client_is_watched_for_output_only_while_it_lags() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut s = set_of(16, 1 << 20);
        let mut a = Echo::default();
        let (mut c, f) = pair(&l);
        socket2::SockRef::from(&f)
            .set_send_buffer_size(4096)
            .unwrap();
        let k = s.insert(f).unwrap();
        let chunk = [9u8; 1024];
        for _ in 0..512 {
            s.write(k, &chunk, &mut a);
        }
        assert!(
            s.get_mut(k).unwrap().out.is_some(),
            "the kernel is full: queued"
        );
        assert!(a.closed.is_empty());
        // Nothing read yet: the round finds the socket neither readable nor writable.
        assert!(round(&mut s, &mut a));
        let mut got = 0;
        let mut buf = vec![0u8; 64 * 1024];
        while got < 512 * 1024 {
            got += c.read(&mut buf).unwrap();
            round(&mut s, &mut a);
        }
        assert!(s.get_mut(k).unwrap().out.is_none(), "written and freed");
        let mut evs = [NO_EVENT; 4];
        assert_eq!(
            s.epoll.wait(&mut evs, Duration::ZERO).unwrap(),
            0,
            "no EPOLLOUT"
        );
    }

    #[test]
    fn a_slow_reader_past_the_cap_is_reset() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut s = set_of(16, 4096);
        let mut a = Echo::default();
        let (_c, f) = pair(&l);
        let k = s.insert(f).unwrap();
        let chunk = [9u8; 1024];
        for _ in 0..4096 {
            s.write(k, &chunk, &mut a);
            if !a.closed.is_empty() {
                break;
            }
        }
        assert_eq!(a.closed, vec![(k, None, CloseReason::SlowReader)]);
    }
}
