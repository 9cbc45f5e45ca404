//! One worker: a pinned thread with its own single-threaded runtime and listener.
//!
//! The worker accepts connections into its SETs (`set`), runs one task per SET that
//! serves the SET's ready connections, handles the messages other threads send it, and
//! ticks every 10 ms (budget, packet shares, login deadlines, expiry) while it has
//! something to tick for: a worker whose users are all idle sleeps until a request, a
//! message or a connection comes (see [`Worker::quiet`]), so a million idle users cost
//! no wake-up. What a request gets as answer is `requests`; the sockets' system calls
//! are `socket`.
//!
//! All state of a worker lives in one [`Worker`] behind an `Rc<RefCell<..>>`: the thread
//! runs one task at a time, so a borrow is never contended, and no borrow is held across
//! an `.await`. Other threads reach the worker only through its inbox.

use super::directory::{Action, Directory};
use super::requests::{Requests, BUDGET_BURST};
use super::set::Set;
use super::{ConnKey, Held, Msg, Note, ServerState};
use crate::apportion::apportion;
use rand::Rng;
use redpacket_formats::server::{CloseReason, Counters};
use redpacket_protocol::{Frame, MAX_RECIPIENTS};
use redpacket_sys::epoll::{BusyPoll, Epoll};
use redpacket_sys::spare::Refusal;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How often a worker refills its budget, hands packets to SETs, enforces login
/// deadlines and expires packets.
pub const WORKER_TICK: Duration = Duration::from_millis(10);
/// How long the ticker sleeps while requests keep the worker awake: the serving path
/// then ticks on its own ([`Worker::awake`]) and the ticker only backs it up, so a busy
/// worker is not woken a hundred times a second for work it already does. A second:
/// the backup's only duty is to notice the requests have stopped and tick on its own
/// again, for login deadlines (seconds) and expiries (minutes). At 100 ms it woke a
/// worker asleep between two batches of requests up to twenty times a second (the
/// runtime's timer wheel may wake twice for a sleep that long): the million-user demo's
/// 51 workers switched about 600 times a second more (bench/README.md).
pub const BUSY_TICKER_SLEEP: Duration = Duration::from_secs(1);

pub type WorkerRef = Rc<RefCell<Worker>>;

pub struct Worker {
    req: Requests,
    sets: Vec<Set>,
    /// A SET likely to have room: new connections go there first.
    fill: usize,
    directory: Directory,
    /// Connections not yet logged in, by deadline (milliseconds since `epoch`).
    deadlines: VecDeque<(u32, ConnKey)>,
    epoch: Instant,
    actions: Vec<Action>,
    scratch: (Vec<u64>, Vec<u64>, Vec<u64>),
    last_purge: Instant,
    /// When the last tick ran: the next one refills the budget for the time since.
    last_tick: Instant,
    /// The ticker is waiting on `wake` (the worker was [`Worker::quiet`]).
    ticker_asleep: bool,
    /// When the serving path last ticked (its requests keep the ticks going).
    served_tick: Instant,
    wake: Rc<tokio::sync::Notify>,
}

impl Worker {
    fn new(index: usize, state: Arc<ServerState>) -> Worker {
        let epoch = Instant::now();
        Worker {
            req: Requests::new(index, state, epoch),
            sets: Vec::new(),
            fill: 0,
            directory: Directory::default(),
            deadlines: VecDeque::new(),
            epoch,
            actions: Vec::new(),
            scratch: Default::default(),
            last_purge: Instant::now(),
            last_tick: Instant::now(),
            ticker_asleep: false,
            served_tick: Instant::now(),
            wake: Rc::new(tokio::sync::Notify::new()),
        }
    }

    /// Whether ticking would change nothing until something comes in: no connection
    /// waiting to log in, no user-to-user packet to expire, a full budget and no shake
    /// demand since the last tick. Packets waiting in the worker's pool wait for demand,
    /// which only a request brings. The directory's purge waits for the next wake.
    fn quiet(&self) -> bool {
        let cap = (self.req.me().budget.load(Relaxed) as f64 * BUDGET_BURST).max(1.0);
        self.deadlines.is_empty()
            && self.req.sends.outstanding() == 0
            && self.req.tokens >= cap
            && self.sets.iter().all(|s| s.shakes.demand == 0)
    }

    /// Something came in: a sleeping ticker catches up (the clock, the budget for the
    /// time asleep) before it is served, and starts ticking again; a tick that falls
    /// due while the worker is up anyway runs here, not on a timer of its own.
    fn awake(&mut self) {
        let now = Instant::now();
        if self.ticker_asleep {
            self.ticker_asleep = false;
            self.tick(now);
            self.served_tick = now;
            self.wake.notify_one();
        } else if now.saturating_duration_since(self.last_tick) >= WORKER_TICK {
            self.tick(now);
            self.served_tick = now;
        }
    }

    /// How long the ticker may sleep: [`WORKER_TICK`], or [`BUSY_TICKER_SLEEP`] while
    /// the serving path has been ticking by itself.
    fn ticker_sleep(&self, now: Instant) -> Duration {
        if now.saturating_duration_since(self.served_tick) <= 2 * WORKER_TICK {
            BUSY_TICKER_SLEEP
        } else {
            WORKER_TICK
        }
    }

    fn state(&self) -> &ServerState {
        &self.req.state
    }

    fn counters(&self) -> &Counters {
        self.req.counters()
    }

    /// Connections open in this worker.
    fn open(&self) -> usize {
        self.sets.iter().map(Set::live).sum()
    }

    /// Places a new connection in a SET with room (a new SET when all are full). The
    /// second value is the new SET's number when one was made (its task must start).
    fn add_conn(&mut self, fd: OwnedFd) -> (Option<ConnKey>, Option<usize>) {
        // Its login deadline needs the ticker.
        self.awake();
        let size = self.state().cfg.set_size;
        let n = self.sets.len();
        let mut fd = fd;
        for i in (0..n).map(|k| (self.fill + k) % n) {
            match self.sets[i].insert(fd, size) {
                Ok(key) => {
                    self.fill = i;
                    return (Some(self.opened(key)), None);
                }
                Err(Some(back)) => fd = back,
                Err(None) => return (None, None),
            }
        }
        let cfg = &self.state().cfg;
        let set = match Set::new(n as u32, cfg.write_queue, busy_poll(cfg.epoll_busy_poll)) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot make a new SET: {e}");
                return (None, None);
            }
        };
        self.sets.push(set);
        self.fill = n;
        match self.sets[n].insert(fd, size) {
            Ok(key) => (Some(self.opened(key)), Some(n)),
            Err(_) => (None, Some(n)),
        }
    }

    fn opened(&mut self, key: ConnKey) -> ConnKey {
        let at = (Instant::now() + self.state().cfg.login_timeout).duration_since(self.epoch);
        // Truncated to 32 bits on purpose; compared with wrapping arithmetic.
        self.deadlines.push_back((at.as_millis() as u32, key));
        key
    }

    /// Closes a connection and counts why.
    fn close(&mut self, key: ConnKey, reason: CloseReason) {
        if let Some(set) = self.sets.get_mut(key.set as usize) {
            set.close(key, reason, &mut self.req);
        }
    }

    /// Writes frames to a connection (see `Set::write`: a slow reader is closed).
    fn write(&mut self, key: ConnKey, bytes: &[u8]) {
        if let Some(set) = self.sets.get_mut(key.set as usize) {
            set.write(key, bytes, &mut self.req);
        }
    }

    /// The user logged in on a connection, if it is still open.
    fn user_at(&mut self, key: ConnKey) -> Option<u32> {
        self.sets
            .get_mut(key.set as usize)?
            .get_mut(key)
            .and_then(|s| s.user)
    }

    /// One round of a SET's ready connections; true when it left nothing ready.
    fn serve_set(&mut self, set: usize) -> bool {
        self.awake();
        match self.sets.get_mut(set) {
            Some(s) => s.serve_ready(&mut self.req),
            None => true,
        }
    }

    /// Pushes a notification to a connection if it still holds `user`; otherwise sends
    /// it back to the user's home worker, which keeps it or forwards it.
    fn deliver(&mut self, user: u32, at: ConnKey, note: Note) {
        if self.user_at(at) != Some(user) {
            let home = Directory::home(user, self.req.workers());
            self.req.post(home, Msg::Notify { user, note });
            return;
        }
        let frame = Frame::SendNotification {
            packet: note.packet,
            amount: note.amount,
            shares: u32::from(note.shares),
            users: note.users,
        }
        .encode(self.req.now_unix);
        Counters::inc(&self.counters().notified);
        self.write(at, frame.as_bytes());
    }

    fn run_actions(&mut self, user: u32) {
        let mut actions = std::mem::take(&mut self.actions);
        for a in actions.drain(..) {
            match a {
                Action::Kick(loc) if usize::from(loc.worker) == self.req.index => {
                    self.close(loc.conn, CloseReason::Replaced)
                }
                Action::Kick(loc) => {
                    self.req
                        .post(usize::from(loc.worker), Msg::Kick { at: loc.conn });
                }
                Action::Deliver(loc, note) if usize::from(loc.worker) == self.req.index => {
                    self.deliver(user, loc.conn, note)
                }
                Action::Deliver(loc, note) => {
                    self.req.post(
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
        self.awake();
        match msg {
            Msg::Online { user, at } => {
                self.directory
                    .login(user, at, self.req.now_unix, &mut self.actions);
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
            Msg::Kick { at } => self.close(at, CloseReason::Replaced),
            Msg::Grab {
                user,
                packet,
                reply,
            } => {
                let amount = self.req.grab_local(user, packet);
                let done = Msg::GrabDone {
                    at: reply.conn,
                    packet,
                    amount,
                };
                self.req.post(usize::from(reply.worker), done);
            }
            Msg::GrabDone { at, packet, amount } => {
                self.req.remote_grabs = self.req.remote_grabs.saturating_sub(1);
                let frame = Frame::GrabResponse { packet, amount }.encode(self.req.now_unix);
                self.write(at, frame.as_bytes());
            }
            Msg::CreateSend { amount, recipients } => {
                if self
                    .req
                    .create_send(0, amount, recipients, MAX_RECIPIENTS)
                    .is_none()
                {
                    Counters::inc(&self.counters().rejected);
                }
            }
            Msg::Grant(packets) => self.req.pool.extend(packets),
        }
    }

    /// Periodic work: budget, packet shares, login deadlines, expiry.
    fn tick(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last_tick).as_secs_f64();
        self.last_tick = now;
        let req = &mut self.req;
        req.now_unix = redpacket_protocol::unix_now();
        let rate = req.me().budget.load(Relaxed) as f64;
        req.tokens = (req.tokens + rate * dt).min((rate * BUDGET_BURST).max(1.0));

        let now_ms = now.duration_since(self.epoch).as_millis() as u32;
        while let Some(&(at, key)) = self.deadlines.front() {
            let waiting = self
                .sets
                .get_mut(key.set as usize)
                .and_then(|s| s.get_mut(key))
                .is_some_and(|s| s.user.is_none());
            // Wrapping comparison: milliseconds in a u32 wrap every 49 days.
            let due = (at.wrapping_sub(now_ms) as i32) <= 0;
            if waiting && !due {
                break;
            }
            // Due, or nothing to enforce (logged in, or closed): it leaves the queue
            // now, so a worker whose users have all logged in has no deadline to tick for.
            self.deadlines.pop_front();
            if waiting {
                self.close(key, CloseReason::LoginTimeout);
            }
        }
        if self.deadlines.is_empty() && self.deadlines.capacity() > 1024 {
            // A login storm is over: give its bookkeeping back.
            self.deadlines.shrink_to_fit();
        }

        let (n, cents) = self.req.sends.expire(now);
        if n > 0 {
            self.req.me().send_slots.release(n);
            let c = self.counters();
            Counters::add(&c.refunded, n);
            Counters::add(&c.refunded_cents, cents);
        }
        if now.duration_since(self.last_purge) > Duration::from_secs(60) {
            self.last_purge = now;
            self.directory.purge(self.req.now_unix);
        }

        self.share_packets();
        let pools = self.sets.iter().map(|s| s.shakes.pool.len()).sum::<usize>();
        let req = &self.req;
        req.me()
            .held
            .store((req.pool.len() + pools) as u64, Relaxed);
        req.me()
            .open_sends
            .store(req.sends.outstanding() as u64, Relaxed);
    }

    /// Hands the worker's packets to its SETs in proportion to the demand each saw
    /// since the last tick, each up to about two ticks of its demand; the rest waits in
    /// the worker's pool, which any SET falls back on.
    fn share_packets(&mut self) {
        let (weights, caps, parts) = &mut self.scratch;
        weights.clear();
        caps.clear();
        for s in &self.sets {
            weights.push(s.shakes.demand);
            caps.push((s.shakes.demand * 2).saturating_sub(s.shakes.pool.len() as u64));
        }
        let req = &mut self.req;
        if !req.pool.is_empty() {
            let offset = req.rng.random();
            apportion(req.pool.len() as u64, weights, caps, offset, parts);
            for (set, &n) in self.sets.iter_mut().zip(parts.iter()) {
                set.shakes.pool.extend(req.pool.drain(..n as usize));
            }
        }
        for s in &mut self.sets {
            s.shakes.demand = 0;
        }
    }

    /// Everything this worker still holds, counted item by item.
    fn held(&self) -> Held {
        let shake = self
            .req
            .pool
            .iter()
            .chain(self.sets.iter().flat_map(|s| s.shakes.pool.iter()));
        let (mut n, mut cents) = (0, 0);
        for p in shake {
            n += 1;
            cents += u64::from(p.amount);
        }
        Held {
            shake: n,
            shake_cents: cents,
            send: self.req.sends.outstanding() as u64,
            send_cents: self.req.sends.outstanding_cents(),
        }
    }

    /// Shutdown: every connection answers what it already sent, writes what it has
    /// queued while the grace period lasts, and closes.
    fn close_all(&mut self) {
        for set in &mut self.sets {
            set.shutdown(&mut self.req);
        }
    }

    /// Counts as closed every connection still open when the grace period ran out.
    fn drop_all(&mut self, reason: CloseReason) {
        for set in &mut self.sets {
            for key in set.live_keys() {
                set.close(key, reason, &mut self.req);
            }
        }
    }
}

/// `--epoll-busy-poll`: the parameters for each SET's epoll, if on.
fn busy_poll(usecs: u32) -> Option<BusyPoll> {
    (usecs > 0).then_some(BusyPoll {
        usecs,
        budget: BUSY_POLL_BUDGET,
        prefer: false,
    })
}

/// Packets per busy poll: the kernel's own default (`BUSY_POLL_BUDGET`), which needs no
/// privilege (above 64 needs CAP_NET_ADMIN).
const BUSY_POLL_BUDGET: u16 = 8;

/// Checks before anything is bound that this kernel takes the epoll busy polling asked
/// for: refused, the server does not start, and the error says why.
pub fn probe_busy_poll(usecs: u32) -> std::io::Result<()> {
    match busy_poll(usecs) {
        Some(p) => Epoll::new()?.set_busy_poll(p),
        None => Ok(()),
    }
}

/// The worker thread: pin, build the runtime, serve until shutdown, drain, report.
pub fn run(
    index: usize,
    state: Arc<ServerState>,
    listener: std::net::TcpListener,
    mut inbox: mpsc::UnboundedReceiver<Msg>,
    shutdown: CancellationToken,
) -> Held {
    let core = state.cfg.cores[index];
    if state.cfg.pinned && !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        tracing::warn!("worker {index}: could not pin to CPU {core}");
    }
    let Some(rt) = super::thread_runtime(&format!("worker {index}")) else {
        return Held::default();
    };
    let grace = state.cfg.grace;
    let worker: WorkerRef = Rc::new(RefCell::new(Worker::new(index, state)));
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let accept = tokio::task::spawn_local(accept_loop(worker.clone(), listener));
        let ticker = {
            let w = worker.clone();
            let wake = worker.borrow().wake.clone();
            tokio::task::spawn_local(async move {
                let mut sleep = WORKER_TICK;
                loop {
                    tokio::time::sleep(sleep).await;
                    let quiet = {
                        let mut w = w.borrow_mut();
                        let now = Instant::now();
                        // The serving path may have ticked in the meantime.
                        if now.saturating_duration_since(w.last_tick) >= WORKER_TICK {
                            w.tick(now);
                        }
                        sleep = w.ticker_sleep(now);
                        let quiet = w.quiet();
                        w.ticker_asleep = quiet;
                        quiet
                    };
                    if quiet {
                        // Until `awake`: it ticks (catching up) before serving.
                        wake.notified().await;
                        sleep = WORKER_TICK;
                    }
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
        worker.borrow_mut().close_all();
        let deadline = tokio::time::Instant::now() + grace;
        while worker.borrow().open() > 0 && tokio::time::Instant::now() < deadline {
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
                worker.borrow_mut().req.pool.extend(p);
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
    let mut spare = redpacket_sys::spare::Spare::new();
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
                    let (state, index) = {
                        let wk = w.borrow();
                        (wk.req.state.clone(), wk.req.index)
                    };
                    let counters = &state.workers[index].counters;
                    if redpacket_sys::spare::out_of_files(&e) {
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
    let (state, index) = {
        let wk = w.borrow();
        (wk.req.state.clone(), wk.req.index)
    };
    let counters = &state.workers[index].counters;
    Counters::inc(&counters.accepted);
    if state.open_conns() > state.max_conns {
        counters.close(CloseReason::OverCapacity);
        return;
    }
    super::listener::tune_client(&stream, &state.cfg);
    if stream.set_nonblocking(true).is_err() {
        counters.close(CloseReason::Reset);
        return;
    }
    let (key, new_set) = w.borrow_mut().add_conn(OwnedFd::from(stream));
    if key.is_none() {
        // No SET could take it (epoll refused it, or no new SET could be made): the
        // socket is already closed.
        counters.close(CloseReason::Reset);
    }
    if let Some(set) = new_set {
        let epoll = w.borrow().sets[set].epoll();
        tokio::task::spawn_local(serve_set(w.clone(), set, epoll));
    }
}

/// A SET's task: waits until the SET's epoll descriptor is readable (some connection is
/// ready), serves one round, and yields to the runtime between rounds while
/// connections stay ready. Readiness is cleared only after a round that left nothing
/// ready; what became ready during the round wakes the task again (the runtime's
/// readiness is newer than the round's, so clearing the old one leaves it).
async fn serve_set(w: WorkerRef, set: usize, epoll: Rc<AsyncFd<Epoll>>) {
    loop {
        let mut guard = match epoll.readable().await {
            Ok(g) => g,
            Err(e) => {
                tracing::error!("SET {set}: cannot wait on its epoll: {e}");
                return;
            }
        };
        let idle = w.borrow_mut().serve_set(set);
        if idle {
            guard.clear_ready();
        } else {
            drop(guard);
            tokio::task::yield_now().await;
        }
    }
}
