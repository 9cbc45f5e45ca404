//! One worker: a pinned thread with its own epoll loop and listener.
//!
//! The worker accepts connections into its SETs (`set`), serves each ready connection
//! in its SET, handles the messages other threads send it (`inbox`), and
//! ticks every 10 ms (budget, packet shares, login deadlines, expiry) while it has
//! something to tick for: a worker whose users are all idle sleeps until a request, a
//! message or a connection comes (see [`Worker::quiet`]), so a million idle users cost
//! no wake-up. What a request gets as answer is `requests`; the sockets' system calls
//! are `socket`.
//!
//! **One epoll wait per wake-up.** The thread sleeps in one `epoll_wait` on its own
//! set, which holds the listener, the inbox's bell and every connection of every SET
//! (`set::EventKeys` says how an event names its SET), with the time to the next tick
//! as its timeout, and then does everything that woke it in one turn. No async runtime sits on the request path: with fifty server
//! processes on two CPUs (the million-user demo on the development VM) every wake-up
//! finds cold caches, and the runtime's park, its driver's turn, task wake-ups and the
//! polls of the futures around them were about a fifth of a worker's CPU at a million
//! users (bench/README.md). The worker owns all its state; other threads reach it only
//! through its inbox.

use super::directory::{Action, Directory};
use super::inbox::Mailbox;
use super::requests::{Requests, BUDGET_BURST};
use super::set::{EventKeys, Set, BATCH};
use super::{ConnKey, Held, Msg, Note, ServerState};
use crate::apportion::apportion;
use rand::Rng;
use redpacket_formats::server::{CloseReason, Counters};
use redpacket_protocol::{Frame, MAX_RECIPIENTS};
use redpacket_sys::epoll::{self, BusyPoll, Epoll, Event, NO_EVENT};
use redpacket_sys::spare::{Refusal, Spare};
use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often a worker refills its budget, hands packets to SETs, enforces login
/// deadlines and expires packets.
pub const WORKER_TICK: Duration = Duration::from_millis(10);
/// Keys of the worker's own descriptors in its epoll set, beside the connections'
/// ([`EventKeys`] never makes these).
const LISTENER: u64 = u64::MAX;
const BELL: u64 = u64::MAX - 1;
/// Messages taken from the inbox per turn, at most.
const MESSAGES_PER_TURN: usize = 256;
/// How often a draining worker looks whether its connections have all closed.
const DRAIN_LOOK: Duration = Duration::from_millis(5);

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
    /// No tick is due until something comes in (the worker was [`Worker::quiet`]).
    ticker_asleep: bool,
    /// When something last came in (a request, a message, a connection).
    served: Instant,
    /// The worker's epoll set: the listener, the inbox's bell, every connection.
    poller: Rc<Epoll>,
    /// How a connection's events name its SET and slot.
    keys: EventKeys,
}

impl Worker {
    fn new(index: usize, state: Arc<ServerState>) -> std::io::Result<Worker> {
        let epoch = Instant::now();
        let poller = Epoll::new()?;
        if let Some(p) = busy_poll(state.cfg.epoll_busy_poll) {
            // A wait that finds nothing ready polls the sockets' device queue first.
            poller.set_busy_poll(p)?;
        }
        let keys = EventKeys::new(state.cfg.set_size);
        Ok(Worker {
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
            served: Instant::now(),
            poller: Rc::new(poller),
            keys,
        })
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
        self.served = now;
        if self.ticker_asleep {
            self.ticker_asleep = false;
            self.tick(now);
        } else if now.saturating_duration_since(self.last_tick) >= WORKER_TICK {
            self.tick(now);
        }
    }

    /// The timer's part of a turn: a tick that is due runs, and a worker it leaves with
    /// nothing to tick for stops ticking until something comes in.
    fn on_timer(&mut self, now: Instant) {
        if !self.ticker_asleep && now.saturating_duration_since(self.last_tick) >= WORKER_TICK {
            self.tick(now);
            self.ticker_asleep = self.quiet();
        }
    }

    /// When the worker must wake for a tick if nothing wakes it first: never while it
    /// is quiet; [`WORKER_TICK`] after the last tick; or, while requests keep coming,
    /// a tick later. Requests then tick the worker themselves (the first one after a
    /// tick falls due, in [`Worker::awake`]), and a timer set for the tick itself
    /// would win that race about as often as it lost it: a wake-up for each tick, a
    /// hundred a second per worker, for work the next request does anyway.
    fn next_tick(&self, now: Instant) -> Option<Instant> {
        if self.ticker_asleep {
            return None;
        }
        let serving = now.saturating_duration_since(self.served) <= 2 * WORKER_TICK;
        Some(
            self.last_tick
                + if serving {
                    2 * WORKER_TICK
                } else {
                    WORKER_TICK
                },
        )
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

    /// Places a new connection in a SET with room (a new SET when all are full);
    /// `None` when none could take it (the socket is then closed).
    fn add_conn(&mut self, fd: OwnedFd) -> Option<ConnKey> {
        // Its login deadline needs the ticker.
        self.awake();
        let n = self.sets.len();
        let mut fd = fd;
        for i in (0..n).map(|k| (self.fill + k) % n) {
            match self.sets[i].insert(fd) {
                Ok(key) => {
                    self.fill = i;
                    return Some(self.opened(key));
                }
                Err(Some(back)) => fd = back,
                Err(None) => return None,
            }
        }
        if n >= self.keys.max_sets() {
            tracing::warn!("cannot make a new SET: {n} SETs is as many as events can name");
            return None;
        }
        let cfg = &self.state().cfg;
        let set = Set::new(
            n as u32,
            self.poller.clone(),
            self.keys,
            cfg.set_size,
            cfg.write_queue,
        );
        self.sets.push(set);
        self.fill = n;
        let key = self.sets[n].insert(fd).ok()?;
        Some(self.opened(key))
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

    /// Serves one event of a connection, in the SET its data names.
    fn serve_event(&mut self, ev: &Event) {
        let key = self.keys.key_of(epoll::key(ev));
        if let Some(s) = self.sets.get_mut(key.set as usize) {
            s.serve_event(key, epoll::bits(ev), &mut self.req);
        }
    }

    /// The round of each SET's unfinished connections; true when none is left.
    fn serve_unfinished(&mut self) -> bool {
        let mut done = true;
        for s in &mut self.sets {
            if s.unfinished() {
                done &= s.serve_again(&mut self.req);
            }
        }
        done
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

/// `--epoll-busy-poll`: the parameters for the worker's epoll, if on.
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

/// The worker thread: pin, serve until shutdown, drain, report.
pub fn run(
    index: usize,
    state: Arc<ServerState>,
    listener: std::net::TcpListener,
    mut mailbox: Mailbox,
    shutdown: CancellationToken,
) -> Held {
    let core = state.cfg.cores[index];
    if state.cfg.pinned && !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        tracing::warn!("worker {index}: could not pin to CPU {core}");
    }
    let grace = state.cfg.grace;
    let made = Worker::new(index, state).and_then(|w| {
        w.poller.add(listener.as_fd(), epoll::WANT_READ, LISTENER)?;
        w.poller.add(mailbox.bell(), epoll::WANT_READ, BELL)?;
        Ok(w)
    });
    let mut w = match made {
        Ok(w) => w,
        Err(e) => {
            tracing::error!("worker {index}: cannot make its epoll set: {e}");
            return Held::default();
        }
    };
    let mut lp = Loop::new(listener);
    // The token is looked at only after the bell rang: shutdown cancels it, then rings
    // every worker (`ServerHandle::shutdown`, its only canceller), and a ring made before
    // this loop stays on the bell until a wait takes it. Looking every turn took the
    // token's lock once a request at a million users (1.6 % of a worker's samples).
    let mut stopping = shutdown.is_cancelled();
    while !stopping {
        stopping = lp.turn(&mut w, &mut mailbox, None) && shutdown.is_cancelled();
    }
    // Drain: stop accepting, let every connection answer what it read, then close.
    lp.listener = None;
    w.close_all();
    let deadline = Instant::now() + grace;
    while w.open() > 0 && Instant::now() < deadline {
        lp.turn(&mut w, &mut mailbox, Some(deadline));
    }
    w.drop_all(CloseReason::Shutdown);
    // Packets granted but not yet taken in are still ours to count; after the close a
    // grant goes back to the issuer.
    mailbox.close(&mut lp.batch);
    for m in lp.batch.drain(..) {
        if let Msg::Grant(p) = m {
            w.req.pool.extend(p);
        }
    }
    w.held()
}

/// The worker's event loop: what a turn needs beside the worker's own state.
struct Loop {
    /// Taken away when the drain begins: no more accepts.
    listener: Option<std::net::TcpListener>,
    /// After an accept error: when to try again (the listener's edge may not come back).
    accept_at: Option<Instant>,
    backoff: Duration,
    spare: Spare,
    events: Vec<Event>,
    batch: Vec<Msg>,
    /// More is ready than the last turn took: the last wait filled `events`, or a SET
    /// has unfinished connections. The next wait then does not sleep.
    more: bool,
}

impl Loop {
    fn new(listener: std::net::TcpListener) -> Loop {
        Loop {
            listener: Some(listener),
            accept_at: None,
            backoff: ACCEPT_BACKOFF,
            spare: Spare::new(),
            events: vec![NO_EVENT; BATCH],
            batch: Vec::with_capacity(MESSAGES_PER_TURN),
            more: false,
        }
    }

    /// One turn: messages, a due tick or accept retry, one wait (none while more is
    /// ready or a message waits) for whatever comes first, each event it brings served
    /// in its order, then the round of each SET's unfinished connections. `draining`
    /// is the end of the grace period once shutdown began. True if the bell rang.
    fn turn(&mut self, w: &mut Worker, mail: &mut Mailbox, draining: Option<Instant>) -> bool {
        if mail.take(&mut self.batch, MESSAGES_PER_TURN) > 0 {
            for m in self.batch.drain(..) {
                w.on_msg(m);
            }
        }
        let now = Instant::now();
        w.on_timer(now);
        if self.accept_at.is_some_and(|t| now >= t) {
            self.accept_at = None;
            self.accept(w);
        }
        let until = [
            w.next_tick(now),
            self.accept_at,
            draining.map(|d| d.min(now + DRAIN_LOOK)),
        ]
        .into_iter()
        .flatten()
        .min();
        let asleep = !self.more && mail.sleep();
        let wait = match asleep {
            false => Some(Duration::ZERO),
            true => until.map(|t| t.saturating_duration_since(now)),
        };
        // The worker's own set: a wait fails only on a bug, never on input.
        let n = match w.poller.wait_up_to(&mut self.events, wait) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!("worker {}: epoll_wait failed: {e}", w.req.index);
                0
            }
        };
        if asleep {
            mail.awake();
        }
        let mut served = false;
        let mut rang = false;
        for i in 0..n {
            let ev = self.events[i];
            match epoll::key(&ev) {
                LISTENER if self.accept_at.is_none() => self.accept(w),
                LISTENER => {}
                BELL => {
                    mail.rang();
                    rang = true;
                }
                _ => {
                    if !served {
                        served = true;
                        w.awake();
                    }
                    w.serve_event(&ev);
                }
            }
        }
        let unfinished = !w.serve_unfinished();
        self.more = unfinished || n == self.events.len();
        rang
    }

    /// Accepts every pending connection. Out of descriptors, a pending connection is
    /// accepted and closed with the spare (counted as over_capacity); other errors are
    /// counted and followed by a short backoff before the next try.
    fn accept(&mut self, w: &mut Worker) {
        let Some(listener) = &self.listener else {
            return;
        };
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    self.backoff = ACCEPT_BACKOFF;
                    admit(w, stream);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let counters = w.counters();
                    if redpacket_sys::spare::out_of_files(&e) {
                        // Out of descriptors: the client gets a clean close instead of
                        // waiting in the queue, and the loop goes on.
                        match self.spare.refuse_one(listener) {
                            Refusal::Refused => {
                                Counters::inc(&counters.accepted);
                                counters.close(CloseReason::OverCapacity);
                                continue;
                            }
                            Refusal::NothingPending => return,
                            Refusal::NoSpare => {}
                        }
                    }
                    Counters::inc(&counters.accept_errors);
                    tracing::warn!("accept failed: {e}; retrying in {:?}", self.backoff);
                    self.accept_at = Some(Instant::now() + self.backoff);
                    self.backoff = (self.backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    return;
                }
            }
        }
    }
}

/// The first wait after an accept error, doubled at each error in a row up to
/// [`ACCEPT_BACKOFF_MAX`].
const ACCEPT_BACKOFF: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(500);

/// Takes in one accepted connection, or closes it at once when over capacity.
fn admit(w: &mut Worker, stream: std::net::TcpStream) {
    let state = w.req.state.clone();
    let counters = &state.workers[w.req.index].counters;
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
    if w.add_conn(OwnedFd::from(stream)).is_none() {
        // No SET could take it (epoll refused it, or no new SET could be made): the
        // socket is already closed.
        counters.close(CloseReason::Reset);
    }
}
