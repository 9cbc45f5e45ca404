//! One worker: a pinned thread with its own single-threaded runtime and listener.
//!
//! All state of a worker lives in one [`Worker`] behind an `Rc<RefCell<..>>`: the thread
//! runs one task at a time, so a borrow is never contended, and no borrow is held across
//! an `.await`. Other threads reach the worker only through its inbox.

use super::directory::{Action, Directory};
use super::sends::{Grab, Sends};
use super::set::{SendRate, Set, Slot};
use super::spare::Refusal;
use super::{ConnKey, Held, Loc, Msg, Note, ShakePacket, Shared, WorkerShared};
use crate::apportion::apportion;
use crate::protocol::{result, Frame, MAX_RECIPIENTS};
use crate::stats::{CloseReason, Counters};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How often a worker refills its budget, hands packets to SETs, enforces login
/// deadlines and expires packets.
pub const TICK: Duration = Duration::from_millis(10);
/// Grabs this worker may have waiting on other workers; past it a grab is answered 0.
const MAX_REMOTE_GRABS: usize = 65_536;
/// The overload budget may bank this much time's worth of answers (a burst allowance).
const BUDGET_BURST: f64 = 0.1;

pub type WorkerRef = Rc<RefCell<Worker>>;

pub struct Worker {
    pub index: usize,
    shared: Arc<Shared>,
    sets: Vec<Set>,
    /// A SET likely to have room: new connections go there first.
    fill: usize,
    pub open: usize,
    directory: Directory,
    sends: Sends,
    /// Shake packets granted to this worker and not yet handed to a SET.
    pool: VecDeque<ShakePacket>,
    tokens: f64,
    /// Connections not yet logged in, by deadline (milliseconds since `epoch`).
    deadlines: VecDeque<(u32, ConnKey)>,
    epoch: Instant,
    rng: SmallRng,
    /// Unix seconds, refreshed each tick: the time in every frame we send.
    pub now_unix: u64,
    remote_grabs: usize,
    actions: Vec<Action>,
    scratch: (Vec<u64>, Vec<u64>, Vec<u64>),
    last_purge: Instant,
    send_rate: SendRate,
}

impl Worker {
    fn new(index: usize, shared: Arc<Shared>) -> Worker {
        let n = shared.workers.len();
        let cfg = &shared.cfg;
        let sends = Sends::new(index, n, cfg.send_ttl);
        // Start with a full burst allowance, so the first requests are not shed.
        let tokens = shared.workers[index].budget.load(Relaxed) as f64 * BUDGET_BURST;
        Worker {
            index,
            sets: Vec::new(),
            fill: 0,
            open: 0,
            directory: Directory::default(),
            sends,
            pool: VecDeque::new(),
            tokens,
            deadlines: VecDeque::new(),
            epoch: Instant::now(),
            rng: SmallRng::from_os_rng(),
            now_unix: crate::protocol::unix_now(),
            remote_grabs: 0,
            actions: Vec::new(),
            scratch: Default::default(),
            last_purge: Instant::now(),
            send_rate: SendRate::new(cfg.send_rate),
            shared,
        }
    }

    fn me(&self) -> &WorkerShared {
        &self.shared.workers[self.index]
    }

    pub fn counters(&self) -> &Counters {
        &self.me().counters
    }

    fn workers(&self) -> usize {
        self.shared.workers.len()
    }

    /// Sends a message to a worker; false if that worker has stopped.
    fn post(&self, worker: usize, msg: Msg) -> bool {
        self.shared.workers[worker].inbox.send(msg).is_ok()
    }

    fn here(&self, conn: ConnKey) -> Loc {
        Loc {
            worker: self.index as u16,
            conn,
        }
    }

    pub fn slot_mut(&mut self, key: ConnKey) -> Option<&mut Slot> {
        self.sets.get_mut(key.set as usize)?.get_mut(key)
    }

    /// Places a new connection in a SET with room (a new SET when all are full).
    fn add_conn(&mut self, fd: RawFd) -> ConnKey {
        let size = self.shared.cfg.set_size;
        let n = self.sets.len();
        for i in (0..n).map(|k| (self.fill + k) % n) {
            if let Some(key) = self.sets[i].insert(i as u32, fd, size) {
                self.fill = i;
                return self.opened(key);
            }
        }
        self.sets.push(Set::default());
        self.fill = n;
        let key = self.sets[n].insert(n as u32, fd, size).unwrap_or(ConnKey {
            set: n as u32,
            slot: 0,
            gen: 0,
        });
        self.opened(key)
    }

    /// Microseconds since the worker's epoch, wrapping: the send rate's clock.
    fn now_us(&self) -> u32 {
        self.epoch.elapsed().as_micros() as u32
    }

    fn opened(&mut self, key: ConnKey) -> ConnKey {
        self.open += 1;
        let now_us = self.now_us();
        if let Some(s) = self.slot_mut(key) {
            s.send_tat = now_us;
        }
        let at = (Instant::now() + self.shared.cfg.login_timeout).duration_since(self.epoch);
        // Truncated to 32 bits on purpose; compared with wrapping arithmetic.
        self.deadlines.push_back((at.as_millis() as u32, key));
        key
    }

    /// Forgets a closed connection and counts why it closed.
    pub fn remove_conn(&mut self, key: ConnKey, reason: CloseReason) {
        let Some(set) = self.sets.get_mut(key.set as usize) else {
            return;
        };
        let Some(user) = set.remove(key) else {
            return;
        };
        self.open -= 1;
        self.counters().close(reason);
        if let Some(user) = user {
            Counters::inc(&self.counters().logouts);
            let home = Directory::home(user, self.workers());
            self.post(
                home,
                Msg::Offline {
                    user,
                    at: self.here(key),
                },
            );
        }
    }

    /// Writes frames to a connection: straight to the socket when nothing is queued,
    /// else behind what is. A client that leaves more than `--write-queue` bytes waiting,
    /// counted in our queue and in the kernel's send queue (not yet sent) together, is
    /// closed (slow_reader): what the kernel holds for a client that does not read is
    /// bounded too, whatever the socket's buffer size.
    pub fn write(&mut self, key: ConnKey, bytes: &[u8]) {
        let cap = self.shared.cfg.write_queue;
        let Some(slot) = self.slot_mut(key) else {
            return;
        };
        if slot.close == Some(CloseReason::SlowReader) {
            return;
        }
        let mut rest = bytes;
        if slot.out.is_none() {
            match send(slot.fd, bytes) {
                Ok(n) => {
                    rest = &bytes[n..];
                    slot.unmeasured = slot
                        .unmeasured
                        .saturating_add(n.min(usize::from(u16::MAX)) as u16);
                    if rest.is_empty() {
                        // The kernel took it all: measure its queue every few frames.
                        if slot.unmeasured >= MEASURE_EVERY && unread_in_kernel(slot) > cap {
                            slot.close(CloseReason::SlowReader);
                        }
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return slot.close(CloseReason::Reset),
            }
        }
        // The kernel's buffer is full: what waits here adds to what waits there.
        let queued = slot.out.as_ref().map_or(0, |o| o.len());
        if queued + rest.len() + unread_in_kernel(slot) > cap {
            slot.out = None;
            return slot.close(CloseReason::SlowReader);
        }
        let out = slot.out.get_or_insert_with(Default::default);
        out.extend_from_slice(rest);
        if let Some(w) = &slot.waker {
            w.wake_by_ref();
        }
    }

    /// Writes what a connection has queued; true when the queue is empty.
    pub fn flush(&mut self, key: ConnKey) -> Result<bool, CloseReason> {
        let Some(slot) = self.slot_mut(key) else {
            return Ok(true);
        };
        let fd = slot.fd;
        let Some(out) = slot.out.as_mut() else {
            return Ok(true);
        };
        while !out.is_empty() {
            match send(fd, out) {
                Ok(n) => {
                    out.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(_) => return Err(CloseReason::Reset),
            }
        }
        // Drained: give the memory back, an idle connection holds no buffer.
        slot.out = None;
        Ok(true)
    }

    /// Answers one frame from a connection. `Ok(None)`: the answer comes later (a grab
    /// of a packet another worker owns). `Err`: the connection must close.
    pub fn handle(&mut self, key: ConnKey, frame: Frame) -> Result<Option<Frame>, CloseReason> {
        let Some(slot) = self.slot_mut(key) else {
            return Err(CloseReason::Reset);
        };
        let user = match (slot.user, frame) {
            (None, Frame::LoginRequest { user }) => {
                slot.user = Some(user);
                let c = self.counters();
                Counters::inc(&c.login);
                Counters::inc(&c.logins);
                let home = Directory::home(user, self.workers());
                self.post(
                    home,
                    Msg::Online {
                        user,
                        at: self.here(key),
                    },
                );
                return Ok(Some(Frame::LoginResponse {
                    user,
                    result: result::LOGIN_OK,
                }));
            }
            (None, _) => return Err(CloseReason::NotLoginFirst),
            (Some(u), _) => u,
        };
        match frame {
            Frame::LoginRequest { user: again } if again == user => {
                Counters::inc(&self.counters().login);
                Ok(Some(Frame::LoginResponse {
                    user,
                    result: result::LOGIN_OK,
                }))
            }
            Frame::ShakeRequest { .. } => Ok(Some(self.shake(key.set as usize, user))),
            Frame::GrabRequest { packet, .. } => Ok(self.grab(key, user, packet)),
            Frame::SendRequest {
                amount,
                count,
                users,
                ..
            } => {
                Counters::inc(&self.counters().send);
                let (result, packet) = match self.client_send(key, user, amount, count, users) {
                    Ok(id) => (result::SEND_OK, id),
                    Err(code) => {
                        let c = self.counters();
                        Counters::inc(&c.rejected);
                        match code {
                            result::SEND_BUSY => Counters::inc(&c.busy),
                            result::SEND_USER_LIMIT => Counters::inc(&c.user_limited),
                            result::SEND_RATE_LIMITED => Counters::inc(&c.rate_limited),
                            _ => {}
                        }
                        (code, 0)
                    }
                };
                Ok(Some(Frame::SendResponse {
                    user,
                    result,
                    packet,
                    amount,
                }))
            }
            _ => Err(CloseReason::UnexpectedCommand),
        }
    }

    fn shake(&mut self, set: usize, user: u32) -> Frame {
        let c = &self.shared.workers[self.index].counters;
        Counters::inc(&c.shake);
        let answer = |result, p: ShakePacket| Frame::ShakeResponse {
            user,
            result,
            packet: p.id,
            amount: p.amount,
        };
        let nothing = ShakePacket { id: 0, amount: 0 };
        self.sets[set].demand += 1;
        if self.tokens < 1.0 {
            Counters::inc(&c.overloaded);
            return answer(result::OVERLOADED, nothing);
        }
        self.tokens -= 1.0;
        match self.sets[set]
            .pool
            .pop_front()
            .or_else(|| self.pool.pop_front())
        {
            Some(p) => {
                Counters::inc(&c.won);
                Counters::add(&c.won_cents, u64::from(p.amount));
                answer(result::GOT, p)
            }
            None => {
                Counters::inc(&c.none);
                answer(result::NONE, nothing)
            }
        }
    }

    fn grab(&mut self, key: ConnKey, user: u32, packet: u32) -> Option<Frame> {
        Counters::inc(&self.counters().grab);
        let owner = Sends::owner(packet, self.workers());
        if owner == self.index {
            let amount = self.grab_local(user, packet);
            return Some(Frame::GrabResponse { packet, amount });
        }
        if self.remote_grabs < MAX_REMOTE_GRABS {
            let reply = self.here(key);
            if self.post(
                owner,
                Msg::Grab {
                    user,
                    packet,
                    reply,
                },
            ) {
                self.remote_grabs += 1;
                return None;
            }
        }
        // Too many grabs in flight, or the owner has stopped: an answer now, of 0.
        Counters::inc(&self.counters().grab_denied);
        Some(Frame::GrabResponse { packet, amount: 0 })
    }

    fn grab_local(&mut self, user: u32, packet: u32) -> u32 {
        let c = &self.shared.workers[self.index].counters;
        match self.sends.grab(packet, user) {
            Grab::Share { cents, last } => {
                if last {
                    self.shared.workers[self.index].send_slots.release(1);
                }
                Counters::inc(&c.grabbed);
                Counters::add(&c.grabbed_cents, u64::from(cents));
                cents
            }
            Grab::Denied => {
                Counters::inc(&c.grab_denied);
                0
            }
        }
    }

    /// A send from a logged-in user (frame 0x0007): checked, split, stored here, and
    /// announced to each recipient through their home worker. In order: the
    /// connection's rate, the frame itself, the sender's own outstanding packets, and
    /// only then the worker's share of the server-wide cap, so a user who abuses hits a
    /// limit of their own long before the one everybody shares.
    fn client_send(
        &mut self,
        key: ConnKey,
        sender: u32,
        amount: u32,
        count: u32,
        users: [u32; MAX_RECIPIENTS],
    ) -> Result<u32, u32> {
        let (rate, now_us) = (self.send_rate, self.now_us());
        let Some(slot) = self.slot_mut(key) else {
            return Err(result::SEND_BUSY);
        };
        if !rate.allow(&mut slot.send_tat, now_us) {
            return Err(result::SEND_RATE_LIMITED);
        }
        let k = count as usize;
        if k == 0 || k > MAX_RECIPIENTS {
            return Err(result::SEND_BAD_RECIPIENTS);
        }
        let named = &users[..k];
        let repeated = (1..k).any(|i| named[..i].contains(&named[i]));
        if repeated || named.contains(&sender) {
            return Err(result::SEND_BAD_RECIPIENTS);
        }
        if (amount as usize) < k {
            return Err(result::SEND_BAD_AMOUNT);
        }
        let per_user = self.shared.cfg.max_sends_per_user;
        if per_user > 0 && self.sends.sent_by(sender) >= per_user {
            return Err(result::SEND_USER_LIMIT);
        }
        if self.me().send_slots.reserve(1) == 0 {
            return Err(result::SEND_BUSY);
        }
        self.create_send(sender, amount, users, k)
            .ok_or(result::SEND_BAD_AMOUNT)
    }

    /// Makes a packet in a slot already reserved (by the caller or the issuer); a
    /// packet that cannot be split gives its slot back.
    fn create_send(
        &mut self,
        sender: u32,
        amount: u32,
        recipients: [u32; MAX_RECIPIENTS],
        k: usize,
    ) -> Option<u32> {
        let Some(shares) = crate::split::split(amount, k, &mut self.rng) else {
            self.me().send_slots.release(1);
            return None;
        };
        let now = Instant::now();
        let id = self.sends.create(sender, recipients, k as u8, shares, now);
        let c = self.counters();
        Counters::inc(&c.created);
        Counters::add(&c.created_cents, u64::from(amount));
        let mut users = [0; MAX_RECIPIENTS];
        users[..k].copy_from_slice(&recipients[..k]);
        let note = Note {
            packet: id,
            amount,
            shares: k as u8,
            users,
            expires: self.now_unix + self.shared.cfg.send_ttl.as_secs(),
        };
        for &user in &recipients[..k] {
            let home = Directory::home(user, self.workers());
            self.post(home, Msg::Notify { user, note });
        }
        Some(id)
    }

    /// Pushes a notification to a connection if it still holds `user`; otherwise sends
    /// it back to the user's home worker, which keeps it or forwards it.
    fn deliver(&mut self, user: u32, at: ConnKey, note: Note) {
        let here = matches!(self.slot_mut(at), Some(s) if s.user == Some(user));
        if !here {
            let home = Directory::home(user, self.workers());
            self.post(home, Msg::Notify { user, note });
            return;
        }
        let frame = Frame::SendNotification {
            packet: note.packet,
            amount: note.amount,
            shares: u32::from(note.shares),
            users: note.users,
        }
        .encode(self.now_unix);
        Counters::inc(&self.counters().notified);
        self.write(at, frame.as_bytes());
    }

    fn run_actions(&mut self, user: u32) {
        let mut actions = std::mem::take(&mut self.actions);
        for a in actions.drain(..) {
            match a {
                Action::Kick(loc) if usize::from(loc.worker) == self.index => {
                    if let Some(s) = self.slot_mut(loc.conn) {
                        s.close(CloseReason::Replaced);
                    }
                }
                Action::Kick(loc) => {
                    self.post(usize::from(loc.worker), Msg::Kick { at: loc.conn });
                }
                Action::Deliver(loc, note) if usize::from(loc.worker) == self.index => {
                    self.deliver(user, loc.conn, note)
                }
                Action::Deliver(loc, note) => {
                    self.post(
                        usize::from(loc.worker),
                        Msg::Deliver {
                            user,
                            at: loc.conn,
                            note,
                        },
                    );
                }
            }
        }
        self.actions = actions;
    }

    pub fn on_msg(&mut self, msg: Msg) {
        match msg {
            Msg::Online { user, at } => {
                self.directory
                    .login(user, at, self.now_unix, &mut self.actions);
                self.run_actions(user);
            }
            Msg::Offline { user, at } => self.directory.logout(user, at),
            Msg::Notify { user, note } => {
                if self.directory.notify(user, note, &mut self.actions) {
                    Counters::inc(&self.counters().deferred);
                }
                self.run_actions(user);
            }
            Msg::Deliver { user, at, note } => self.deliver(user, at, note),
            Msg::Kick { at } => {
                if let Some(s) = self.slot_mut(at) {
                    s.close(CloseReason::Replaced);
                }
            }
            Msg::Grab {
                user,
                packet,
                reply,
            } => {
                let amount = self.grab_local(user, packet);
                let done = Msg::GrabDone {
                    at: reply.conn,
                    packet,
                    amount,
                };
                self.post(usize::from(reply.worker), done);
            }
            Msg::GrabDone { at, packet, amount } => {
                self.remote_grabs = self.remote_grabs.saturating_sub(1);
                let frame = Frame::GrabResponse { packet, amount }.encode(self.now_unix);
                self.write(at, frame.as_bytes());
            }
            Msg::CreateSend { amount, recipients } => {
                if self
                    .create_send(0, amount, recipients, MAX_RECIPIENTS)
                    .is_none()
                {
                    Counters::inc(&self.counters().rejected);
                }
            }
            Msg::Grant(packets) => self.pool.extend(packets),
        }
    }

    /// Periodic work: budget, packet shares, login deadlines, expiry.
    fn tick(&mut self, now: Instant, dt: f64) {
        self.now_unix = crate::protocol::unix_now();
        let rate = self.me().budget.load(Relaxed) as f64;
        self.tokens = (self.tokens + rate * dt).min((rate * BUDGET_BURST).max(1.0));

        let now_ms = now.duration_since(self.epoch).as_millis() as u32;
        while let Some(&(at, key)) = self.deadlines.front() {
            // Wrapping comparison: milliseconds in a u32 wrap every 49 days.
            if (at.wrapping_sub(now_ms) as i32) > 0 {
                break;
            }
            self.deadlines.pop_front();
            if let Some(s) = self.slot_mut(key) {
                if s.user.is_none() {
                    s.close(CloseReason::LoginTimeout);
                }
            }
        }
        if self.deadlines.is_empty() && self.deadlines.capacity() > 1024 {
            // A login storm is over: give its bookkeeping back.
            self.deadlines.shrink_to_fit();
        }

        let (n, cents) = self.sends.expire(now);
        if n > 0 {
            self.me().send_slots.release(n);
            let c = self.counters();
            Counters::add(&c.refunded, n);
            Counters::add(&c.refunded_cents, cents);
        }
        if now.duration_since(self.last_purge) > Duration::from_secs(60) {
            self.last_purge = now;
            self.directory.purge(self.now_unix);
        }

        self.share_packets();
        let held = self.pool.len() + self.sets.iter().map(|s| s.pool.len()).sum::<usize>();
        self.me().held.store(held as u64, Relaxed);
        self.me()
            .open_sends
            .store(self.sends.outstanding() as u64, Relaxed);
    }

    /// Hands the worker's packets to its SETs in proportion to the demand each saw
    /// since the last tick, each up to about two ticks of its demand; the rest waits in
    /// the worker's pool, which any SET falls back on.
    fn share_packets(&mut self) {
        let (weights, caps, parts) = &mut self.scratch;
        weights.clear();
        caps.clear();
        for s in &self.sets {
            weights.push(s.demand);
            caps.push((s.demand * 2).saturating_sub(s.pool.len() as u64));
        }
        if !self.pool.is_empty() {
            let offset = self.rng.random();
            apportion(self.pool.len() as u64, weights, caps, offset, parts);
            for (set, &n) in self.sets.iter_mut().zip(parts.iter()) {
                set.pool.extend(self.pool.drain(..n as usize));
            }
        }
        for s in &mut self.sets {
            s.demand = 0;
        }
    }

    /// Everything this worker still holds, counted item by item.
    fn held(&self) -> Held {
        let shake = self
            .pool
            .iter()
            .chain(self.sets.iter().flat_map(|s| s.pool.iter()));
        let (mut n, mut cents) = (0, 0);
        for p in shake {
            n += 1;
            cents += u64::from(p.amount);
        }
        Held {
            shake: n,
            shake_cents: cents,
            send: self.sends.outstanding() as u64,
            send_cents: self.sends.outstanding_cents(),
        }
    }

    /// Asks every connection to close (they answer what they already read first).
    fn close_all(&mut self, reason: CloseReason) {
        for set in &mut self.sets {
            for s in set.slots_mut() {
                s.close(reason);
            }
        }
    }

    /// Counts as closed every connection still open when the grace period ran out.
    fn drop_all(&mut self, reason: CloseReason) {
        let mut live = Vec::new();
        for (i, set) in self.sets.iter_mut().enumerate() {
            live.extend(set.live_keys(i as u32));
        }
        for key in live {
            self.remove_conn(key, reason);
        }
    }
}

/// Bytes a connection may hand the kernel between two measures of what it has not sent:
/// the kernel may hold at most this much more than `--write-queue` before we notice.
const MEASURE_EVERY: u16 = 512;

/// Bytes the kernel holds for a connection and has not sent yet, measured now; resets
/// the count of unmeasured bytes.
fn unread_in_kernel(slot: &mut Slot) -> usize {
    slot.unmeasured = 0;
    unsent(slot.fd).unwrap_or(0)
}

/// `ioctl(SIOCOUTQNSD)`: the bytes in a TCP socket's send queue not yet sent. These wait
/// because the client's window is closed: it does not read. Bytes sent and not yet
/// acknowledged (SIOCOUTQ counts those too) are in flight, not waiting: a client that
/// reads but acknowledges late (delayed ACKs, a long path) must not be taken for a
/// slow reader.
fn unsent(fd: RawFd) -> std::io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQNSD writes one int into `n`.
    let rc = unsafe { libc::ioctl(fd, libc::SIOCOUTQNSD as _, &mut n) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n.max(0) as usize)
    }
}

/// `send(2)` without SIGPIPE and without blocking.
fn send(fd: RawFd, bytes: &[u8]) -> std::io::Result<usize> {
    // SAFETY: `bytes` is a live slice for the duration of the call.
    let n = unsafe {
        libc::send(
            fd,
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// The worker thread: pin, build the runtime, serve until shutdown, drain, report.
pub fn run(
    index: usize,
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
    mut inbox: mpsc::UnboundedReceiver<Msg>,
    shutdown: CancellationToken,
) -> Held {
    let core = shared.cfg.cores[index];
    if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        tracing::warn!("worker {index}: could not pin to CPU {core}");
    }
    let Some(rt) = super::thread_runtime(&format!("worker {index}")) else {
        return Held::default();
    };
    let grace = shared.cfg.grace;
    let worker: WorkerRef = Rc::new(RefCell::new(Worker::new(index, shared)));
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let accept = tokio::task::spawn_local(accept_loop(worker.clone(), listener));
        let ticker = {
            let w = worker.clone();
            tokio::task::spawn_local(async move {
                let mut iv = tokio::time::interval(TICK);
                iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut last = Instant::now();
                loop {
                    iv.tick().await;
                    let now = Instant::now();
                    w.borrow_mut()
                        .tick(now, now.duration_since(last).as_secs_f64());
                    last = now;
                }
            })
        };
        let mut batch = Vec::with_capacity(256);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                n = inbox.recv_many(&mut batch, 256) => {
                    if n == 0 { break; }
                    let mut w = worker.borrow_mut();
                    for m in batch.drain(..) { w.on_msg(m); }
                }
            }
        }
        // Drain: stop accepting, let every connection answer what it read, then close.
        accept.abort();
        worker.borrow_mut().close_all(CloseReason::Shutdown);
        let deadline = tokio::time::Instant::now() + grace;
        while worker.borrow().open > 0 && tokio::time::Instant::now() < deadline {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                n = inbox.recv_many(&mut batch, 256) => {
                    {
                        let mut w = worker.borrow_mut();
                        for m in batch.drain(..) { w.on_msg(m); }
                    }
                    if n == 0 { tokio::time::sleep(Duration::from_millis(5)).await; }
                }
            }
        }
        ticker.abort();
        worker.borrow_mut().drop_all(CloseReason::Shutdown);
        // Packets granted but not yet taken in are still ours to count.
        inbox.close();
        while let Ok(m) = inbox.try_recv() {
            if let Msg::Grant(p) = m {
                worker.borrow_mut().pool.extend(p);
            }
        }
    });
    let held = worker.borrow().held();
    held
}

/// Accepts connections until aborted. Out of descriptors, a pending connection is
/// accepted and closed with the spare (counted as over_capacity);
/// other errors are counted and followed by a short backoff. None ends the loop.
async fn accept_loop(w: WorkerRef, listener: std::net::TcpListener) {
    // SAFETY: a TcpListener owns its descriptor until it is dropped with the AsyncFd.
    let listener = match unsafe { AsyncFd::register(listener) } {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("cannot register the listener: {e}");
            return;
        }
    };
    let mut backoff = Duration::from_millis(5);
    let mut spare = super::spare::Spare::new();
    loop {
        let mut guard = match listener.readable().await {
            Ok(g) => g,
            Err(e) => {
                tracing::error!("listener failed: {e}");
                return;
            }
        };
        loop {
            match listener.get_ref().accept() {
                Ok((stream, _)) => {
                    backoff = Duration::from_millis(5);
                    admit(&w, stream);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    guard.clear_ready();
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let shared = w.borrow().shared.clone();
                    let counters = &shared.workers[w.borrow().index].counters;
                    if super::spare::out_of_files(&e) {
                        // Out of descriptors: the client gets a clean close instead of
                        // waiting in the queue, and the loop goes on.
                        match spare.refuse_one(listener.get_ref()) {
                            Refusal::Refused => {
                                Counters::inc(&counters.accepted);
                                counters.close(CloseReason::OverCapacity);
                                continue;
                            }
                            Refusal::NothingPending => {
                                guard.clear_ready();
                                break;
                            }
                            Refusal::NoSpare => {}
                        }
                    }
                    Counters::inc(&counters.accept_errors);
                    tracing::warn!("accept failed: {e}; retrying in {backoff:?}");
                    drop(guard);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                    break;
                }
            }
        }
    }
}

/// Takes in one accepted connection, or closes it at once when over capacity.
fn admit(w: &WorkerRef, stream: std::net::TcpStream) {
    let shared = w.borrow().shared.clone();
    let counters = &shared.workers[w.borrow().index].counters;
    Counters::inc(&counters.accepted);
    if shared.open_conns() > shared.max_conns {
        counters.close(CloseReason::OverCapacity);
        return;
    }
    super::listener::tune_client(&stream, &shared.cfg);
    if stream.set_nonblocking(true).is_err() {
        counters.close(CloseReason::Reset);
        return;
    }
    let fd = stream.as_raw_fd();
    // SAFETY: a TcpStream owns its descriptor until it is dropped with the AsyncFd.
    let stream = match unsafe { AsyncFd::register(stream) } {
        Ok(s) => s,
        Err(_) => {
            counters.close(CloseReason::Reset);
            return;
        }
    };
    let key = w.borrow_mut().add_conn(fd);
    tokio::task::spawn_local(super::conn::Conn::new(w.clone(), stream, key));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_reports_errors_instead_of_signalling() {
        // A closed descriptor: an error value, no SIGPIPE, no panic.
        assert!(send(-1, b"x").is_err());
        assert!(unsent(-1).is_err());
    }

    #[test]
    fn what_the_kernel_has_not_sent_is_measured() {
        use std::os::fd::AsRawFd;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        // A receive window of a few KB that nobody reads: the rest waits in our queue.
        socket2::SockRef::from(&client)
            .set_recv_buffer_size(4096)
            .unwrap();
        let (server, _) = l.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        assert_eq!(unsent(server.as_raw_fd()).unwrap(), 0);
        let chunk = [7u8; 1024];
        let mut sent = 0;
        while sent < 256 * 1024 {
            match send(server.as_raw_fd(), &chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        std::thread::sleep(Duration::from_millis(50));
        let q = unsent(server.as_raw_fd()).unwrap();
        assert!(q > 0 && q <= sent, "{q} of {sent} bytes unsent");
        drop(client);
    }
}
