//! The footprint sampler: once a second, what the run's own processes and their sockets
//! cost this host (`footprint.jsonl`, [`redpacket::formats::FootprintLine`]).
//!
//! Host-wide counters (memory in use, established sockets) also count whatever else runs
//! on the machine; the processes' own figures do not. So the sampler reads the resident
//! memory and CPU time of the server instances (by pid) and of the load generator (this
//! process and its children), beside the kernel's socket figures: `/proc/net/sockstat`
//! and the slab caches that grow with connections. Memory per user in the report is the
//! difference between a sample with every user idle and the first sample, taken before
//! any server started, divided by the users held.

use redpacket::formats::{FootprintLine, ProcessGroup};
use redpacket::host::procfs;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One process's resident bytes and CPU seconds, from `/proc/PID/{statm,stat}`.
fn process(pid: u32, page: u64, tick: f64) -> Option<(u64, f64, u32)> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let rss_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (cpu, ppid) = stat_cpu_ppid(&stat, tick)?;
    Some((rss_pages * page, cpu, ppid))
}

/// User + system CPU seconds and the parent pid from a `/proc/PID/stat` line. The
/// command name may hold spaces and parentheses: fields are counted after its last `)`.
fn stat_cpu_ppid(stat: &str, tick: f64) -> Option<(f64, u32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ppid: u32 = f.get(1)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(((utime + stime) as f64 / tick, ppid))
}

/// Pids whose parent is `parent`.
fn children_of(parent: u32, tick: f64) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| stat_cpu_ppid(&s, tick))
                .is_some_and(|(_, ppid)| ppid == parent)
        })
        .collect();
    out.sort_unstable();
    out
}

fn group(pids: &[u32], page: u64, tick: f64) -> ProcessGroup {
    let mut g = ProcessGroup::default();
    for &pid in pids {
        let (rss, cpu) = process(pid, page, tick).map_or((0, 0.0), |(r, c, _)| (r, c));
        if rss > 0 {
            g.processes += 1;
        }
        g.rss_bytes += rss;
        g.cpu_s += cpu;
        g.rss_each.push(rss);
    }
    g
}

fn page_and_tick() -> (u64, f64) {
    // SAFETY: sysconf only reads configuration values.
    let (page, tick) = unsafe {
        (
            libc::sysconf(libc::_SC_PAGESIZE),
            libc::sysconf(libc::_SC_CLK_TCK),
        )
    };
    (
        u64::try_from(page).ok().filter(|&p| p > 0).unwrap_or(4096),
        if tick > 0 { tick as f64 } else { 100.0 },
    )
}

/// Takes one sample now. `servers` are the server instances' pids, instance order; the
/// load generator is this process and its children that are not servers.
pub fn sample(servers: &[u32]) -> FootprintLine {
    let (page, tick) = page_and_tick();
    let me = std::process::id();
    let mut loadgens = vec![me];
    loadgens.extend(
        children_of(me, tick)
            .into_iter()
            .filter(|p| !servers.contains(p)),
    );
    let sock = procfs::read_sockstat();
    let mem = procfs::meminfo(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default());
    let slabs = std::fs::read_to_string("/proc/slabinfo")
        .map(|t| procfs::slabinfo(&t, page))
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| procfs::SOCKET_SLABS.contains(&k.as_str()))
        .collect();
    let total = mem.get("MemTotal").copied().unwrap_or(0);
    let avail = mem.get("MemAvailable").copied().unwrap_or(total);
    FootprintLine {
        t: crate::run::unix_f64(),
        servers: group(servers, page, tick),
        loadgens: group(&loadgens, page, tick),
        tcp_inuse: sock.tcp_inuse,
        tcp_mem_pages: sock.tcp_mem_pages,
        slab_bytes: mem.get("Slab").copied().unwrap_or(0),
        slabs,
        mem_used_bytes: total.saturating_sub(avail),
        page_bytes: page,
    }
}

/// A sampler thread writing `footprint.jsonl`; stops (after one last line) when dropped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The server pids the thread reads, settable once the servers run.
    servers: Arc<Mutex<Vec<u32>>>,
    /// Set once a line with every server alive is written.
    saw_servers: Arc<AtomicBool>,
}

impl Sampler {
    /// Starts sampling into `dir/footprint.jsonl`, first line now.
    pub fn start(dir: &Path) -> Result<Sampler, String> {
        let path = dir.join("footprint.jsonl");
        let file = std::fs::File::create(&path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let servers = Arc::new(Mutex::new(Vec::new()));
        let saw_servers = Arc::new(AtomicBool::new(false));
        let (st, sv, saw) = (stop.clone(), servers.clone(), saw_servers.clone());
        let thread = std::thread::Builder::new()
            .name("footprint".into())
            .spawn(move || {
                let mut w = std::io::BufWriter::new(file);
                loop {
                    let pids = sv.lock().map(|v| v.clone()).unwrap_or_default();
                    let line = sample(&pids);
                    if let Ok(s) = serde_json::to_string(&line) {
                        let _ = writeln!(w, "{s}");
                        let _ = w.flush();
                    }
                    if !pids.is_empty() && line.servers.processes == pids.len() as u64 {
                        saw.store(true, Relaxed);
                    }
                    // Sleep to the next whole second, checking for the stop every 50 ms.
                    let next = line.t.floor() + 1.0;
                    while crate::run::unix_f64() < next {
                        if st.load(Relaxed) {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            })
            .map_err(|e| format!("cannot start the footprint sampler: {e}"))?;
        Ok(Sampler {
            stop,
            thread: Some(thread),
            servers,
            saw_servers,
        })
    }

    /// Sets the server pids and waits (up to 2 s) for a line with all of them alive:
    /// the servers' memory before any user connects.
    pub fn servers_started(&self, pids: Vec<u32>) {
        if let Ok(mut p) = self.servers.lock() {
            *p = pids;
        }
        let until = std::time::Instant::now() + Duration::from_secs(2);
        while !self.saw_servers.load(Relaxed) && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "4242 (a (weird) name) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 5 1000 200";
        let (cpu, ppid) = stat_cpu_ppid(line, 100.0).unwrap();
        assert_eq!(ppid, 17);
        assert!((cpu - 3.0).abs() < 1e-9, "{cpu}");
        assert!(stat_cpu_ppid("garbage", 100.0).is_none());
    }

    #[test]
    fn a_sample_counts_this_process() {
        let s = sample(&[]);
        assert!(s.loadgens.processes >= 1);
        assert!(s.loadgens.rss_bytes > 0);
        assert!(s.mem_used_bytes > 0);
        assert_eq!(s.servers, ProcessGroup::default());
    }
}
