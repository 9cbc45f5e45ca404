//! The coordinator: the one place that knows about time in whole phases. It walks the
//! plan step by step (ramp, hold for `--start-at`, phases, drain, summary), writes a
//! line per second and steers the workers through the atomics of [`RunState`].
//!
//! Its seconds are whole seconds of the wall clock (the clock `--start-at` uses), each
//! line stamped with the second it covers, so that lines of many processes and hosts
//! add up second by second. A child ticks on them and sends each second, stamped, to
//! its parent; the parent writes line `k` from every child's record stamped `k`, once
//! all have sent theirs or [`CHILD_GRACE_S`] after `k` (a later record goes into the
//! next line, and is counted).

use super::clock::{instant_at, unix_f64};
use super::live::Live;
use super::progress::Progress;
use super::summary::{self, PhaseRun};
use super::{servers, signals, start};
use crate::metrics::Tally;
use crate::output;
use crate::procs::{pipe, Children};
use crate::run_config::RunConfig;
use crate::run_state::{RunState, MODE_CONNECT, MODE_DRAIN, MODE_LOAD, MODE_STOP};
use crate::users::Targets;
use redpacket_formats::LoadgenSummary;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long after a whole second a `--procs` parent waits for a child's record of it
/// before writing the line without it. A child sends its record within milliseconds of
/// the second; this covers a child that a busy machine did not schedule at once (with a
/// million users on two CPUs, 0.3 s let every child's record of a second miss its line
/// now and then). Under the live view's deadline (2 s), so the line is still in time.
const CHILD_GRACE_S: f64 = 1.5;

/// How often a phase's wait wakes between its seconds to notice a signal: the workers
/// are woken by what changes, and an idle phase should cost next to nothing.
const QUIET_POLL: Duration = Duration::from_millis(250);

/// How a run ended.
pub struct Outcome {
    pub summary: Option<LoadgenSummary>,
    /// Phase boundaries, the connect ramp first: (name, target shakes/s, start, end),
    /// unix seconds.
    pub boundaries: Vec<(String, f64, f64, f64)>,
    pub exit_code: i32,
}

/// A run in progress, as its coordinator holds it.
pub struct Coordinator {
    shared: Arc<RunState>,
    threads: Vec<std::thread::JoinHandle<()>>,
    children: Option<Children>,
    jsonl: Option<std::io::BufWriter<std::fs::File>>,
    /// This host's sampler (net.jsonl); stops when the coordinator is dropped.
    _sampler: Option<redpacket_host::sampler::SamplerHandle>,
    phase_name: String,
    /// When each phase began (unix s), to label each second by the phase at its middle.
    phase_log: Vec<(f64, String)>,
    /// The whole second (unix) the next line covers up to.
    next_tick: f64,
    /// Where the last line ended (unix): the start of the next line's interval.
    last_tick: f64,
    /// The stamp of the last line written: a child's record stamped so is late.
    written: i64,
    /// Children's records that came after their second's line was written.
    late_records: u64,
    /// The progress shown on stderr.
    progress: Progress,
    totals: Tally,
    /// The run so far, as `/metrics` serves it (updated with each line).
    live: Arc<Mutex<Live>>,
    forwarded: (u8, usize, f64, f64),
}

/// How the connect ramp went.
struct Ramp {
    /// When it began, unix seconds.
    start_unix: f64,
    /// How long it lasted.
    connect_s: f64,
}

impl Coordinator {
    /// Starts the workers, the host sampler, `loadgen.jsonl` and `--control`.
    pub fn start(cfg: &RunConfig, targets: &Targets) -> Result<Coordinator, (i32, String)> {
        let workers = start::workers(cfg, targets)?;
        let sampler = start::host_sampler(cfg);
        let jsonl = start::jsonl(cfg)?;
        let live = Arc::new(Mutex::new(Live {
            phase: "connect".into(),
            ..Live::default()
        }));
        start::control_listener(cfg, &workers.shared, &live)?;
        Ok(Coordinator {
            shared: workers.shared,
            threads: workers.threads,
            children: workers.children,
            jsonl,
            _sampler: sampler,
            phase_name: "connect".into(),
            phase_log: vec![(0.0, "connect".into())],
            next_tick: unix_f64().floor() + 1.0,
            last_tick: unix_f64(),
            written: unix_f64().floor() as i64,
            late_records: 0,
            progress: Progress::new(),
            totals: Tally::default(),
            live,
            forwarded: (MODE_CONNECT, 0, 0.0, 0.0),
        })
    }

    /// The run, step by step: ramp, (a child follows its parent from here), hold until
    /// `--start-at`, the phases, drain, money, summary.
    pub fn run(&mut self, cfg: &RunConfig, targets: &Targets) -> Result<Outcome, (i32, String)> {
        let ramp = self.ramp(cfg);
        if cfg.child {
            pipe::emit_connected(self.shared.connected());
            // From here a child's own thread only cuts and sends its seconds, at normal
            // priority: a second holds what the workers counted until this thread takes
            // it, so a cut made late moves counts into the wrong second. Lowered to nice
            // 19, it was taken hundreds of milliseconds late on two busy CPUs (a million
            // users at 30 000/s: client per-second CV 4-8 % against the servers' 0.1-0.5).
            return self.run_child(cfg);
        }
        self.hold_for_start_at(cfg, ramp.connect_s);
        if self.shared.connected() == 0 && !signals::interrupted() {
            return Err(self.nobody_logged_in(cfg, ramp.connect_s));
        }
        let not_connected_at_start = self.note_late_users(cfg);
        let ramp_end = unix_f64();
        let runs = self.run_phases(cfg, targets);
        let connected_at_end = self.shared.connected();
        let last_phase = self.drain(cfg);
        let money = servers::reconcile(&self.totals.counts.packets, &cfg.server_controls);
        self.set(MODE_STOP, last_phase, 0.0, 0.0);
        self.stop_and_count();
        self.note_late_records();
        let tallies: Vec<Tally> = (0..runs.len())
            .map(|i| self.shared.phase_tally(i + 1))
            .collect();
        let summary = summary::summarize(
            cfg,
            summary::Ends {
                connect_s: ramp.connect_s,
                not_connected_at_start,
                connected_at_end,
                interrupted: signals::interrupted(),
                late_child_records: self.late_records,
            },
            &runs,
            &tallies,
            &self.totals,
            money,
        );
        if let Some(dir) = &cfg.out {
            summary::write(dir, &summary, &runs, &tallies).map_err(|e| (1, e))?;
        }
        let boundaries = std::iter::once(("connect".to_string(), 0.0, ramp.start_unix, ramp_end))
            .chain(
                runs.iter()
                    .map(|r| (r.name.clone(), r.planned_qps, r.start, r.end)),
            )
            .collect();
        Ok(Outcome {
            exit_code: if summary.verdict.passed { 0 } else { 1 },
            summary: Some(summary),
            boundaries,
        })
    }

    /// The connect ramp: until every user is in, the deadline (or the `--start-at`
    /// instant, which ends it instead) or the parent says otherwise.
    fn ramp(&mut self, cfg: &RunConfig) -> Ramp {
        let users = u64::from(cfg.users.len());
        let ramp_start = Instant::now();
        let start_unix = unix_f64();
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
        Ramp {
            start_unix,
            connect_s: ramp_start.elapsed().as_secs_f64(),
        }
    }

    /// Ramp done before the `--start-at` instant: hold (a line a second) until it comes.
    fn hold_for_start_at(&mut self, cfg: &RunConfig, connect_s: f64) {
        let Some(at) = cfg.start_at else { return };
        let until = instant_at(at);
        if !cfg.quiet && Instant::now() < until {
            note!(
                "loadgen: {} of {} users connected in {connect_s:.1} s; load begins at {at:.3} (in {:.1} s)",
                self.shared.connected(),
                cfg.users.len(),
                until.saturating_duration_since(Instant::now()).as_secs_f64()
            );
        }
        self.wait_until(cfg, until);
    }

    /// Nothing to measure: stops, and says why instead of running the plan against
    /// nobody.
    fn nobody_logged_in(&mut self, cfg: &RunConfig, connect_s: f64) -> (i32, String) {
        self.stop_and_count();
        let why: Vec<String> = self
            .totals
            .counts
            .failures()
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let servers: Vec<String> = cfg.servers.iter().map(|s| s.to_string()).collect();
        (
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
        )
    }

    /// Users still connecting keep connecting during the first phase; their shakes count
    /// as `not_connected` errors until they are in. Says so; returns how many.
    fn note_late_users(&self, cfg: &RunConfig) -> u64 {
        let users = u64::from(cfg.users.len());
        let late = users.saturating_sub(self.shared.connected());
        if late > 0 && !cfg.quiet {
            note!(
                "loadgen: load begins with {late} of {users} users not yet connected (ramp cut by {}); they keep connecting",
                if cfg.start_at.is_some() { "--start-at" } else { "--connect-deadline" }
            );
        }
        late
    }

    /// The plan's phases, one after the other on one clock from the first one's start,
    /// so their boundaries fall at start + the durations before them, however long each
    /// switch took.
    fn run_phases(&mut self, cfg: &RunConfig, targets: &Targets) -> Vec<PhaseRun> {
        let mut runs = Vec::new();
        let anchor = Instant::now();
        let mut offset = 0.0;
        for (i, p) in cfg.plan.iter().enumerate() {
            if signals::interrupted() {
                break;
            }
            self.enter(&p.name);
            let start = unix_f64();
            let send_rate = p.send_rate.unwrap_or(cfg.send_rate);
            self.set(MODE_LOAD, i + 1, p.qps, send_rate);
            servers::start_campaigns(cfg, targets, p);
            offset += p.duration_s;
            self.wait_until(cfg, anchor + Duration::from_secs_f64(offset));
            runs.push(PhaseRun {
                name: p.name.clone(),
                planned_qps: p.qps,
                qps: self.shared.qps(),
                start,
                end: unix_f64(),
            });
        }
        runs
    }

    /// Drain: nothing new; waits for what is in flight, then writes the last (partial)
    /// second. Returns the last phase's index (late answers belong to it).
    fn drain(&mut self, cfg: &RunConfig) -> usize {
        self.enter("drain");
        let last_phase = self.shared.phase.load(Relaxed);
        self.set(MODE_DRAIN, last_phase, 0.0, 0.0);
        let drain_until = Instant::now() + cfg.timeout + Duration::from_secs(1);
        let children = self.children.is_some();
        self.wait(cfg, drain_until, |s| s.inflight() == 0 && !children);
        if children {
            // Children report in-flight counts once a second: wait for two quiet reports.
            let mut quiet = 0;
            while Instant::now() < drain_until && quiet < 2 {
                self.wait_until(cfg, Instant::now() + Duration::from_millis(1100));
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
        self.tick_last(cfg);
        last_phase
    }

    /// Says how many of the children's seconds came too late for their own line.
    /// (Not a progress line: said also with `--quiet`.)
    fn note_late_records(&self) {
        if self.late_records > 0 {
            note!(
                "loadgen: {} per-second records of child processes came more than {CHILD_GRACE_S} s after their second; each was added to the next line written",
                self.late_records
            );
        }
    }

    /// Stops the workers and adds what they counted since the last second to the totals.
    fn stop_and_count(&mut self) {
        self.stop();
        let last = self.shared.take_interval();
        self.totals.counts.add(&last.counts);
        if let Ok(mut l) = self.live.lock() {
            let target = l.target_qps;
            l.add(&last, &self.phase_name, target);
        }
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

    /// Sleeps until `until`, writing a line at every whole second (with children, once
    /// they sent theirs): between seconds it wakes only every [`QUIET_POLL`], to notice
    /// a signal (an idle phase costs a few wake-ups a second).
    fn wait_until(&mut self, cfg: &RunConfig, until: Instant) {
        self.wait_polling(cfg, until, QUIET_POLL, |_| false)
    }

    /// Sleeps until `until` or `done()`, looked at every 50 ms, writing a line at every
    /// whole second.
    fn wait(&mut self, cfg: &RunConfig, until: Instant, done: impl FnMut(&RunState) -> bool) {
        self.wait_polling(cfg, until, Duration::from_millis(50), done)
    }

    fn wait_polling(
        &mut self,
        cfg: &RunConfig,
        until: Instant,
        poll: Duration,
        mut done: impl FnMut(&RunState) -> bool,
    ) {
        loop {
            self.forward();
            let now = Instant::now();
            if now >= until || done(&self.shared) || signals::interrupted() {
                return;
            }
            let to_tick = self.next_tick - unix_f64();
            let mut step = until.saturating_duration_since(now).min(poll);
            if to_tick <= 0.0 {
                if self.line_is_due(-to_tick) {
                    self.tick(cfg);
                    continue;
                }
                // Waiting for children's records: look again soon.
                step = step.min(Duration::from_millis(5));
            } else {
                step = step.min(Duration::from_secs_f64(to_tick));
            }
            std::thread::sleep(step);
        }
    }

    /// Whether the line of the second `next_tick`, ended `past_s` ago, may be written:
    /// at once without children; with them, once every child still running sent its
    /// record of that second, or the grace is over.
    fn line_is_due(&self, past_s: f64) -> bool {
        self.children.is_none()
            || past_s >= CHILD_GRACE_S
            || self.shared.all_reported(self.next_tick as i64)
    }

    /// Writes the line of the whole second `next_tick` (in a child: sends it to the
    /// parent).
    fn tick(&mut self, cfg: &RunConfig) {
        let t = self.next_tick;
        let k = t as i64;
        let tally = if self.children.is_some() {
            let (tally, late) = self.shared.take_seconds(k, self.written);
            self.late_records += late;
            tally
        } else {
            self.shared.take_interval()
        };
        self.written = k;
        let now = unix_f64();
        self.next_tick += 1.0;
        if self.next_tick < now {
            // Fell behind by more than a second (suspended?): the next line covers the
            // seconds missed, up to the next whole one.
            self.next_tick = now.floor() + 1.0;
        }
        self.write_second(cfg, t, tally);
    }

    /// Writes the last line: the whole seconds still due, then the partial second up to
    /// now, with everything counted and not yet written.
    fn tick_last(&mut self, cfg: &RunConfig) {
        loop {
            let past_s = unix_f64() - self.next_tick;
            if past_s < 0.0 {
                break;
            }
            if self.line_is_due(past_s) {
                self.tick(cfg);
            } else {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let tally = if self.children.is_some() {
            let (tally, late) = self.shared.take_seconds(i64::MAX, self.written);
            self.late_records += late;
            tally
        } else {
            self.shared.take_interval()
        };
        self.write_second(cfg, unix_f64(), tally);
    }

    /// The line of the interval from the last line to `t` (in a child: sends it to the
    /// parent).
    fn write_second(&mut self, cfg: &RunConfig, t: f64, tally: Tally) {
        let interval_s = (t - self.last_tick).clamp(0.0, 3600.0);
        self.last_tick = t;
        self.totals.counts.add(&tally.counts);
        let connected = self.shared.connected();
        let inflight = self.shared.inflight();
        let by_source = self.shared.by_source();
        if cfg.child {
            let g = pipe::Gauges {
                connected,
                inflight,
                by_source: &by_source,
            };
            pipe::emit_second(t, interval_s, tally, g);
            return;
        }
        let target =
            self.shared.qps() * f64::from(cfg.users.len()) / f64::from(cfg.all_users.len().max(1));
        if let Ok(mut l) = self.live.lock() {
            l.add(&tally, &self.phase_name, target);
        }
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
        if !cfg.quiet && !cfg.live_view {
            self.progress
                .show(&self.phase_name, &line, connected, cfg.users.len());
        }
    }

    /// Marks the start of phase `name`.
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

    /// Steers the workers: mode, phase index and rates.
    fn set(&mut self, mode: u8, phase: usize, qps: f64, send: f64) {
        self.shared.set_qps(qps);
        self.shared.set_send_rate(send);
        self.shared.set_mode(mode, Some(phase));
        self.forward();
    }

    /// A child follows the parent's `set` lines until told to stop (looked at every
    /// [`QUIET_POLL`]: fifty idle children woken twenty times a second were most of
    /// an idle run's cost).
    fn run_child(&mut self, cfg: &RunConfig) -> Result<Outcome, (i32, String)> {
        let forever = Instant::now() + Duration::from_secs(7 * 86_400);
        self.wait_polling(cfg, forever, QUIET_POLL, |s| {
            s.mode.load(Relaxed) == MODE_STOP
        });
        self.stop();
        self.tick_last(cfg);
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

    /// Stops every worker (threads joined, children waited for).
    fn stop(&mut self) {
        self.progress.close();
        self.shared.set_mode(MODE_STOP, None);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(ch) = self.children.take() {
            ch.finish();
        }
    }
}
