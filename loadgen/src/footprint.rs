//! The footprint sampler: once a second, what the run's own processes and their sockets
//! cost this host (`footprint.jsonl`, [`redpacket_formats::FootprintLine`]).
//!
//! Host-wide counters (memory in use, established sockets) also count whatever else runs
//! on the machine; the processes' own figures do not. So the sampler reads the resident
//! memory and CPU time of the server instances (by pid) and of the load generator (this
//! process and its children), beside the kernel's socket figures: `/proc/net/sockstat`
//! and the slab caches that grow with connections. Memory per user in the report is the
//! difference between a sample with every user idle and the first sample, taken before
//! any server started, divided by the users held. All of it is read through
//! [`redpacket_sys::procfs`], the one place the programs read `/proc`.

use redpacket_formats::{FootprintLine, ProcessGroup};
use redpacket_sys::procfs;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Samples between two scans for the load generator's processes.
const RESCAN_EVERY: u64 = 5;

fn group(pids: &[u32]) -> ProcessGroup {
    let mut g = ProcessGroup::default();
    for &pid in pids {
        let p = procfs::read_process(pid).unwrap_or_default();
        if p.rss_bytes > 0 {
            g.processes += 1;
        }
        g.rss_bytes += p.rss_bytes;
        g.cpu_s += p.cpu_s;
        g.rss_each.push(p.rss_bytes);
    }
    g
}

/// The load generator's processes: this one and its children that run this program
/// (not the servers, nor the live view's `tail`).
fn loadgen_pids(servers: &[u32]) -> Vec<u32> {
    let me = std::process::id();
    let exe = std::fs::read_link("/proc/self/exe").ok();
    let mut loadgens = vec![me];
    loadgens.extend(procfs::children_of(me).into_iter().filter(|p| {
        !servers.contains(p) && std::fs::read_link(format!("/proc/{p}/exe")).ok() == exe
    }));
    loadgens
}

/// Takes one sample now. `servers` are the server instances' pids, instance order.
pub fn sample(servers: &[u32]) -> FootprintLine {
    sample_of(servers, &loadgen_pids(servers))
}

/// One sample of `servers` and the load generator's processes `loadgens`.
fn sample_of(servers: &[u32], loadgens: &[u32]) -> FootprintLine {
    let sock = procfs::read_sockstat();
    let mem = procfs::read_meminfo();
    let total = mem.get("MemTotal").copied().unwrap_or(0);
    let avail = mem.get("MemAvailable").copied().unwrap_or(total);
    FootprintLine {
        t: crate::run::unix_f64(),
        servers: group(servers),
        loadgens: group(loadgens),
        tcp_inuse: sock.tcp_inuse,
        tcp_mem_pages: sock.tcp_mem_pages,
        slab_bytes: mem.get("Slab").copied().unwrap_or(0),
        slabs: procfs::read_socket_slabs(),
        mem_used_bytes: total.saturating_sub(avail),
        page_bytes: procfs::page_and_tick().0,
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
                // An instrument: it waits for what it measures when both want a CPU.
                redpacket_sys::cores::background();
                let mut w = std::io::BufWriter::new(file);
                // The instrument costs what it reads: the load generator's processes
                // (a scan of every process) are looked up again every few seconds only.
                let mut loadgens: (Vec<u32>, Vec<u32>) = Default::default();
                for k in 0u64.. {
                    let pids = sv.lock().map(|v| v.clone()).unwrap_or_default();
                    if k % RESCAN_EVERY == 0 || loadgens.0 != pids {
                        loadgens = (pids.clone(), loadgen_pids(&pids));
                    }
                    let line = sample_of(&pids, &loadgens.1);
                    if let Ok(s) = serde_json::to_string(&line) {
                        let _ = writeln!(w, "{s}");
                        let _ = w.flush();
                    }
                    if !pids.is_empty() && line.servers.processes == pids.len() as u64 {
                        saw.store(true, Relaxed);
                    }
                    // Sleep to the next whole second, checking for the stop every 250 ms.
                    let next = line.t.floor() + 1.0;
                    loop {
                        if st.load(Relaxed) {
                            return;
                        }
                        let left = next - crate::run::unix_f64();
                        if left <= 0.0 {
                            break;
                        }
                        std::thread::sleep(Duration::from_secs_f64(left.min(0.25)));
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
    fn a_sample_counts_this_process() {
        let s = sample(&[]);
        assert!(s.loadgens.processes >= 1);
        assert!(s.loadgens.rss_bytes > 0);
        assert!(s.mem_used_bytes > 0);
        assert_eq!(s.servers, ProcessGroup::default());
    }
}
