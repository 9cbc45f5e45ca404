//! The engine: worker threads that hold users' connections and send on schedule.
//!
//! Each worker owns a contiguous slice of the users, one pinned thread and one epoll
//! set; a user is a [`crate::conn`] state of 96 bytes in a `Vec`, with no heap buffer
//! (frames are at most 44 bytes, so a partial frame waits in the inline `rbuf`).
//!
//! The parts, one concern each:
//! - this module: the worker, its event loop (sleep to the tick or the next due time,
//!   then take every ready socket) and its clocks;
//! - `schedule`: the open-loop schedule (a fixed period between scheduled send times,
//!   latency from the scheduled time);
//! - `requests`: what is sent when a time falls due: shakes (users taken round-robin),
//!   client sends, grabs after their think time;
//! - `lifecycle`: a connection's life: connect at a bounded rate, log in, read and
//!   decode, expire, close, retry with backoff;
//! - `checks`: what each answer must be (no sockets, no clock: tested frame by frame).
//!
//! The coordinator steers workers through [`RunState`] atomics (mode, rates, phase) and
//! reads what they count from their [`WorkerBlock`]s (both in [`crate::run_state`]).

mod checks;
mod lifecycle;
mod requests;
mod schedule;

use crate::conn::Conn;
use crate::metrics::Pending;
use crate::run_state::{RunState, WorkerBlock, MODE_LOAD, MODE_STOP};
use crate::users::Targets;
use crate::users::UserRange;
use checks::Answers;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use redpacket_protocol::unix_now;
use redpacket_sys::epoll::{self, Epoll, NO_EVENT};
use schedule::Schedule;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The epoll key of the coordinator's wake-ups (no connection index reaches it).
const WAKE_KEY: u64 = u32::MAX as u64;

/// How long an idle worker sleeps when nothing is due: a safety net, not a tick (the
/// coordinator wakes it on every change of mode, phase or rate; sockets wake it on
/// every answer).
const IDLE_WAKE_NS: u64 = 1_000_000_000;

/// How often a worker looks over all its users for requests and connects past their
/// timeouts (found up to this late). The look touches every user's slot: at 20 000
/// users a worker, ten looks a second cost more than the requests of an idle-heavy run.
const SWEEP_EVERY_NS: u64 = 1_000_000_000;

/// Everything a worker needs to know, fixed for the run.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    pub index: usize,
    pub targets: Targets,
    pub source_addrs: Vec<IpAddr>,
    /// New connections per second, this worker's share.
    pub connect_rate: f64,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Reconnect users whose connection dropped after login.
    pub reconnect: bool,
    /// Think time before a grab, milliseconds, uniform in this range.
    pub think_ms: (u64, u64),
    /// Amount of a client send, cents, uniform in this range.
    pub send_cents: (u32, u32),
    pub core: Option<core_affinity::CoreId>,
    pub seed: u64,
    /// Shortest time between two timed wake-ups, ns (0 = wake for every request).
    pub tick_ns: u64,
}

/// Spawns a worker thread for `shared.workers[cfg.index]`.
pub fn spawn(
    shared: Arc<RunState>,
    cfg: WorkerConfig,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("loadgen-w{}", cfg.index))
        .spawn(move || {
            if let Some(core) = cfg.core {
                core_affinity::set_for_current(core);
            }
            // Sleep to the tick, not 50 us (the default timer slack) past it.
            redpacket_sys::cores::tight_timer_slack();
            match Worker::new(shared.clone(), cfg) {
                Ok(mut w) => w.run(),
                Err(e) => eprintln!("loadgen: worker cannot start: {e}"),
            }
        })
}

struct Worker {
    shared: Arc<RunState>,
    cfg: WorkerConfig,
    users: UserRange,
    conns: Vec<Conn>,
    ep: Epoll,
    start: Instant,
    /// The worker clock's offset from the host's tick grid: ticks fall where
    /// CLOCK_MONOTONIC is a whole multiple of the tick, in every process alike.
    tick_offset: u64,
    now: u64,
    unix: u64,
    rng: SmallRng,
    tally: Pending,
    phase: usize,
    /// Next user for a first connect; later ones come from `retry`.
    next_first: u32,
    retry: BinaryHeap<Reverse<(u64, u32)>>,
    connect_tokens: f64,
    last_refill: u64,
    in_connect: usize,
    /// When shakes fall due (all users together, taken round-robin from `rr`).
    shake_due: Schedule,
    rr: u32,
    /// When client sends fall due.
    send_due: Schedule,
    /// Grabs waiting for their think time: (due ns, user index, packet, amount).
    grab_timers: BinaryHeap<Reverse<(u64, u32, u32, u32)>>,
    /// The grabs and client sends awaiting their answers, and the answer checks.
    answers: Answers,
    connected: u64,
    by_source: Vec<u64>,
    inflight: u64,
    last_flush: u64,
    last_sweep: u64,
    last_wake: u64,
    /// Unix ns minus the worker clock, refreshed with the clock.
    real_minus_now: u64,
    /// When the data being decoded arrived (worker clock ns).
    answered_at: u64,
    scratch: Box<[u8; 8192]>,
}

impl Worker {
    fn new(shared: Arc<RunState>, cfg: WorkerConfig) -> std::io::Result<Worker> {
        let users = shared.workers[cfg.index].users;
        let n = users.len() as usize;
        let sources = cfg.source_addrs.len();
        let mut conns = Vec::with_capacity(n);
        conns.resize_with(n, Conn::new);
        let tick_offset = match cfg.tick_ns {
            0 => 0,
            t => (t - redpacket_sys::system::monotonic_ns() % t) % t,
        };
        Ok(Worker {
            rng: SmallRng::seed_from_u64(cfg.seed),
            shared,
            cfg,
            users,
            conns,
            ep: Epoll::new()?,
            tick_offset,
            start: Instant::now(),
            now: 0,
            unix: unix_now(),
            tally: Pending::default(),
            phase: 0,
            next_first: 0,
            retry: BinaryHeap::new(),
            connect_tokens: 1.0,
            last_refill: 0,
            in_connect: 0,
            shake_due: Schedule::default(),
            rr: 0,
            send_due: Schedule::default(),
            grab_timers: BinaryHeap::new(),
            answers: Answers::default(),
            connected: 0,
            by_source: vec![0; sources],
            inflight: 0,
            last_flush: 0,
            last_sweep: 0,
            last_wake: 0,
            real_minus_now: 0,
            answered_at: 0,
            scratch: Box::new([0; 8192]),
        })
    }

    /// The source address index user `idx` connects from.
    fn by_source_slot(&self, idx: u32) -> Option<usize> {
        let n = self.by_source.len();
        (n > 0).then(|| (self.users.start + idx) as usize % n)
    }

    fn clock(&mut self) {
        self.now = self.start.elapsed().as_nanos() as u64;
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        self.real_minus_now = real.saturating_sub(self.now);
    }

    /// A kernel arrival stamp (unix ns) on the worker clock, never after now.
    fn arrival(&self, stamp: Option<u64>) -> u64 {
        match stamp {
            Some(real) if real > self.real_minus_now => (real - self.real_minus_now).min(self.now),
            _ => self.now,
        }
    }

    /// The first tick at or after `t` (worker clock ns). Every process ticks on the same
    /// grid, so the requests of all of them that fall due in one tick leave together:
    /// a server instance fed by several processes then wakes once for their batches,
    /// not once for each.
    fn on_tick_grid(&self, t: u64) -> u64 {
        let tick = self.cfg.tick_ns;
        t + (self.tick_offset + tick - t % tick) % tick
    }

    fn block(&self) -> &WorkerBlock {
        &self.shared.workers[self.cfg.index]
    }

    fn run(&mut self) {
        let mut events = vec![NO_EVENT; 1024];
        // The coordinator's wake-ups arrive on the worker's own epoll set, under a key
        // no connection has: with it the worker may sleep until it is told.
        let woken = self
            .block()
            .waker
            .as_ref()
            .is_some_and(|k| self.ep.add(k.as_fd(), epoll::WANT_READ, WAKE_KEY).is_ok());
        loop {
            self.clock();
            let mode = self.shared.mode.load(Relaxed);
            let phase = self.shared.phase.load(Relaxed);
            if phase != self.phase {
                self.flush();
                self.phase = phase;
            }
            if mode == MODE_STOP {
                break;
            }
            if self.now >= self.last_sweep + SWEEP_EVERY_NS {
                self.last_sweep = self.now;
                self.unix = unix_now();
                // Nothing connecting and nothing in flight: nothing can expire, and a
                // sweep of every user (20 000 per process) is the idle phase's largest
                // cost.
                if self.inflight > 0 || self.in_connect > 0 {
                    self.sweep();
                }
            }
            if mode <= MODE_LOAD {
                self.connect_some();
            }
            if mode == MODE_LOAD {
                self.rates();
                self.shakes();
                self.sends();
                self.grabs();
            } else if !self.grab_timers.is_empty() {
                self.grab_timers.clear();
            }
            if self.now >= self.last_flush + 20_000_000 {
                self.flush();
            }
            let wake = self.next_wake(mode, woken);
            self.last_wake = self.now;
            let mut wait = wake.saturating_sub(self.now);
            if wait > 20_000_000 {
                // A long sleep ahead: what was counted is handed over first, so it is
                // counted in its own second.
                self.flush();
            }
            if self.cfg.tick_ns > 0 && wait <= IDLE_WAKE_NS / 2 {
                // Ticked: sleep through the tick whatever arrives, then take every ready
                // socket at once. One wake-up per tick instead of one per answer; an
                // answer is timed when its tick collects it (at most a tick late). An
                // idle worker waits in epoll instead, where a wake-up reaches it.
                let until = self.on_tick_grid(wake.max(self.now + 1));
                std::thread::sleep(Duration::from_nanos(until.saturating_sub(self.now)));
                wait = 0;
            }
            loop {
                // The worker's own set: a wait can fail only on a bug, never on input.
                let n = self
                    .ep
                    .wait(&mut events, Duration::from_nanos(wait))
                    .unwrap_or_else(|e| panic!("epoll wait on a worker's own set: {e}"));
                self.clock();
                for ev in &events[..n] {
                    match epoll::key(ev) {
                        WAKE_KEY => {
                            if let Some(k) = &self.block().waker {
                                k.take();
                            }
                        }
                        key => self.on_event(key as u32, epoll::bits(ev)),
                    }
                }
                if n < events.len() {
                    break;
                }
                wait = 0;
            }
        }
        for c in &mut self.conns {
            c.fd = None;
        }
        self.connected = 0;
        self.by_source.iter_mut().for_each(|x| *x = 0);
        self.inflight = 0;
        self.flush();
    }

    /// When the loop must next act on its own (not on a socket event), worker clock ns:
    /// the next request or grab due, a connect to make, a sweep of requests in flight
    /// (every second). With nothing of those and the coordinator able to wake it
    /// (`woken`), a worker sleeps [`IDLE_WAKE_NS`]; else it looks every 10 ms.
    fn next_wake(&self, mode: u8, woken: bool) -> u64 {
        let busy = self.inflight > 0
            || self.in_connect > 0
            || !self.grab_timers.is_empty()
            || !self.retry.is_empty();
        let mut t = if woken && !busy {
            self.now + IDLE_WAKE_NS
        } else {
            self.now + 10_000_000
        };
        if mode == MODE_LOAD {
            let mut due = u64::MAX;
            for s in [&self.shake_due, &self.send_due] {
                if let Some(at) = s.next_due() {
                    due = due.min(at);
                }
            }
            if let Some(Reverse((g, ..))) = self.grab_timers.peek() {
                due = due.min(*g);
            }
            t = t.min(due);
        }
        if mode <= MODE_LOAD && self.wants_connect() {
            t = t.min(self.now + 1_000_000);
        }
        t
    }

    fn flush(&mut self) {
        self.last_flush = self.now;
        let b = &self.shared.workers[self.cfg.index];
        b.add(&self.tally, self.phase);
        self.tally.clear();
        b.connected.store(self.connected, Relaxed);
        if !self.by_source.is_empty() {
            if let Ok(mut v) = b.by_source.lock() {
                v.clone_from(&self.by_source);
            }
        }
        b.inflight
            .store(self.inflight + self.grab_timers.len() as u64, Relaxed);
    }
}
