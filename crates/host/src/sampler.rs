//! System and network sampling: once a second, one JSON line of what the kernel saw.
//!
//! The old test read PPS off `/proc/net/dev` and connection counts off `ss`; this module
//! keeps those readings, and the TCP, socket-memory, CPU and RSS numbers that explain
//! them, next to the server's and load generator's own per-second logs.
//!
//! It runs on its own OS thread with its own file, shares nothing with the request path
//! and takes no lock a worker could wait on: a slow disk delays the sampler only.
//! Layout: `redpacket_formats::net` is the `net.jsonl` schema and the rate arithmetic,
//! [`crate::tuning`] writes the host's limits, and this file owns the thread. The
//! readings come from `redpacket_sys`: CPU, process CPU and RSS through `sysinfo`, refreshing only those;
//! interfaces, TCP counters and socket memory through its `/proc/net` parsers
//! (`/proc/net/dev` rather than sysinfo's interface list, which has no drop counters and
//! cost ~480 us of CPU per reading here against ~25 us for the file); the NIC drivers'
//! own counters through the ethtool ioctl ([`redpacket_sys::ethtool`]), not a child
//! `ethtool -S`: a fork of a load generator holding 20 000 sockets cost ~40 ms of CPU.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use crate::tuning::write_tuning;

use redpacket_formats::net::{self as line, iface_rates, pick_tcp, round2, tcp_rates, NetLine};
use redpacket_sys::ethtool::NicStats;
use redpacket_sys::procfs::{self, IfaceCounters};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// The raw counters of one reading, kept to compute the next line's rates.
#[derive(Default)]
struct Reading {
    at: Option<Instant>,
    ifaces: Vec<(String, IfaceCounters)>,
    tcp: BTreeMap<String, i64>,
    /// This process's CPU time (user + system), milliseconds.
    proc_cpu_ms: u64,
    rss_bytes: u64,
}

/// Reads the host and builds lines; holds the previous reading for the rates.
///
/// CPU shares come from sysinfo, which re-reads `/proc/stat` only when 200 ms or more
/// have passed since its last reading (at the one-second interval, always); each share
/// is over the time between the two readings, as the rates are.
pub struct Collector {
    prev: Reading,
    sys: System,
    pid: Pid,
    /// Each interface's driver counters with their names kept; `None` where reading
    /// them failed once or found none: not tried again.
    nics: BTreeMap<String, Option<NicStats>>,
}

impl Default for Collector {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector {
    pub fn new() -> Collector {
        let mut c = Collector {
            prev: Reading::default(),
            sys: System::new(),
            pid: Pid::from_u32(std::process::id()),
            nics: BTreeMap::new(),
        };
        c.prev = c.read();
        c
    }

    fn read(&mut self) -> Reading {
        let text = |p: &str| fs::read_to_string(p).unwrap_or_default();
        let mut all = procfs::keyed_pairs(&text("/proc/net/snmp"));
        all.extend(procfs::keyed_pairs(&text("/proc/net/netstat")));
        self.sys.refresh_cpu_usage();
        self.sys.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[self.pid]),
            false,
            ProcessRefreshKind::nothing().with_cpu().with_memory(),
        );
        let (proc_cpu_ms, rss_bytes) = self
            .sys
            .process(self.pid)
            .map_or((0, 0), |p| (p.accumulated_cpu_time(), p.memory()));
        Reading {
            at: Some(Instant::now()),
            ifaces: procfs::net_dev(&text("/proc/net/dev")),
            tcp: pick_tcp(&all),
            proc_cpu_ms,
            rss_bytes,
        }
    }

    /// Takes a reading and returns the line for the interval since the previous one.
    pub fn sample(&mut self) -> NetLine {
        let now = self.read();
        let dt = match (now.at, self.prev.at) {
            (Some(a), Some(b)) => a.duration_since(b).as_secs_f64(),
            _ => 0.0,
        };
        let mut line = NetLine {
            t: unix_now(),
            interval_s: (dt * 1e4).round() / 1e4,
            sockstat: procfs::read_sockstat(),
            ..Default::default()
        };
        for (name, c) in &now.ifaces {
            let prev = self
                .prev
                .ifaces
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, p)| *p)
                .unwrap_or(*c);
            line.ifaces.insert(
                name.clone(),
                line::IfaceLine {
                    total: *c,
                    per_second: iface_rates(c, &prev, dt),
                },
            );
        }
        line.tcp_per_second = tcp_rates(&now.tcp, &self.prev.tcp, dt);
        line.tcp = now.tcp.clone();
        line.cpu.total_pct = round2(f64::from(self.sys.global_cpu_usage()));
        line.cpu.cores_pct = self
            .sys
            .cpus()
            .iter()
            .map(|c| round2(f64::from(c.cpu_usage())))
            .collect();
        if dt > 0.0 {
            let ms = now.proc_cpu_ms.saturating_sub(self.prev.proc_cpu_ms) as f64;
            line.process.cpu_pct = round2(100.0 * ms / 1000.0 / dt);
        }
        line.process.rss_kib = now.rss_bytes / 1024;
        self.ethtool(&mut line, &now.ifaces);
        line.sampler = line::SamplerCost {
            cpu_s: (rusage_s(libc::RUSAGE_THREAD) * 1e6).round() / 1e6,
        };
        self.prev = now;
        line
    }

    /// Adds the driver counters (what `ethtool -S` prints) of every interface that has
    /// them, read with the ethtool ioctl; never loopback, never again on an interface
    /// where reading failed once or found none.
    fn ethtool(&mut self, line: &mut NetLine, ifaces: &[(String, IfaceCounters)]) {
        for (name, _) in ifaces {
            if name == "lo" {
                continue;
            }
            let slot = self
                .nics
                .entry(name.clone())
                .or_insert_with(|| NicStats::open(name).ok());
            let Some(nic) = slot.as_mut() else {
                continue;
            };
            let stats: BTreeMap<String, u64> = match nic.read() {
                Ok(counters) => counters.map(|(k, v)| (k.to_string(), v)).collect(),
                Err(_) => BTreeMap::new(),
            };
            if stats.is_empty() {
                *slot = None;
            } else {
                line.ethtool.insert(name.clone(), stats);
            }
        }
    }
}

fn unix_now() -> f64 {
    (unix_secs() * 1000.0).round() / 1000.0
}

fn rusage_s(who: libc::c_int) -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// What every host of a run does: writes `<dir>/tuning.txt` now and starts sampling
/// into `<dir>/net.jsonl` once a second. Keep the handle for the length of the run.
pub fn record_host(dir: &std::path::Path) -> io::Result<SamplerHandle> {
    fs::create_dir_all(dir)?;
    write_tuning(dir.join("tuning.txt"))?;
    Sampler::spawn(dir.join("net.jsonl"), Duration::from_secs(1))
}

/// Starts samplers.
pub struct Sampler;

impl Sampler {
    /// Starts a thread that appends one [`NetLine`] to `path` every `interval`, until
    /// [`SamplerHandle::stop`] or drop. Lines fall on whole multiples of `interval` of
    /// the wall clock (whole seconds at one second) and are stamped with them, as the
    /// server's and the load generator's per-second lines are, so that the lines of
    /// every process and host cover the same seconds.
    pub fn spawn(path: PathBuf, interval: Duration) -> io::Result<SamplerHandle> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let interval = interval.max(Duration::from_millis(10));
        let (tx, rx) = mpsc::channel::<()>();
        let join = std::thread::Builder::new()
            .name("sysmon".into())
            .spawn(move || {
                // An instrument: it waits for what it measures when both want a CPU.
                redpacket_sys::cores::background();
                run(file, interval, rx)
            })?;
        Ok(SamplerHandle {
            stop: Some(tx),
            join: Some(join),
        })
    }
}

fn run(file: File, interval: Duration, stop: mpsc::Receiver<()>) -> io::Result<()> {
    let mut out = BufWriter::new(file);
    let mut c = Collector::new();
    let step = interval.as_secs_f64();
    let mut next = next_boundary(unix_secs(), step);
    loop {
        let wait = Duration::from_secs_f64((next - unix_secs()).max(0.0));
        match stop.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return out.flush(),
        }
        let mut line = c.sample();
        line.t = (next * 1000.0).round() / 1000.0;
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
        out.flush()?;
        // The next boundary; when we fell behind (suspended, or a very slow disk), the
        // next one to come: skip, do not burst.
        next = (next + step).max(next_boundary(unix_secs(), step));
    }
}

/// The first whole multiple of `step` seconds of the unix clock after `now`.
fn next_boundary(now: f64, step: f64) -> f64 {
    ((now / step).floor() + 1.0) * step
}

fn unix_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// A running sampler. Dropping it stops the thread too.
pub struct SamplerHandle {
    stop: Option<mpsc::Sender<()>>,
    join: Option<JoinHandle<io::Result<()>>>,
}

impl SamplerHandle {
    /// Stops the thread and waits for it; returns the first write error, if any.
    pub fn stop(mut self) -> io::Result<()> {
        self.finish()
    }

    fn finish(&mut self) -> io::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.join.take().map(|j| j.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("sysmon thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for SamplerHandle {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collector_reads_this_machine() {
        let mut c = Collector::new();
        std::thread::sleep(Duration::from_millis(20));
        let l = c.sample();
        assert!(l.t > 1.0e9);
        assert!(l.interval_s > 0.0);
        assert!(l.ifaces.contains_key("lo"));
        assert!(!l.cpu.cores_pct.is_empty());
        assert!(l.process.rss_kib > 0);
        assert!(l.tcp.contains_key("CurrEstab"));
    }

    #[test]
    fn nic_counters_are_read_in_process_and_never_on_loopback() {
        let mut c = Collector::new();
        let lines = [c.sample(), c.sample()];
        for l in &lines {
            assert!(!l.ethtool.contains_key("lo"));
            for name in l.ifaces.keys().filter(|n| *n != "lo") {
                let want: Vec<String> = NicStats::open(name)
                    .map(|s| s.names().to_vec())
                    .unwrap_or_default();
                let got: Vec<&String> = l
                    .ethtool
                    .get(name)
                    .into_iter()
                    .flat_map(|m| m.keys())
                    .collect();
                let mut want_keys: Vec<&String> = want.iter().collect();
                want_keys.sort();
                want_keys.dedup();
                assert_eq!(got, want_keys, "{name}");
            }
        }
    }

    #[test]
    fn boundaries_are_whole_multiples_of_the_interval() {
        assert_eq!(next_boundary(1_795_000_000.2, 1.0), 1_795_000_001.0);
        assert_eq!(next_boundary(1_795_000_000.0, 1.0), 1_795_000_001.0);
        let b = next_boundary(1_795_000_000.26, 0.05);
        assert!((b - 1_795_000_000.3).abs() < 1e-6, "{b}");
    }

    #[test]
    fn sampler_writes_lines_and_stops_promptly() {
        let dir = std::env::temp_dir().join(format!("sysmon-test-{}", std::process::id()));
        let path = dir.join("net.jsonl");
        let h = Sampler::spawn(path.clone(), Duration::from_millis(50)).unwrap();
        std::thread::sleep(Duration::from_millis(180));
        let t0 = Instant::now();
        h.stop().unwrap();
        assert!(t0.elapsed() < Duration::from_millis(500));
        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<NetLine> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(lines.len() >= 2, "{} lines", lines.len());
        assert!(lines.windows(2).all(|w| w[1].t > w[0].t));
        // Stamped on whole multiples of the interval of the wall clock.
        for l in &lines {
            let twentieths = l.t * 20.0;
            assert!((twentieths - twentieths.round()).abs() < 1e-3, "{}", l.t);
        }
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn record_host_writes_tuning_and_starts_sampling() {
        let dir = std::env::temp_dir().join(format!("sysmon-host-{}", std::process::id()));
        let h = record_host(&dir).unwrap();
        assert!(fs::read_to_string(dir.join("tuning.txt"))
            .unwrap()
            .contains("net.core.somaxconn = "));
        h.stop().unwrap();
        assert!(dir.join("net.jsonl").exists());
        let _ = fs::remove_dir_all(dir);
    }
}
