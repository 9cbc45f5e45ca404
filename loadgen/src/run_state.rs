//! What the coordinator and the workers share: the steering atomics and each worker's
//! block of figures.
//!
//! The coordinator writes the mode, the rates and the phase; workers read them once per
//! loop. Workers write their figures into their own [`WorkerBlock`] every few
//! milliseconds; the coordinator reads them once a second. With `--procs` a block is a
//! child process's: its reader thread files the child's seconds by stamp
//! ([`StampedSeconds`]) and the coordinator takes them a second at a time. No lock is
//! ever shared by two workers.

use crate::metrics::{Pending, Tally};
use crate::procs::seconds::StampedSeconds;
use crate::users::UserRange;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

/// Workers connect users but send nothing.
pub const MODE_CONNECT: u8 = 0;
/// Workers send shakes, sends and grabs at the current rates.
pub const MODE_LOAD: u8 = 1;
/// No new requests; answers still counted, notifications ignored.
pub const MODE_DRAIN: u8 = 2;
/// Close everything and exit.
pub const MODE_STOP: u8 = 3;

/// What the coordinator and the workers share.
pub struct RunState {
    pub mode: AtomicU8,
    /// Target shakes per second for all users of `all_users` (f64 bits).
    qps: AtomicU64,
    /// Client sends per second for all users (f64 bits).
    send_rate: AtomicU64,
    /// Index of the phase being run: 0 = connect, i + 1 = the plan's phase i.
    pub phase: AtomicUsize,
    /// Every user the whole run drives (over all processes); rates are shared by it.
    pub all_users: UserRange,
    pub workers: Vec<WorkerBlock>,
}

impl RunState {
    pub fn new(all_users: UserRange, slices: &[UserRange]) -> RunState {
        RunState {
            mode: AtomicU8::new(MODE_CONNECT),
            qps: AtomicU64::new(0f64.to_bits()),
            send_rate: AtomicU64::new(0f64.to_bits()),
            phase: AtomicUsize::new(0),
            all_users,
            workers: slices.iter().map(|r| WorkerBlock::new(*r)).collect(),
        }
    }
    /// Wakes every worker to read the shared state again (mode, phase, rates).
    pub fn wake(&self) {
        for w in &self.workers {
            if let Some(k) = &w.waker {
                k.wake();
            }
        }
    }
    /// Sets the mode (and the phase with it) and wakes the workers to act on it.
    pub fn set_mode(&self, mode: u8, phase: Option<usize>) {
        if let Some(p) = phase {
            self.phase.store(p, Relaxed);
        }
        self.mode.store(mode, Relaxed);
        self.wake();
    }
    pub fn set_qps(&self, q: f64) {
        self.qps.store(q.max(0.0).to_bits(), Relaxed);
        self.wake();
    }
    pub fn qps(&self) -> f64 {
        f64::from_bits(self.qps.load(Relaxed))
    }
    pub fn set_send_rate(&self, q: f64) {
        self.send_rate.store(q.max(0.0).to_bits(), Relaxed);
        self.wake();
    }
    pub fn send_rate(&self) -> f64 {
        f64::from_bits(self.send_rate.load(Relaxed))
    }
    pub fn connected(&self) -> u64 {
        self.workers.iter().map(|w| w.connected.load(Relaxed)).sum()
    }
    pub fn inflight(&self) -> u64 {
        self.workers.iter().map(|w| w.inflight.load(Relaxed)).sum()
    }
    /// Users logged in by source address index, summed over workers.
    pub fn by_source(&self) -> Vec<u64> {
        let mut out: Vec<u64> = Vec::new();
        for w in &self.workers {
            if let Ok(v) = w.by_source.lock() {
                if out.len() < v.len() {
                    out.resize(v.len(), 0);
                }
                for (o, x) in out.iter_mut().zip(v.iter()) {
                    *o += x;
                }
            }
        }
        out
    }
    /// Takes what every worker counted since the last call, and every second a child
    /// sent that was not taken yet.
    pub fn take_interval(&self) -> Tally {
        let mut t = Tally::default();
        for w in &self.workers {
            if let Ok(mut i) = w.interval.lock() {
                t.add(&i);
                *i = Tally::default();
            }
            if let Ok(mut s) = w.seconds.lock() {
                s.take_all(&mut t);
            }
        }
        t
    }
    /// Takes the children's seconds stamped `upto` or earlier (the line of second
    /// `upto`); also returns how many of them were stamped `written` (the last line
    /// written) or earlier: records that came after their own line.
    pub fn take_seconds(&self, upto: i64, written: i64) -> (Tally, u64) {
        let mut t = Tally::default();
        let mut late = 0;
        for w in &self.workers {
            if let Ok(mut s) = w.seconds.lock() {
                late += s.take_upto(upto, written, &mut t);
            }
        }
        (t, late)
    }
    /// Whether every child still running has sent its record of second `k`.
    pub fn all_reported(&self, k: i64) -> bool {
        self.workers
            .iter()
            .all(|w| w.seconds.lock().map_or(true, |s| s.has_reported(k)))
    }
    /// What every worker counted in phase `i`.
    pub fn phase_tally(&self, i: usize) -> Tally {
        let mut t = Tally::default();
        for w in &self.workers {
            if let Ok(p) = w.phases.lock() {
                if let Some(x) = p.get(i) {
                    t.add(x);
                }
            }
        }
        t
    }
}

/// One worker's (or one child process's) figures, read by the coordinator.
pub struct WorkerBlock {
    pub users: UserRange,
    pub interval: Mutex<Tally>,
    /// A child's seconds, by the whole second each covers, until their line is written.
    pub seconds: Mutex<StampedSeconds>,
    pub phases: Mutex<Vec<Tally>>,
    pub connected: AtomicU64,
    /// Shakes, grabs and sends awaiting an answer, plus grabs waiting to be sent.
    pub inflight: AtomicU64,
    /// Users logged in, by index in the source address list (empty without one).
    pub by_source: Mutex<Vec<u64>>,
    /// Wakes the worker when what it reads from here changes ([`RunState::wake`]):
    /// it sleeps until its next request or event. `None` if the system has no eventfd
    /// to give: the worker then looks every 10 ms.
    pub waker: Option<redpacket_sys::wake::Waker>,
}

impl WorkerBlock {
    pub fn new(users: UserRange) -> WorkerBlock {
        WorkerBlock {
            users,
            interval: Mutex::new(Tally::default()),
            seconds: Mutex::new(StampedSeconds::default()),
            phases: Mutex::new(Vec::new()),
            connected: AtomicU64::new(0),
            inflight: AtomicU64::new(0),
            by_source: Mutex::new(Vec::new()),
            waker: redpacket_sys::wake::Waker::new().ok(),
        }
    }
    /// Adds what a worker counted to the current interval and to phase `phase`.
    pub fn add(&self, p: &Pending, phase: usize) {
        if let Ok(mut i) = self.interval.lock() {
            p.add_to(&mut i);
        }
        self.with_phase(phase, |t| p.add_to(t));
    }
    /// Adds a child's figures of phase `phase`.
    pub fn add_phase(&self, t: &Tally, phase: usize) {
        self.with_phase(phase, |p| p.add(t));
    }
    /// Runs `f` on phase `phase`'s figures, made on first use.
    fn with_phase(&self, phase: usize, f: impl FnOnce(&mut Tally)) {
        if let Ok(mut p) = self.phases.lock() {
            if p.len() <= phase {
                p.resize_with(phase + 1, Tally::default);
            }
            f(&mut p[phase]);
        }
    }
}
