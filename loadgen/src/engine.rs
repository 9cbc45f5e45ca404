//! The engine: worker threads that hold users' connections and send on schedule.
//!
//! Each worker owns a contiguous slice of the users, one pinned thread and one epoll
//! set; a user is a [`crate::conn`] state of 96 bytes in a `Vec`, with no heap buffer (frames are
//! at most 44 bytes, so a partial frame waits in the inline `rbuf`). Shakes are sent
//! open loop: the worker's share of the target rate is a fixed period between scheduled
//! send times, users taken round-robin (so each user shakes at most once per
//! users/rate seconds), and latency runs from the scheduled time, not the send time.
//!
//! The coordinator steers workers through [`Shared`] atomics (mode, rates, phase) and
//! reads what they count from their [`WorkerBlock`]s (both in [`crate::shared`]).

use crate::conn::{Conn, CONNECTING, DOWN, LOGGING_IN, PEND, READY};
use crate::metrics::{Failure, Tally};
use crate::net::{self, Epoll, Events, Interest};
pub use crate::shared::{
    Shared, Targets, WorkerBlock, MODE_CONNECT, MODE_DRAIN, MODE_LOAD, MODE_STOP,
};
use crate::users::UserRange;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use redpacket::protocol::{decode, result, unix_now, Frame, MAX_RECIPIENTS};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    shared: Arc<Shared>,
    cfg: WorkerConfig,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("loadgen-w{}", cfg.index))
        .spawn(move || {
            if let Some(core) = cfg.core {
                core_affinity::set_for_current(core);
            }
            // Sleep to the tick, not 50 us (the default timer slack) past it.
            net::tight_timer_slack();
            match Worker::new(shared.clone(), cfg) {
                Ok(mut w) => w.run(),
                Err(e) => eprintln!("loadgen: worker cannot start: {e}"),
            }
        })
}

struct Worker {
    shared: Arc<Shared>,
    cfg: WorkerConfig,
    users: UserRange,
    conns: Vec<Conn>,
    ep: Epoll,
    start: Instant,
    now: u64,
    unix: u64,
    rng: SmallRng,
    tally: Tally,
    phase: usize,
    /// Next user for a first connect; later ones come from `retry`.
    next_first: u32,
    retry: BinaryHeap<Reverse<(u64, u32)>>,
    connect_tokens: f64,
    last_refill: u64,
    in_connect: usize,
    /// Shake schedule: next due time (ns, fractional) and period; 0 period = off.
    next_shake: f64,
    shake_period: f64,
    rr: u32,
    qps_seen: f64,
    next_send: f64,
    send_period: f64,
    send_seen: f64,
    /// Grabs waiting for their think time: (due ns, user index, packet, amount).
    grab_timers: BinaryHeap<Reverse<(u64, u32, u32, u32)>>,
    /// Grabs sent and not answered: (user index, packet) -> notified amount.
    grabs_out: HashMap<(u32, u32), u32>,
    /// Amounts of client sends not yet answered, per user index, in order.
    sends_out: HashMap<u32, VecDeque<u32>>,
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
    fn new(shared: Arc<Shared>, cfg: WorkerConfig) -> std::io::Result<Worker> {
        let users = shared.workers[cfg.index].users;
        let n = users.len() as usize;
        let sources = cfg.source_addrs.len();
        let mut conns = Vec::with_capacity(n);
        conns.resize_with(n, Conn::new);
        Ok(Worker {
            rng: SmallRng::seed_from_u64(cfg.seed),
            shared,
            cfg,
            users,
            conns,
            ep: Epoll::new()?,
            start: Instant::now(),
            now: 0,
            unix: unix_now(),
            tally: Tally::default(),
            phase: 0,
            next_first: 0,
            retry: BinaryHeap::new(),
            connect_tokens: 1.0,
            last_refill: 0,
            in_connect: 0,
            next_shake: 0.0,
            shake_period: 0.0,
            rr: 0,
            qps_seen: -1.0,
            next_send: 0.0,
            send_period: 0.0,
            send_seen: -1.0,
            grab_timers: BinaryHeap::new(),
            grabs_out: HashMap::new(),
            sends_out: HashMap::new(),
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

    fn block(&self) -> &WorkerBlock {
        &self.shared.workers[self.cfg.index]
    }

    fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
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
            if self.now >= self.last_sweep + 100_000_000 {
                self.last_sweep = self.now;
                self.unix = unix_now();
                self.sweep();
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
            let wake = self.next_wake(mode);
            self.last_wake = self.now;
            let mut wait = wake.saturating_sub(self.now);
            if self.cfg.tick_ns > 0 {
                // Ticked: sleep through the tick whatever arrives, then take every ready
                // socket at once. One wake-up per tick instead of one per answer; an
                // answer is timed when its tick collects it (at most a tick late).
                let until = wake.max(self.now + self.cfg.tick_ns);
                std::thread::sleep(Duration::from_nanos(until.saturating_sub(self.now)));
                wait = 0;
            }
            loop {
                let n = self.ep.wait(&mut events, wait);
                self.clock();
                for ev in events.ready(n) {
                    self.on_event(ev.key as u32, ev);
                }
                if n < events.capacity() {
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

    /// When the loop must next act on its own (not on a socket event), worker clock ns.
    fn next_wake(&self, mode: u8) -> u64 {
        let mut t = self.now + 10_000_000;
        if mode == MODE_LOAD {
            let mut due = u64::MAX;
            if self.shake_period > 0.0 {
                due = due.min(self.next_shake as u64);
            }
            if self.send_period > 0.0 {
                due = due.min(self.next_send as u64);
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

    fn wants_connect(&self) -> bool {
        (self.next_first < self.users.len())
            || self
                .retry
                .peek()
                .is_some_and(|Reverse((due, _))| *due <= self.now + 1_000_000)
    }

    fn flush(&mut self) {
        self.last_flush = self.now;
        let t = self.tally.take();
        let b = self.block();
        b.add(&t, self.phase);
        b.connected.store(self.connected, Relaxed);
        if !self.by_source.is_empty() {
            if let Ok(mut v) = b.by_source.lock() {
                v.clone_from(&self.by_source);
            }
        }
        b.inflight
            .store(self.inflight + self.grab_timers.len() as u64, Relaxed);
    }

    /// Re-reads the rates; a change restarts the schedule one period from now.
    fn rates(&mut self) {
        let share = f64::from(self.users.len()) / f64::from(self.shared.all_users.len().max(1));
        let q = self.shared.qps();
        if q != self.qps_seen {
            self.qps_seen = q;
            let mine = q * share;
            self.shake_period = if mine > 0.0 { 1e9 / mine } else { 0.0 };
            self.next_shake = self.now as f64 + self.shake_period;
        }
        let s = self.shared.send_rate();
        if s != self.send_seen {
            self.send_seen = s;
            let mine = s * share;
            self.send_period = if mine > 0.0 { 1e9 / mine } else { 0.0 };
            self.next_send = self.now as f64 + self.send_period;
        }
    }

    fn connect_some(&mut self) {
        let dt = self.now.saturating_sub(self.last_refill) as f64 / 1e9;
        self.last_refill = self.now;
        let cap = (self.cfg.connect_rate / 100.0).max(1.0);
        self.connect_tokens = (self.connect_tokens + dt * self.cfg.connect_rate).min(cap);
        while self.connect_tokens >= 1.0 && self.in_connect < 2048 {
            let idx = if self.next_first < self.users.len() {
                self.next_first += 1;
                self.next_first - 1
            } else {
                match self.retry.peek() {
                    Some(Reverse((due, idx))) if *due <= self.now => {
                        let idx = *idx;
                        self.retry.pop();
                        idx
                    }
                    _ => break,
                }
            };
            self.connect_tokens -= 1.0;
            self.connect(idx);
        }
    }

    fn connect(&mut self, idx: u32) {
        let user = self.users.start + idx;
        let Some(dst) = self.cfg.targets.server_for(user) else {
            return;
        };
        let src = match self.cfg.source_addrs.len() {
            0 => None,
            n => Some(self.cfg.source_addrs[(user as usize) % n]),
        };
        match net::start_connect(dst, src) {
            Ok(fd) => {
                if let Err(e) = self.ep.add(fd.as_fd(), Interest::Connect, u64::from(idx)) {
                    self.failed(idx, e.failure());
                    return;
                }
                let c = &mut self.conns[idx as usize];
                c.fd = Some(fd);
                c.state = CONNECTING;
                c.since = self.now;
                c.rlen = 0;
                self.in_connect += 1;
            }
            Err(e) => self.failed(idx, e.failure()),
        }
    }

    /// Counts a failed attempt and schedules the next one with backoff and jitter.
    fn failed(&mut self, idx: u32, why: Failure) {
        self.tally.counts.fail(why);
        let c = &mut self.conns[idx as usize];
        c.attempts = c.attempts.saturating_add(1);
        let retry = !c.ever || self.cfg.reconnect;
        if retry {
            let base = 100_000_000u64 << u32::from(c.attempts.min(6));
            let base = base.min(5_000_000_000) as f64;
            let delay = base * self.rng.random_range(0.5..1.5);
            self.retry.push(Reverse((self.now + delay as u64, idx)));
        }
    }

    /// Closes a connection; its unanswered requests count as dropped.
    fn drop_conn(&mut self, idx: u32, why: Failure) {
        let c = &mut self.conns[idx as usize];
        c.fd = None;
        let was = c.state;
        c.state = DOWN;
        let lost = u64::from(c.npend) + u64::from(c.grabs) + u64::from(c.sends);
        c.npend = 0;
        c.phead = 0;
        c.late = 0;
        c.rlen = 0;
        let had_grabs = c.grabs > 0;
        c.grabs = 0;
        c.sends = 0;
        self.inflight -= lost.min(self.inflight);
        self.tally.counts.error_kinds.dropped += lost;
        if had_grabs {
            self.grabs_out.retain(|k, _| k.0 != idx);
        }
        self.sends_out.remove(&idx);
        match was {
            READY => {
                self.connected -= 1;
                if let Some(n) = self.by_source_slot(idx) {
                    self.by_source[n] -= 1;
                }
                self.tally.counts.disconnects += 1;
            }
            CONNECTING | LOGGING_IN => self.in_connect -= 1,
            _ => {}
        }
        self.failed(idx, why);
    }

    fn send_frame(&mut self, idx: u32, f: Frame) -> bool {
        let written = match &self.conns[idx as usize].fd {
            Some(fd) => net::write_all(fd.as_fd(), f.encode(self.unix).as_bytes()),
            None => return false,
        };
        match written {
            Ok(()) => true,
            Err(e) => {
                self.tally.counts.error_kinds.write_failed += 1;
                let why = if e.would_block() {
                    Failure::Other
                } else {
                    e.failure()
                };
                self.drop_conn(idx, why);
                false
            }
        }
    }

    fn shakes(&mut self) {
        if self.shake_period <= 0.0 || self.conns.is_empty() {
            return;
        }
        let n = self.conns.len() as u32;
        while self.next_shake <= self.now as f64 {
            let sched = self.next_shake as u64;
            self.next_shake += self.shake_period;
            let idx = self.rr;
            self.rr = (self.rr + 1) % n;
            self.tally.counts.scheduled += 1;
            let c = &mut self.conns[idx as usize];
            if c.state != READY {
                self.tally.counts.error_kinds.not_connected += 1;
                continue;
            }
            if usize::from(c.npend) == PEND {
                // Open loop: the new request goes out; the oldest stops being waited for.
                let _ = c.pop_pend();
                c.late = c.late.saturating_add(1);
                self.inflight -= 1;
                self.tally.counts.timeouts += 1;
            }
            let user = self.users.start + idx;
            if self.send_frame(idx, Frame::ShakeRequest { user }) {
                self.conns[idx as usize].push_pend(sched);
                self.inflight += 1;
                self.tally.counts.sent += 1;
            }
        }
    }

    fn random_ready(&mut self) -> Option<u32> {
        let n = self.conns.len() as u32;
        for _ in 0..8 {
            let i = self.rng.random_range(0..n);
            if self.conns[i as usize].state == READY {
                return Some(i);
            }
        }
        None
    }

    fn sends(&mut self) {
        if self.send_period <= 0.0 || self.conns.is_empty() {
            return;
        }
        let all = self.shared.all_users;
        while self.next_send <= self.now as f64 {
            self.next_send += self.send_period;
            let Some(idx) = self.random_ready() else {
                self.tally.counts.error_kinds.not_connected += 1;
                continue;
            };
            let me = self.users.start + idx;
            let want = (MAX_RECIPIENTS as u32).min(all.len().saturating_sub(1));
            if want == 0 {
                continue;
            }
            let mut to = [0u32; MAX_RECIPIENTS];
            let mut k = 0;
            while k < want as usize {
                let u = self.rng.random_range(all.start..all.end);
                if u != me && !to[..k].contains(&u) {
                    to[k] = u;
                    k += 1;
                }
            }
            let (lo, hi) = self.cfg.send_cents;
            let amount = self.rng.random_range(lo.max(want)..=hi.max(lo.max(want)));
            let f = Frame::SendRequest {
                user: me,
                amount,
                count: want,
                users: to,
            };
            if self.send_frame(idx, f) {
                self.sends_out.entry(idx).or_default().push_back(amount);
                self.conns[idx as usize].sends += 1;
                self.inflight += 1;
                self.tally.counts.packets.sends += 1;
            }
        }
    }

    fn grabs(&mut self) {
        while let Some(Reverse((due, idx, packet, amount))) = self.grab_timers.peek().copied() {
            if due > self.now {
                break;
            }
            self.grab_timers.pop();
            if self.conns[idx as usize].state != READY {
                self.tally.counts.error_kinds.not_connected += 1;
                continue;
            }
            let user = self.users.start + idx;
            if self.send_frame(idx, Frame::GrabRequest { user, packet }) {
                self.conns[idx as usize].grabs += 1;
                self.grabs_out.insert((idx, packet), amount);
                self.inflight += 1;
                self.tally.counts.packets.grabs += 1;
            }
        }
    }

    /// Expires connects, logins and shakes that waited too long.
    fn sweep(&mut self) {
        let timeout = self.cfg.timeout.as_nanos() as u64;
        let ctimeout = self.cfg.connect_timeout.as_nanos() as u64;
        for idx in 0..self.conns.len() as u32 {
            let c = &mut self.conns[idx as usize];
            match c.state {
                CONNECTING | LOGGING_IN if self.now.saturating_sub(c.since) > ctimeout => {
                    self.drop_conn(idx, Failure::Timeout);
                }
                READY => {
                    while let Some(t) = c.oldest_pend() {
                        if self.now.saturating_sub(t) <= timeout {
                            break;
                        }
                        let _ = c.pop_pend();
                        c.late = c.late.saturating_add(1);
                        self.inflight -= 1;
                        self.tally.counts.timeouts += 1;
                    }
                }
                _ => {}
            }
        }
    }

    fn on_event(&mut self, idx: u32, ev: net::Ready) {
        let Some(c) = self.conns.get(idx as usize) else {
            return;
        };
        let Some(fd) = c.fd.as_ref() else {
            return;
        };
        match c.state {
            CONNECTING => {
                if let Some(e) = net::so_error(fd.as_fd()) {
                    self.drop_conn(idx, e.failure());
                    return;
                }
                if !ev.writable {
                    if ev.hangup {
                        self.drop_conn(idx, Failure::Reset);
                    }
                    return;
                }
                if let Err(e) = self.ep.modify(fd.as_fd(), Interest::Read, u64::from(idx)) {
                    self.drop_conn(idx, e.failure());
                    return;
                }
                self.conns[idx as usize].state = LOGGING_IN;
                self.conns[idx as usize].since = self.now;
                let user = self.users.start + idx;
                self.send_frame(idx, Frame::LoginRequest { user });
            }
            LOGGING_IN | READY => self.on_readable(idx),
            _ => {}
        }
    }

    fn on_readable(&mut self, idx: u32) {
        let c = &mut self.conns[idx as usize];
        let have = usize::from(c.rlen);
        self.scratch[..have].copy_from_slice(&c.rbuf[..have]);
        let Some(fd) = c.fd.as_ref() else {
            return;
        };
        let got = match net::read_stamped(fd.as_fd(), &mut self.scratch[have..]) {
            Ok((0, _)) => {
                self.drop_conn(idx, Failure::Reset);
                return;
            }
            Ok((n, stamp)) => {
                self.answered_at = self.arrival(stamp);
                n
            }
            Err(e) if e.would_block() || e.interrupted() => return,
            Err(e) => {
                self.drop_conn(idx, e.failure());
                return;
            }
        };
        let end = have + got;
        let mut at = 0;
        while at < end {
            match decode(&self.scratch[at..end]) {
                Ok(Some(d)) => {
                    at += d.len;
                    if !self.on_frame(idx, d.frame) {
                        return;
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    self.tally.counts.error_kinds.bad_answer += 1;
                    self.drop_conn(idx, Failure::Other);
                    return;
                }
            }
        }
        let rest = end - at;
        let c = &mut self.conns[idx as usize];
        c.rbuf[..rest].copy_from_slice(&self.scratch[at..end]);
        c.rlen = rest as u8;
    }

    /// Checks and counts one frame; false if the connection was closed.
    fn on_frame(&mut self, idx: u32, f: Frame) -> bool {
        let me = self.users.start + idx;
        let state = self.conns[idx as usize].state;
        match f {
            Frame::LoginResponse { user, result } if state == LOGGING_IN => {
                if user != me || result != result::LOGIN_OK {
                    self.drop_conn(idx, Failure::Login);
                    return false;
                }
                let c = &mut self.conns[idx as usize];
                c.state = READY;
                c.ever = true;
                c.attempts = 0;
                self.in_connect -= 1;
                self.connected += 1;
                if let Some(n) = self.by_source_slot(idx) {
                    self.by_source[n] += 1;
                }
                self.tally.counts.connects += 1;
                true
            }
            _ if state != READY => {
                self.tally.counts.error_kinds.bad_answer += 1;
                self.drop_conn(idx, Failure::Login);
                false
            }
            Frame::ShakeResponse {
                user,
                result,
                amount,
                ..
            } => {
                let sane = user == me
                    && match result {
                        result::GOT => amount > 0,
                        result::NONE | result::OVERLOADED => amount == 0,
                        _ => false,
                    };
                let c = &mut self.conns[idx as usize];
                if c.late > 0 {
                    c.late -= 1;
                    self.tally.counts.late += 1;
                } else if let Some(sched) = c.pop_pend() {
                    self.inflight -= 1;
                    if sane {
                        self.tally
                            .record_us(self.answered_at.saturating_sub(sched) / 1000);
                    }
                } else {
                    self.tally.counts.error_kinds.bad_answer += 1;
                    return true;
                }
                let counts = &mut self.tally.counts;
                if !sane {
                    counts.error_kinds.bad_answer += 1;
                    return true;
                }
                match result {
                    result::GOT => {
                        counts.results.got += 1;
                        counts.packets.won_cents += u64::from(amount);
                    }
                    result::NONE => counts.results.none += 1,
                    _ => counts.results.overloaded += 1,
                }
                true
            }
            Frame::SendNotification {
                packet,
                amount,
                shares,
                users,
            } => {
                let n = shares as usize;
                let sane = (1..=MAX_RECIPIENTS).contains(&n)
                    && amount >= shares
                    && users[..n].contains(&me);
                if !sane {
                    self.tally.counts.error_kinds.bad_answer += 1;
                    return true;
                }
                self.tally.counts.packets.notified += 1;
                if self.shared.mode.load(Relaxed) == MODE_LOAD {
                    let (lo, hi) = self.cfg.think_ms;
                    let ms = self.rng.random_range(lo..=hi.max(lo));
                    let due = self.now + ms * 1_000_000;
                    self.grab_timers.push(Reverse((due, idx, packet, amount)));
                }
                true
            }
            Frame::GrabResponse { packet, amount } => {
                let counts = &mut self.tally.counts;
                let c = &mut self.conns[idx as usize];
                match self.grabs_out.remove(&(idx, packet)) {
                    Some(total) if c.grabs > 0 && amount <= total => {
                        c.grabs -= 1;
                        self.inflight -= 1;
                        if amount == 0 {
                            counts.packets.grab_denied += 1;
                        } else {
                            counts.packets.grab_won += 1;
                            counts.packets.grabbed_cents += u64::from(amount);
                        }
                    }
                    Some(_) => {
                        c.grabs = c.grabs.saturating_sub(1);
                        self.inflight -= 1;
                        counts.error_kinds.bad_answer += 1;
                    }
                    None => counts.error_kinds.bad_answer += 1,
                }
                true
            }
            Frame::SendResponse {
                user,
                result,
                amount,
                ..
            } => {
                let c = &mut self.conns[idx as usize];
                if c.sends == 0 || user != me || result > result::SEND_RATE_LIMITED {
                    self.tally.counts.error_kinds.bad_answer += 1;
                    return true;
                }
                c.sends -= 1;
                self.inflight -= 1;
                let asked = self.sends_out.get_mut(&idx).and_then(|q| q.pop_front());
                if self.sends_out.get(&idx).is_some_and(|q| q.is_empty()) {
                    self.sends_out.remove(&idx);
                }
                let counts = &mut self.tally.counts;
                if asked != Some(amount) {
                    // The server echoes the amount asked; anything else is wrong money.
                    counts.error_kinds.bad_answer += 1;
                    return true;
                }
                if result == result::SEND_OK {
                    counts.packets.send_ok += 1;
                    counts.packets.sent_cents += u64::from(amount);
                } else {
                    counts.packets.send_refused += 1;
                }
                true
            }
            _ => {
                // A request frame or a second login answer: not something a server sends.
                self.tally.counts.error_kinds.bad_answer += 1;
                true
            }
        }
    }
}
