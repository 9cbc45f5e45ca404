//! The coordinator: checks limits, starts the workers (threads, or child processes with
//! `--procs`), walks the plan, writes a line per second, drains, reconciles money with
//! the servers and writes the summary.
//!
//! It is the only place that knows about time in whole phases; workers only see the
//! atomics in [`RunState`]. In a child process (`--child`), the plan comes from the parent
//! as lines on stdin and the figures go back as lines on stdout (see [`crate::procs`]).
//!
//! Beside this module's orchestration: `progress` (the terminal's status line),
//! `servers` (the servers' HTTP: campaigns and the money check's `/stats`) and
//! `control` (the `--control` listener's `/qps` handler).

use crate::engine::{self, WorkerConfig};
use crate::http;
use crate::metrics::Tally;
use crate::output;
use crate::procs::pipe;
use crate::procs::{self, Children};
use crate::run_config::RunConfig;
use crate::run_state::{RunState, MODE_CONNECT, MODE_DRAIN, MODE_LOAD, MODE_STOP};
use crate::users::{split_even, Targets};
use redpacket_formats::{LoadgenSummary, Money, PhaseSummary};
use redpacket_host::check;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How a run ended.
pub struct Outcome {
    pub summary: Option<LoadgenSummary>,
    /// Phase boundaries, the connect ramp first: (name, target shakes/s, start, end),
    /// unix seconds.
    pub boundaries: Vec<(String, f64, f64, f64)>,
    pub exit_code: i32,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// `eprintln!` that keeps off the live status line ([`note_line`]).
macro_rules! note {
    ($($t:tt)*) => {
        $crate::run::note_line(format_args!($($t)*))
    };
}

mod control;
mod progress;
mod servers;

use progress::Progress;
pub use progress::{end_live_line, note_line};
pub use servers::fetch_stats;

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Relaxed);
}

fn install_signal_handlers() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

pub fn unix_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The monotonic instant at which the wall clock will read `unix` (now, if it is past).
fn instant_at(unix: f64) -> Instant {
    let ahead = unix - unix_f64();
    let now = Instant::now();
    if ahead > 0.0 && ahead.is_finite() {
        now + Duration::from_secs_f64(ahead)
    } else {
        now
    }
}

/// Checks a `--start-at` instant against the clock when the program starts: it must be
/// still to come, and less than a day away (a later one is a mistake, such as
/// milliseconds given for seconds).
pub fn check_start_at(at: f64, now: f64) -> Result<(), String> {
    if !at.is_finite() {
        return Err(format!("--start-at {at}: not a unix time in seconds"));
    }
    if at <= now {
        return Err(format!(
            "--start-at {at}: that instant is {:.3} s in the past (the clock reads {now:.3}); \
             give a unix time still to come, e.g. $(( $(date +%s) + 30 ))",
            now - at
        ));
    }
    if at - now > 86_400.0 {
        return Err(format!(
            "--start-at {at}: that is {:.0} s from now, more than a day; unix seconds \
             are expected (the clock reads {now:.0})",
            at - now
        ));
    }
    Ok(())
}

/// Runs the whole thing; errors are one line for the user (exit code 2 for limits).
pub fn run(cfg: RunConfig) -> Result<Outcome, (i32, String)> {
    if cfg.child {
        // Ctrl-C reaches the whole process group: a child stops when its parent says.
        // SAFETY: setting a signal's disposition to "ignore".
        unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    } else {
        install_signal_handlers();
    }
    redpacket_sys::rlimit::raise_nofile();
    let targets = Targets::new(&cfg.servers, cfg.all_users, cfg.users).map_err(|e| (2, e))?;
    if !cfg.child {
        // The same arithmetic as `redpacket-loadgen check`, on its limits only (open
        // files, memory, ports): the kernel settings it advises on never stop a run. Its
        // servers are the addresses this run's users connect to, as the fleet's plan
        // lists them for `check --servers`.
        let ask = check::LoadgenAsk {
            users: u64::from(cfg.users.len()),
            source_addrs: cfg.source_addrs.len().max(1) as u64,
            servers: targets.servers_of(cfg.users).max(1) as u64,
            procs: cfg.procs.max(1) as u64,
        };
        let report = check::loadgen(&ask, None, &check::HostView::read(None));
        if !report.ok {
            return Err((
                2,
                format!(
                    "this host cannot hold {} users as it is: {} (see `redpacket-loadgen check`)",
                    report.asked, report.first_to_raise
                ),
            ));
        }
    }
    let mut coord = Coordinator::start(&cfg, &targets)?;
    coord.run(&cfg, &targets)
}

struct Coordinator {
    shared: Arc<RunState>,
    threads: Vec<std::thread::JoinHandle<()>>,
    children: Option<Children>,
    jsonl: Option<std::io::BufWriter<std::fs::File>>,
    /// This host's sampler (net.jsonl); stops when the coordinator is dropped.
    _sampler: Option<redpacket_host::sampler::SamplerHandle>,
    phase_name: String,
    /// When each phase began (unix s), to label each second by the phase at its middle.
    phase_log: Vec<(f64, String)>,
    next_tick: f64,
    last_tick: f64,
    /// The progress shown on stderr.
    progress: Progress,
    connected_at_end: u64,
    totals: Tally,
    forwarded: (u8, usize, f64, f64),
}

impl Coordinator {
    fn start(cfg: &RunConfig, targets: &Targets) -> Result<Coordinator, (i32, String)> {
        let (shared, threads, children) = if cfg.procs > 1 && !cfg.child {
            let slices = split_even(cfg.users, cfg.procs);
            let shared = Arc::new(RunState::new(cfg.all_users, &slices));
            let children =
                procs::spawn_children(cfg, &slices, shared.clone()).map_err(|e| (1, e))?;
            (shared, Vec::new(), Some(children))
        } else {
            let threads = cfg.threads.clamp(1, cfg.users.len().max(1) as usize);
            let slices = split_even(cfg.users, threads);
            let shared = Arc::new(RunState::new(cfg.all_users, &slices));
            let cores = if cfg.pin {
                core_affinity::get_core_ids().unwrap_or_default()
            } else {
                Vec::new()
            };
            let mut handles = Vec::new();
            for i in 0..threads {
                let wc = WorkerConfig {
                    index: i,
                    targets: targets.clone(),
                    source_addrs: cfg.source_addrs.clone(),
                    connect_rate: cfg.connect_rate / threads as f64,
                    timeout: cfg.timeout,
                    connect_timeout: cfg.connect_timeout,
                    reconnect: cfg.reconnect,
                    think_ms: cfg.think_ms,
                    send_cents: cfg.send_cents,
                    core: (!cores.is_empty()).then(|| cores[i % cores.len()]),
                    seed: cfg.seed.wrapping_add(i as u64 * 0x9e37_79b9),
                    tick_ns: cfg.tick.as_nanos() as u64,
                };
                handles.push(
                    engine::spawn(shared.clone(), wc)
                        .map_err(|e| (1, format!("cannot start a worker: {e}")))?,
                );
            }
            (shared, handles, None)
        };
        // The host's network, TCP, CPU and memory once a second, beside our own log;
        // dropping the handle at the end of the run stops it.
        let sampler = match &cfg.out {
            Some(dir) if !cfg.child && cfg.sample_host => {
                match redpacket_host::sampler::record_host(dir) {
                    Ok(h) => Some(h),
                    Err(e) => {
                        note!(
                            "loadgen: cannot sample this host into {}: {e}",
                            dir.display()
                        );
                        None
                    }
                }
            }
            _ => None,
        };
        let jsonl = match &cfg.out {
            Some(dir) if !cfg.child => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| (1, format!("cannot create {}: {e}", dir.display())))?;
                let f = std::fs::File::create(dir.join("loadgen.jsonl"))
                    .map_err(|e| (1, format!("cannot write in {}: {e}", dir.display())))?;
                Some(std::io::BufWriter::new(f))
            }
            _ => None,
        };
        if let Some(addr) = cfg.control.filter(|_| !cfg.child) {
            let l = std::net::TcpListener::bind(addr)
                .map_err(|e| (1, format!("--control {addr}: {e}")))?;
            let bound = l.local_addr().map_err(|e| (1, e.to_string()))?;
            if !cfg.quiet {
                note!("loadgen: control on http://{bound}/qps?qps=X");
            }
            let sh = shared.clone();
            http::serve(l, http::Limits::default(), move |target| {
                control::control(&sh, target)
            })
            .map_err(|e| (1, e.to_string()))?;
        }
        Ok(Coordinator {
            shared,
            threads,
            children,
            jsonl,
            _sampler: sampler,
            phase_name: "connect".into(),
            phase_log: vec![(0.0, "connect".into())],
            next_tick: (unix_f64().floor()) + 1.0,
            last_tick: unix_f64(),
            progress: Progress::new(),
            connected_at_end: 0,
            totals: Tally::default(),
            forwarded: (MODE_CONNECT, 0, 0.0, 0.0),
        })
    }

    /// Sends changed atomics on to the children, if any.
    fn forward(&mut self) {
        let s = &self.shared;
        let now = (
            s.mode.load(Relaxed),
            s.phase.load(Relaxed),
            s.qps(),
            s.send_rate(),
        );
        if let Some(ch) = self.children.as_mut() {
            if now != self.forwarded {
                ch.command(&format!("set {} {} {} {}", now.0, now.1, now.2, now.3));
            }
        }
        self.forwarded = now;
    }

    /// Sleeps until `until` (or `done()`), writing a line at every whole second.
    fn wait(&mut self, cfg: &RunConfig, until: Instant, mut done: impl FnMut(&RunState) -> bool) {
        loop {
            self.forward();
            let now = Instant::now();
            if now >= until || done(&self.shared) || INTERRUPTED.load(Relaxed) {
                return;
            }
            let to_tick = self.next_tick - unix_f64();
            if to_tick <= 0.0 {
                self.tick(cfg);
                continue;
            }
            let step = until
                .saturating_duration_since(now)
                .min(Duration::from_millis(50));
            std::thread::sleep(step.min(Duration::from_secs_f64(to_tick)));
        }
    }

    fn tick(&mut self, cfg: &RunConfig) {
        let now = unix_f64();
        // A line covers up to its `t`: a whole second, or less for the last one.
        let t = self.next_tick.min(now);
        let interval_s = (t - self.last_tick).clamp(0.0, 3600.0);
        self.last_tick = t;
        self.next_tick += 1.0;
        if self.next_tick < now {
            self.next_tick = now.floor() + 1.0;
        }
        let tally = self.shared.take_interval();
        self.totals.counts.add(&tally.counts);
        let connected = self.shared.connected();
        let inflight = self.shared.inflight();
        let by_source = self.shared.by_source();
        if cfg.child {
            pipe::emit_second(&tally, connected, inflight, &by_source);
            return;
        }
        let target =
            self.shared.qps() * f64::from(cfg.users.len()) / f64::from(cfg.all_users.len().max(1));
        let label = self.phase_at(t - interval_s / 2.0).to_string();
        let by_addr = cfg
            .source_addrs
            .iter()
            .zip(by_source.iter())
            .map(|(a, n)| (a.to_string(), *n))
            .collect();
        let line = output::second_line(
            (t * 1000.0).round() / 1000.0,
            (interval_s * 1000.0).round() / 1000.0,
            &label,
            target,
            &tally,
            connected,
            inflight,
            by_addr,
        );
        if let Some(w) = self.jsonl.as_mut() {
            if let Err(e) = output::write_line(w, &line) {
                note!("loadgen: cannot write loadgen.jsonl: {e}");
            }
        }
        if !cfg.quiet {
            self.progress
                .show(&self.phase_name, &line, connected, cfg.users.len());
        }
    }

    fn enter(&mut self, name: &str) {
        self.phase_name = name.to_string();
        self.phase_log.push((unix_f64(), name.to_string()));
    }

    /// The phase running at unix time `at`.
    fn phase_at(&self, at: f64) -> &str {
        self.phase_log
            .iter()
            .rev()
            .find(|(start, _)| *start <= at)
            .map(|(_, n)| n.as_str())
            .unwrap_or("connect")
    }

    fn set(&mut self, mode: u8, phase: usize, qps: f64, send: f64) {
        self.shared.set_qps(qps);
        self.shared.set_send_rate(send);
        self.shared.phase.store(phase, Relaxed);
        self.shared.mode.store(mode, Relaxed);
        self.forward();
    }

    fn run(&mut self, cfg: &RunConfig, targets: &Targets) -> Result<Outcome, (i32, String)> {
        let users = u64::from(cfg.users.len());
        // The connect ramp; with --start-at the instant ends it, not the deadline.
        let ramp_start = Instant::now();
        let ramp_unix = unix_f64();
        let deadline = match cfg.start_at {
            Some(at) => instant_at(at),
            None => ramp_start + Duration::from_secs_f64(cfg.connect_deadline_s),
        };
        if cfg.child {
            // The parent's `set` lines may arrive while this child still ramps.
            pipe::follow_parent(self.shared.clone());
        }
        self.wait(cfg, deadline, |s| {
            s.connected() >= users || s.mode.load(Relaxed) != MODE_CONNECT
        });
        let connect_s = ramp_start.elapsed().as_secs_f64();
        if cfg.child {
            pipe::emit_connected(self.shared.connected());
            return self.run_child(cfg);
        }
        if let Some(at) = cfg.start_at {
            // Ramp done before the instant: hold (a line a second) until it comes.
            let until = instant_at(at);
            if !cfg.quiet && Instant::now() < until {
                note!(
                    "loadgen: {} of {users} users connected in {connect_s:.1} s; load begins at {at:.3} (in {:.1} s)",
                    self.shared.connected(),
                    until.saturating_duration_since(Instant::now()).as_secs_f64()
                );
            }
            self.wait(cfg, until, |_| false);
        }
        if self.shared.connected() == 0 && !INTERRUPTED.load(Relaxed) {
            // Nothing to measure: say why instead of running the plan against nobody.
            self.stop();
            let last = self.shared.take_interval();
            self.totals.counts.add(&last.counts);
            let why: Vec<String> = self
                .totals
                .counts
                .failures()
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            let servers: Vec<String> = cfg.servers.iter().map(|s| s.to_string()).collect();
            return Err((
                1,
                format!(
                    "no user could log in to {} within {:.0} s (failed attempts: {})",
                    servers.join(", "),
                    connect_s,
                    if why.is_empty() {
                        "none".into()
                    } else {
                        why.join(", ")
                    }
                ),
            ));
        }
        // Users still connecting keep connecting during the first phase; their shakes
        // count as `not_connected` errors until they are in.
        let not_connected_at_start = users.saturating_sub(self.shared.connected());
        if not_connected_at_start > 0 && !cfg.quiet {
            note!(
                "loadgen: load begins with {not_connected_at_start} of {users} users not yet connected (ramp cut by {}); they keep connecting",
                if cfg.start_at.is_some() { "--start-at" } else { "--connect-deadline" }
            );
        }
        let mut boundaries = vec![("connect".to_string(), 0.0, ramp_unix, unix_f64())];
        let mut phase_summaries_input = Vec::new();
        // Phases follow one clock from the first one's start, so their boundaries fall
        // at start + the durations before them, however long each switch took.
        let anchor = Instant::now();
        let mut offset = 0.0;
        for (i, p) in cfg.plan.iter().enumerate() {
            if INTERRUPTED.load(Relaxed) {
                break;
            }
            self.enter(&p.name);
            let start = unix_f64();
            self.set(
                MODE_LOAD,
                i + 1,
                p.qps,
                p.send_rate.unwrap_or(cfg.send_rate),
            );
            servers::start_campaigns(cfg, targets, p);
            offset += p.duration_s;
            self.wait(cfg, anchor + Duration::from_secs_f64(offset), |_| false);
            let end = unix_f64();
            boundaries.push((p.name.clone(), p.qps, start, end));
            phase_summaries_input.push((p.name.clone(), self.shared.qps(), start, end));
        }
        self.connected_at_end = self.shared.connected();
        // Drain: nothing new; wait for what is in flight.
        self.enter("drain");
        // The phase index stays: late answers belong to the last phase.
        let last_phase = self.shared.phase.load(Relaxed);
        self.set(MODE_DRAIN, last_phase, 0.0, 0.0);
        let drain_until = Instant::now() + cfg.timeout + Duration::from_secs(1);
        let children = self.children.is_some();
        self.wait(cfg, drain_until, |s| s.inflight() == 0 && !children);
        if children {
            // Children report in-flight counts once a second: wait for two quiet reports.
            let mut quiet = 0;
            while Instant::now() < drain_until && quiet < 2 {
                self.wait(cfg, Instant::now() + Duration::from_millis(1100), |_| false);
                quiet = if self.shared.inflight() == 0 {
                    quiet + 1
                } else {
                    0
                };
            }
        }
        // Let every worker flush, then write the last (partial) second: the totals the
        // money check uses must hold every answer.
        std::thread::sleep(Duration::from_millis(60));
        self.tick(cfg);
        let money = self.reconcile(cfg);
        self.set(MODE_STOP, last_phase, 0.0, 0.0);
        self.stop();
        let last = self.shared.take_interval();
        self.totals.counts.add(&last.counts);
        let tallies: Vec<Tally> = (0..phase_summaries_input.len())
            .map(|i| self.shared.phase_tally(i + 1))
            .collect();
        let phases: Vec<PhaseSummary> = phase_summaries_input
            .iter()
            .zip(&tallies)
            .map(|((name, q, s, e), t)| output::phase_summary(name, *q, *s, *e, t))
            .collect();
        let mut verdict = output::judge(&phases, cfg.max_p99_ms, cfg.max_error_rate);
        if cfg.money_check && money.reconciled == Some(false) {
            verdict.passed = false;
            verdict.failures.push(format!("money: {}", money.note));
        }
        if let Some(min) = cfg.min_connected.filter(|m| self.connected_at_end < *m) {
            verdict.passed = false;
            verdict.failures.push(format!(
                "users: {} of {min} logged in at the end",
                self.connected_at_end
            ));
        }
        if INTERRUPTED.load(Relaxed) {
            verdict.passed = false;
            verdict.failures.push("interrupted".into());
        }
        let summary = LoadgenSummary {
            users: cfg.users.to_string(),
            phases,
            connections: output::connections(&self.totals.counts, self.connected_at_end),
            connect_s: output::round2(connect_s),
            start_at: cfg.start_at,
            users_not_connected_at_start: not_connected_at_start,
            money,
            verdict,
        };
        if let Some(dir) = &cfg.out {
            output::write_summary(dir, &summary).map_err(|e| (1, e))?;
            let hist: Vec<(String, f64, f64, &Tally)> = phase_summaries_input
                .iter()
                .zip(&tallies)
                .map(|((name, _, s, e), t)| (name.clone(), *s, *e, t))
                .collect();
            output::write_histograms(dir, &hist).map_err(|e| (1, e))?;
        }
        let code = if summary.verdict.passed { 0 } else { 1 };
        Ok(Outcome {
            summary: Some(summary),
            boundaries,
            exit_code: code,
        })
    }

    /// A child follows the parent's `set` lines until told to stop.
    fn run_child(&mut self, cfg: &RunConfig) -> Result<Outcome, (i32, String)> {
        self.wait(cfg, Instant::now() + Duration::from_secs(7 * 86_400), |s| {
            s.mode.load(Relaxed) == MODE_STOP
        });
        self.stop();
        let last = self.shared.take_interval();
        let (c, i) = (self.shared.connected(), self.shared.inflight());
        pipe::emit_second(&last, c, i, &self.shared.by_source());
        let phases = self
            .shared
            .workers
            .iter()
            .map(|w| w.phases.lock().map(|p| p.len()).unwrap_or(0))
            .max();
        for i in 0..phases.unwrap_or(0) {
            pipe::emit_phase(i, &self.shared.phase_tally(i));
        }
        pipe::emit_done();
        Ok(Outcome {
            summary: None,
            boundaries: Vec::new(),
            exit_code: 0,
        })
    }

    fn stop(&mut self) {
        self.progress.close();
        self.shared.mode.store(MODE_STOP, Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(ch) = self.children.take() {
            ch.finish();
        }
    }

    /// Reads every server's `/stats` and compares money with what clients saw.
    fn reconcile(&mut self, cfg: &RunConfig) -> Money {
        servers::reconcile(&self.totals.counts.packets, &cfg.server_controls)
    }
}
