//! The red-packet server: thread-per-core workers that share nothing on the request path.
//!
//! Layout, from the outside in:
//! - [`Server::start`] checks limits, binds every socket (so a taken port is an error
//!   before any thread runs), then starts one pinned worker thread per core and the
//!   control thread.
//! - `worker`: one thread, one epoll loop, one SO_REUSEPORT listener.
//!   It owns its connections (grouped into SETs), the user-to-user packets whose id
//!   maps to it (`sends`) and the directory of users whose id maps to it
//!   (`directory`). Workers talk only by messages ([`Msg`]) through their `inbox`.
//! - The request path: `set` (a SET: a group of connections in the worker's epoll set,
//!   each ready one served as its event comes: read, decode with `redpacket_protocol`,
//!   answer, write; the system calls are `redpacket_sys::{epoll, socket}`'s) and
//!   `requests` (the answers: login, shake, grab, send). No task and no buffer per
//!   connection: a connection is a 40-byte slot in its SET.
//! - `control_thread`: the thread that keeps off the workers everything that is not a
//!   request: `issuer` (campaigns: shake packets at campaign rates, handed to workers in
//!   proportion to their demand, so every request has the same chance; user-to-user
//!   packets at a rate), `stats_log` (the per-second statistics line) and
//!   [`redpacket_control`] (HTTP control and metrics), which it hands a narrow
//!   [`redpacket_control::Plane`] of this server.

mod control_thread;
mod directory;
mod inbox;
mod issuer;
mod listener;
mod requests;
mod sends;
mod set;
mod stats_log;
mod worker;

use crate::config::Config;
use redpacket_formats::server::{Counters, Snapshot, Totals};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// A connection's place inside its worker: SET, slot, and the slot's generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnKey {
    pub set: u32,
    pub slot: u32,
    pub gen: u32,
}

/// A connection anywhere in the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loc {
    pub worker: u16,
    pub conn: ConnKey,
}

/// A user-to-user packet as its recipients are told of it (frame 0x0004).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Note {
    pub packet: u32,
    pub amount: u32,
    pub shares: u8,
    pub users: [u32; redpacket_protocol::MAX_RECIPIENTS],
    /// Unix seconds after which the packet is gone (a kept note is then dropped).
    pub expires: u64,
}

/// A shake packet: issued by a campaign, waiting in a pool to be won.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShakePacket {
    pub id: u32,
    pub amount: u32,
}

/// Messages between threads. Every one is caused by a bounded source (a login, a
/// campaign tick, a grab under the in-flight cap), so inboxes cannot grow without bound.
#[derive(Debug)]
pub enum Msg {
    /// To the user's home worker: `user` logged in at `at`.
    Online { user: u32, at: Loc },
    /// To the user's home worker: the connection at `at` closed.
    Offline { user: u32, at: Loc },
    /// To the user's home worker: tell `user` of a packet, now or at login.
    Notify { user: u32, note: Note },
    /// To the worker holding `at`: push the notification frame.
    Deliver { user: u32, at: ConnKey, note: Note },
    /// To the worker holding `at`: close it, its user logged in elsewhere.
    Kick { at: ConnKey },
    /// To the packet's owner: `user` grabs `packet`; answer to `reply`.
    Grab { user: u32, packet: u32, reply: Loc },
    /// To the grabbing connection's worker: the owner's answer.
    GrabDone {
        at: ConnKey,
        packet: u32,
        amount: u32,
    },
    /// To a packet's future owner: a `/fahongbao` campaign packet.
    CreateSend {
        amount: u32,
        recipients: [u32; redpacket_protocol::MAX_RECIPIENTS],
    },
    /// From the issuer: shake packets for this worker's pool.
    Grant(Vec<ShakePacket>),
}

/// How many user-to-user packets one worker may own, and how many it owns or has been
/// promised. The worker (a client's send) and the issuer (a campaign's packets) both
/// reserve here before a packet exists, with one compare-and-swap, so together they can
/// never pass the cap: a campaign reserves before it counts a packet as issued and
/// waits when nothing is left, and a packet it was promised is never refused.
#[derive(Debug)]
pub struct SendSlots {
    used: AtomicU64,
    cap: u64,
}

impl SendSlots {
    pub fn new(cap: u64) -> SendSlots {
        SendSlots {
            used: AtomicU64::new(0),
            cap,
        }
    }

    /// Takes up to `want` slots; returns how many it got.
    pub fn reserve(&self, want: u64) -> u64 {
        let mut got = 0;
        let _ = self.used.fetch_update(Relaxed, Relaxed, |used| {
            got = want.min(self.cap.saturating_sub(used));
            (got > 0).then_some(used + got)
        });
        got
    }

    /// Gives back `n` slots: packets fully grabbed or expired, or a promise not kept.
    pub fn release(&self, n: u64) {
        let _ = self
            .used
            .fetch_update(Relaxed, Relaxed, |used| Some(used.saturating_sub(n)));
    }

    pub fn used(&self) -> u64 {
        self.used.load(Relaxed)
    }
}

/// The part of a worker the other threads see: its counters, a few gauges the issuer
/// reads, and its inbox. Written by its worker only (the issuer writes `budget`).
#[derive(Debug)]
pub struct WorkerState {
    pub counters: Counters,
    /// Shake packets the worker holds (its pool and its SETs'), published each tick.
    pub held: AtomicU64,
    /// User-to-user packets the worker owns and that are not fully grabbed.
    pub open_sends: AtomicU64,
    /// The worker's share of `--max-outstanding-sends`, reserved before packets exist.
    pub send_slots: SendSlots,
    /// Shake answers per second this worker may give before shedding (set by the issuer).
    pub budget: AtomicU64,
    pub inbox: inbox::Inbox,
}

pub use redpacket_formats::server::{Held, Summary};

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    /// A socket could not be bound (taken port, no permission, bad address).
    Bind {
        what: &'static str,
        addr: SocketAddr,
        err: std::io::Error,
    },
    /// A thread, runtime or epoll set could not be made.
    Spawn(std::io::Error),
    /// The kernel refused `--epoll-busy-poll` (the error says why).
    BusyPoll(std::io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Bind { what, addr, err } => {
                write!(f, "cannot bind the {what} address {addr}: {err}")
            }
            StartError::Spawn(e) => write!(f, "cannot start a thread: {e}"),
            StartError::BusyPoll(e) => write!(f, "--epoll-busy-poll: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A running server.
pub struct ServerHandle {
    pub listen: SocketAddr,
    pub control: SocketAddr,
    /// The connection cap in force (`--max-conns`, or the open-files limit less a
    /// reserve).
    pub max_conns: u64,
    shutdown: CancellationToken,
    stop_control: CancellationToken,
    workers: Vec<JoinHandle<Held>>,
    control_thread: Option<JoinHandle<Held>>,
    state: Arc<ServerState>,
}

/// Everything the threads of one server share, read-only after start.
pub struct ServerState {
    pub cfg: Config,
    pub workers: Box<[WorkerState]>,
    /// The control thread's counter block: the packets campaigns issue and the control
    /// plane's own connections.
    pub control_counters: Arc<Counters>,
    pub max_conns: u64,
    pub started: Instant,
}

impl ServerState {
    /// The state of a server with one worker per configured core, and each worker's
    /// inbox, in worker order: the budget and the send cap split evenly to begin with.
    fn new(
        cfg: Config,
        max_conns: u64,
    ) -> std::io::Result<(Arc<ServerState>, Vec<inbox::Mailbox>)> {
        let n = cfg.cores.len();
        let even_budget = cfg.max_qps / n as u64;
        let send_cap = (cfg.max_outstanding_sends / n as u64).max(1);
        let mut mailboxes = Vec::with_capacity(n);
        let workers: Box<[WorkerState]> = (0..n)
            .map(|_| {
                let (tx, rx) = inbox::inbox()?;
                mailboxes.push(rx);
                Ok(WorkerState {
                    counters: Counters::default(),
                    held: AtomicU64::new(0),
                    open_sends: AtomicU64::new(0),
                    send_slots: SendSlots::new(send_cap),
                    budget: AtomicU64::new(even_budget),
                    inbox: tx,
                })
            })
            .collect::<std::io::Result<_>>()?;
        let state = Arc::new(ServerState {
            cfg,
            workers,
            control_counters: Arc::new(Counters::default()),
            max_conns,
            started: Instant::now(),
        });
        Ok((state, mailboxes))
    }

    /// One consistent read of every counter block.
    pub fn snapshot(&self) -> Snapshot {
        let blocks = self.workers.iter().map(|w| &w.counters);
        let t = Totals::sum(blocks.chain([&*self.control_counters]));
        let uptime = self.started.elapsed().as_secs_f64();
        let mut s = Snapshot::from_totals(&t, self.workers.len(), uptime);
        s.outstanding.send = self
            .workers
            .iter()
            .map(|w| w.open_sends.load(Relaxed))
            .sum();
        s
    }

    /// Each worker's own counters and gauges, in worker order: how evenly the kernel
    /// spread connections and demand, and each worker's win rate (the control thread's
    /// counters are in none of them).
    pub fn worker_snapshots(&self) -> Vec<Snapshot> {
        let uptime = self.started.elapsed().as_secs_f64();
        self.workers
            .iter()
            .map(|w| {
                let mut s = Snapshot::from_totals(&Totals::sum([&w.counters]), 1, uptime);
                s.outstanding.send = w.open_sends.load(Relaxed);
                s
            })
            .collect()
    }

    /// Connections open now, server-wide.
    pub fn open_conns(&self) -> u64 {
        self.workers
            .iter()
            .map(|w| {
                let c = &w.counters;
                c.accepted
                    .load(Relaxed)
                    .saturating_sub(c.closed.load(Relaxed))
            })
            .sum()
    }
}

/// Descriptors the default client cap leaves for the control server's connections and
/// each worker's own (runtime, listener, spare), beyond the fixed reserve: so a flood of
/// control connections can never take a descriptor a client would need.
pub fn descriptors_set_apart(cfg: &Config) -> u64 {
    redpacket_host::reserve::server_set_apart(cfg.control_limits.max_conns as u64, cfg.cores.len())
}

/// The control thread's runtime: single-threaded, I/O and timers.
fn thread_runtime(who: &str) -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            tracing::error!("{who}: cannot build its runtime: {e}");
            None
        }
    }
}

impl Server {
    /// Reads limits, binds every socket, then starts the workers and the control thread.
    pub fn start(cfg: Config) -> Result<ServerHandle, StartError> {
        worker::probe_busy_poll(cfg.epoll_busy_poll).map_err(StartError::BusyPoll)?;
        let (nofile, _) = redpacket_sys::rlimit::raise_nofile();
        let max_conns = cfg.max_conns.unwrap_or_else(|| {
            redpacket_host::reserve::conns_for(nofile)
                .saturating_sub(descriptors_set_apart(&cfg))
                .max(1)
        });

        let (listeners, listen) = listener::bind_group(&cfg).map_err(|err| StartError::Bind {
            what: "listen",
            addr: cfg.listen,
            err,
        })?;
        let control_listener =
            std::net::TcpListener::bind(cfg.control).map_err(|err| StartError::Bind {
                what: "control",
                addr: cfg.control,
                err,
            })?;
        let control = control_listener.local_addr().map_err(StartError::Spawn)?;
        control_listener
            .set_nonblocking(true)
            .map_err(StartError::Spawn)?;
        // Logged once both addresses are ours, so a bind error stays a single line: what
        // this host can hold of the connections this server will take, a warning only
        // when it cannot hold them.
        let capacity = redpacket_host::check::start_line(&redpacket_host::check::StartAsk {
            cores: cfg.cores.clone(),
            control_max_conns: cfg.control_limits.max_conns as u64,
            max_conns,
            given: cfg.max_conns.is_some(),
        });
        if capacity.ok {
            tracing::info!("{}", capacity.line);
        } else {
            tracing::warn!("{}", capacity.line);
        }

        let (state, mailboxes) = ServerState::new(cfg, max_conns).map_err(StartError::Spawn)?;
        let n = state.workers.len();

        let shutdown = CancellationToken::new();
        let stop_control = CancellationToken::new();
        let mut threads = Vec::with_capacity(n);
        for (index, (listener, mailbox)) in listeners.into_iter().zip(mailboxes).enumerate() {
            let (state, token) = (state.clone(), shutdown.clone());
            let t = std::thread::Builder::new()
                .name(format!("worker-{index}"))
                .spawn(move || worker::run(index, state, listener, mailbox, token))
                .map_err(StartError::Spawn)?;
            threads.push(t);
        }
        let control_thread = {
            let (state, shutdown, stop) = (state.clone(), shutdown.clone(), stop_control.clone());
            std::thread::Builder::new()
                .name("control".into())
                .spawn(move || control_thread::run(state, control_listener, shutdown, stop))
                .map_err(StartError::Spawn)?
        };
        let placed = if state.cfg.pinned {
            format!("on CPUs {:?}", state.cfg.cores)
        } else {
            "placed by the kernel (--workers)".to_string()
        };
        tracing::info!(
            "listening on {listen} with {n} workers {placed}; control on http://{control}"
        );
        if let Some(path) = &state.cfg.ready_file {
            let body = serde_json::json!({
                "listen": listen.to_string(),
                "control": control.to_string(),
                "pid": std::process::id(),
            });
            if let Err(e) = std::fs::write(path, format!("{body}\n")) {
                tracing::warn!("cannot write the ready file {}: {e}", path.display());
            }
        }
        Ok(ServerHandle {
            listen,
            control,
            max_conns,
            shutdown,
            stop_control,
            workers: threads,
            control_thread: Some(control_thread),
            state,
        })
    }
}

/// The server, as a library: `Server::start(config)` gives a [`ServerHandle`].
pub struct Server;

impl ServerHandle {
    /// Stops accepting and starts the drain; [`ServerHandle::wait`] finishes it. Each
    /// worker is woken to notice (an idle one sleeps without a timer).
    pub fn shutdown(&self) {
        self.shutdown.cancel();
        for w in self.state.workers.iter() {
            w.inbox.ring();
        }
    }

    /// One consistent read of every counter block.
    pub fn snapshot(&self) -> Snapshot {
        self.state.snapshot()
    }

    /// Each worker's own counters (the control thread's are not in any of them).
    pub fn worker_snapshots(&self) -> Vec<Snapshot> {
        self.state.worker_snapshots()
    }

    /// Shuts down, drains, and returns the final account.
    pub fn stop(self) -> Summary {
        self.shutdown();
        self.wait()
    }

    /// Waits for the drain that [`ServerHandle::shutdown`] started, then checks the
    /// ledger against what the pools and packets actually held.
    pub fn wait(mut self) -> Summary {
        let mut held = Held::default();
        for t in self.workers.drain(..) {
            // A worker that panicked holds nothing we can count; the ledger then shows it.
            held += t.join().unwrap_or_default();
        }
        self.stop_control.cancel();
        if let Some(t) = self.control_thread.take() {
            held += t.join().unwrap_or_default();
        }
        let stats = self.snapshot();
        let shake_balanced = stats.shake.issued_cents == stats.shake.won_cents + held.shake_cents
            && stats.shake.issued == stats.shake.won + held.shake;
        let send_balanced = stats.send.created_cents
            == stats.send.grabbed_cents + stats.send.refunded_cents + held.send_cents;
        Summary {
            stats,
            held,
            shake_balanced,
            send_balanced,
            ..Default::default()
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        // A handle dropped without wait() still stops its threads.
        self.shutdown();
        self.stop_control.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::SendSlots;

    #[test]
    fn send_slots_never_pass_their_cap() {
        let s = SendSlots::new(10);
        assert_eq!(s.reserve(4), 4);
        assert_eq!(s.reserve(10), 6, "only what is left");
        assert_eq!(s.reserve(1), 0, "full: wait");
        s.release(3);
        assert_eq!(s.used(), 7);
        assert_eq!(s.reserve(5), 3);
        // Reservations from two threads at once still add up to the cap exactly.
        s.release(10);
        let got: u64 = std::thread::scope(|t| {
            let a = t.spawn(|| (0..1000).map(|_| s.reserve(1)).sum::<u64>());
            let b = t.spawn(|| (0..1000).map(|_| s.reserve(1)).sum::<u64>());
            a.join().unwrap() + b.join().unwrap()
        });
        assert_eq!(got, 10);
    }
}
