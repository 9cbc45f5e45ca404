//! The footprint section: what each user costs in memory, split by who holds it, and
//! what each request costs in CPU, from `<host>/footprint.jsonl` (written by the demo,
//! which runs both sides on one host and knows their processes).
//!
//! Memory per user is read in the `idle` phase, when every user is logged in and
//! nothing is asked: the last sample of that phase against the first sample of the run,
//! taken before any server started. Server and load-generator memory is the resident
//! size of their own processes (so other work on the host does not count); kernel
//! memory is the growth of TCP buffer pages (`/proc/net/sockstat`) and of the slab
//! caches (`/proc/meminfo` `Slab`, and by cache from `/proc/slabinfo`), which are
//! host-wide and say so. CPU per request is the growth of the processes' CPU time over
//! a phase divided by the requests answered in it (shakes, grabs and sends).

use std::path::Path;

use super::load::{HostData, Run};
use super::numbers::fmt_num;
use super::table::Table;
use redpacket_formats::{FootprintLine, PhasePlan};

/// The old system's figures, on the same page for comparison (REFERENCE: about 3.9 KB
/// of memory per idle user plus ~600 MB of pools preallocated at start; 18-19 us of
/// server CPU per shake against the floor server's ~10).
pub const OLD_USER_BYTES: f64 = 3_900.0;
pub const OLD_PREALLOCATED_MB: f64 = 600.0;

/// One host's footprint.
#[derive(Clone, Debug)]
pub struct Footprint {
    pub host: String,
    /// Users logged in at the idle sample (the load generator's gauge).
    pub users: u64,
    pub servers: u64,
    pub loadgens: u64,
    /// Bytes per user: (label, total bytes, bytes per user, note).
    pub memory: Vec<(String, f64, f64, String)>,
    /// Per phase, the CPU each side used.
    pub cpu: Vec<CpuRow>,
    /// Users held at the end, of how many, the connect ramp's seconds, and failed
    /// connect or login attempts by kind.
    pub held: Option<Held>,
}

/// One phase's CPU: both sides' CPU seconds across it, and the requests answered.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuRow {
    pub phase: String,
    /// Requests answered in the phase: shakes + grabs + sends (0 for connect and idle).
    pub requests: u64,
    /// Seconds between the samples that bound the phase (inside it).
    pub seconds: f64,
    /// The phase's own length, over which `requests` were answered.
    pub phase_seconds: f64,
    pub server_cpu_s: f64,
    pub loadgen_cpu_s: f64,
}

impl CpuRow {
    /// Cores busy on average: CPU seconds over wall seconds.
    pub fn cores(cpu_s: f64, seconds: f64) -> Option<f64> {
        (seconds > 0.0).then(|| cpu_s / seconds)
    }

    /// Requests answered a second over the phase's own length.
    pub fn request_rate(&self) -> Option<f64> {
        (self.requests > 0 && self.phase_seconds > 0.0)
            .then(|| self.requests as f64 / self.phase_seconds)
    }

    /// CPU microseconds per request: the CPU rate between the samples over the phase's
    /// request rate (the samples cover a little less than the phase).
    pub fn per_request(&self, cpu_s: f64) -> Option<f64> {
        Some(Self::cores(cpu_s, self.seconds)? * 1e6 / self.request_rate()?)
    }
}

/// How the users got in.
#[derive(Clone, Debug, PartialEq)]
pub struct Held {
    pub connected: u64,
    pub asked: u64,
    pub connect_s: f64,
    pub not_in_at_start: u64,
    pub failed: Vec<(String, u64)>,
}

impl Held {
    /// One sentence: users held, connect time and rate, failures by kind.
    pub fn sentence(&self) -> String {
        let failed: Vec<String> = self
            .failed
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k} {}", fmt_num(*n as f64, 0)))
            .collect();
        let in_ramp = self.asked.saturating_sub(self.not_in_at_start);
        format!(
            "Users held: {} of {} at the end. Connect ramp: {} users in {} s ({} per second){}; \
             failed connect or login attempts: {}.",
            fmt_num(self.connected as f64, 0),
            fmt_num(self.asked as f64, 0),
            fmt_num(in_ramp as f64, 0),
            fmt_num(self.connect_s, 1),
            fmt_num(in_ramp as f64 / self.connect_s.max(1e-9), 0),
            if self.not_in_at_start > 0 {
                format!(
                    ", {} still connecting when the first phase began",
                    fmt_num(self.not_in_at_start as f64, 0)
                )
            } else {
                String::new()
            },
            if failed.is_empty() {
                "none".to_string()
            } else {
                failed.join(", ")
            }
        )
    }
}

impl Footprint {
    /// A per-user figure by label prefix (for headlines and tests).
    pub fn per_user(&self, label: &str) -> Option<f64> {
        self.memory
            .iter()
            .find(|m| m.0.starts_with(label))
            .map(|m| m.2)
    }
}

/// A host's `footprint.jsonl`, read as every run-folder file is ([`super::safe_fs`]):
/// nothing through a link (the host folder included), at most a per-second file's cap.
/// It is read when a report is drawn, not kept with the run, so it has a budget of its
/// own; what cannot be read is left out here (the footprint is then absent).
fn read_lines(host_dir: &Path) -> Vec<FootprintLine> {
    if !super::safe_fs::real_dir(host_dir) {
        return Vec::new();
    }
    let budget = super::safe_fs::Budget::default();
    super::load::read_jsonl(&host_dir.join("footprint.jsonl"), &budget, &mut |_| {})
}

/// The sample at or just before `t` (linear in the samples: a run has a few hundred).
fn at(lines: &[FootprintLine], t: f64) -> Option<&FootprintLine> {
    lines.iter().rev().find(|l| l.t <= t).or(lines.first())
}

/// Every host of the run that has a `footprint.jsonl`.
pub fn footprints(run: &Run) -> Vec<Footprint> {
    run.hosts
        .iter()
        .filter_map(|h| {
            let lines = read_lines(&run.dir.join(&h.name));
            one(&h.name, &lines, &run.meta.phases, h)
        })
        .collect()
}

/// One host's footprint: memory per user at the idle sample against the first sample,
/// CPU per phase, and how the users got in; `None` without samples or users.
fn one(
    host: &str,
    lines: &[FootprintLine],
    phases: &[PhasePlan],
    h: &HostData,
) -> Option<Footprint> {
    let base = lines.first()?;
    let idle = idle_sample(lines, phases)?;
    let users = h
        .loadgen
        .iter()
        .rev()
        .find(|l| l.t <= idle.t + 0.5)
        .map_or(0, |l| l.connections);
    if users == 0 {
        return None;
    }
    Some(Footprint {
        held: held(h),
        host: host.to_string(),
        users,
        servers: idle.servers.processes,
        loadgens: idle.loadgens.processes,
        memory: memory_rows(lines, base, idle, users as f64),
        cpu: cpu_rows(lines, phases, h),
    })
}

/// The idle sample: the last one inside the `idle` phase, else the one with the most
/// TCP sockets before the first loaded phase.
fn idle_sample<'l>(lines: &'l [FootprintLine], phases: &[PhasePlan]) -> Option<&'l FootprintLine> {
    phases
        .iter()
        .find(|p| p.name == "idle")
        .and_then(|p| lines.iter().rev().find(|l| l.t >= p.start && l.t <= p.end))
        .or_else(|| {
            let first_load = phases
                .iter()
                .find(|p| p.target_qps > 0.0)
                .map_or(f64::MAX, |p| p.start);
            lines
                .iter()
                .filter(|l| l.t < first_load)
                .max_by_key(|l| l.tcp_inuse)
        })
}

/// The memory rows, `n` users at the `idle` sample against the `base` sample: each
/// holder's total, of which what the users added, kernel growth (TCP buffers, slab, by
/// cache), the total and the machine's.
fn memory_rows(
    lines: &[FootprintLine],
    base: &FootprintLine,
    idle: &FootprintLine,
    n: f64,
) -> Vec<(String, f64, f64, String)> {
    let page = if idle.page_bytes > 0 {
        idle.page_bytes
    } else {
        4096
    } as f64;
    let mut memory = Vec::new();
    let mut row = |label: &str, total: f64, note: &str| {
        memory.push((label.to_string(), total, total / n, note.to_string()));
    };
    row(
        &format!("server user space ({} processes)", idle.servers.processes),
        idle.servers.rss_bytes as f64,
        "resident size of the server instances, all of it (their start-up share included)",
    );
    // The servers' own size before any user: the first sample with all of them alive.
    if let Some(start) = lines
        .iter()
        .find(|l| l.servers.processes > 0 && l.servers.processes == idle.servers.processes)
    {
        row(
            "  of which above the servers' size at start",
            idle.servers.rss_bytes as f64 - start.servers.rss_bytes as f64,
            &format!(
                "what the users added: {} MiB at start, before any user connected",
                fmt_num(start.servers.rss_bytes as f64 / 1_048_576.0, 1)
            ),
        );
    }
    row(
        &format!(
            "load generator user space ({} processes)",
            idle.loadgens.processes
        ),
        idle.loadgens.rss_bytes as f64,
        "resident size of the load generator's processes, all of it",
    );
    let tcp_buf = (idle.tcp_mem_pages as f64 - base.tcp_mem_pages as f64) * page;
    row(
        "kernel: TCP buffers",
        tcp_buf,
        "growth of sockstat TCP mem (host-wide)",
    );
    let slab = idle.slab_bytes as f64 - base.slab_bytes as f64;
    row(
        "kernel: slab",
        slab,
        "growth of /proc/meminfo Slab (host-wide): sockets, inodes, files, dentries, epoll",
    );
    for (name, d) in slab_growth(base, idle, n) {
        row(&format!("  of which {name}"), d, "growth of the slab cache");
    }
    let user = idle.servers.rss_bytes as f64 + idle.loadgens.rss_bytes as f64;
    row(
        "total: both programs + kernel",
        user + tcp_buf + slab,
        "server + load generator + TCP buffers + slab",
    );
    row(
        "machine memory in use",
        idle.mem_used_bytes as f64 - base.mem_used_bytes as f64,
        "growth of MemTotal - MemAvailable (host-wide; page cache and others move it too)",
    );
    memory
}

/// The slab caches that grew by a byte or more per user, most first.
fn slab_growth<'l>(
    base: &FootprintLine,
    idle: &'l FootprintLine,
    n: f64,
) -> Vec<(&'l String, f64)> {
    let mut caches: Vec<(&String, f64)> = idle
        .slabs
        .iter()
        .map(|(k, v)| {
            (
                k,
                *v as f64 - base.slabs.get(k).copied().unwrap_or(0) as f64,
            )
        })
        .filter(|(_, d)| *d / n >= 1.0)
        .collect();
    caches.sort_by(|a, b| b.1.total_cmp(&a.1));
    caches
}

/// Each phase's CPU on both sides between the samples that bound it, and the requests
/// the load generator's summary says were answered in it.
fn cpu_rows(lines: &[FootprintLine], phases: &[PhasePlan], h: &HostData) -> Vec<CpuRow> {
    phases
        .iter()
        .filter_map(|p| {
            let requests = h
                .summary
                .as_ref()
                .and_then(|s| s.phases.iter().find(|x| x.name == p.name))
                .map_or(0, |s| s.answered + s.packets.grabs + s.packets.sends);
            // The samples wholly inside the phase: from the first at or after its start
            // (one before would count the end of the phase before it, e.g. the last
            // logins of the connect ramp in the idle phase) to the last at or before
            // its end; a phase shorter than two samples falls back to the ones around it.
            let a = lines
                .iter()
                .find(|l| l.t >= p.start && l.t < p.end)
                .filter(|a| at(lines, p.end).is_some_and(|b| b.t > a.t))
                .or_else(|| at(lines, p.start))?;
            let b = at(lines, p.end)?;
            Some(CpuRow {
                phase: p.name.clone(),
                requests,
                seconds: b.t - a.t,
                phase_seconds: p.end - p.start,
                server_cpu_s: (b.servers.cpu_s - a.servers.cpu_s).max(0.0),
                loadgen_cpu_s: (b.loadgens.cpu_s - a.loadgens.cpu_s).max(0.0),
            })
        })
        .collect()
}

/// How the users got in, from the load generator's summary.
fn held(h: &HostData) -> Option<Held> {
    h.summary.as_ref().map(|s| Held {
        connected: s.connections.connected,
        asked: parse_users(&s.users).unwrap_or(s.connections.connected),
        connect_s: s.connect_s,
        not_in_at_start: s.users_not_connected_at_start,
        failed: s
            .connections
            .failed
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
    })
}

/// The count of a `START..END` or `N` user range as `summary.json` writes it.
fn parse_users(s: &str) -> Option<u64> {
    match s.split_once("..") {
        Some((a, b)) => Some(
            b.trim()
                .parse::<u64>()
                .ok()?
                .checked_sub(a.trim().parse().ok()?)?,
        ),
        None => s.trim().parse().ok(),
    }
}

/// The memory table: one row per holder, with the old system's figure beside.
pub fn memory_table(f: &Footprint) -> Table {
    let mut rows: Vec<Vec<String>> = f
        .memory
        .iter()
        .map(|(label, total, per, note)| {
            vec![
                label.clone(),
                fmt_num(total / 1_048_576.0, 1),
                fmt_num(*per, 0),
                note.clone(),
            ]
        })
        .collect();
    rows.push(vec![
        "old system, user space (for comparison)".into(),
        fmt_num(
            OLD_PREALLOCATED_MB + OLD_USER_BYTES * f.users as f64 / 1_048_576.0,
            1,
        ),
        fmt_num(OLD_USER_BYTES, 0),
        format!(
            "~{} B per idle user plus ~{} MB preallocated at start (its own figures)",
            fmt_num(OLD_USER_BYTES, 0),
            fmt_num(OLD_PREALLOCATED_MB, 0)
        ),
    ]);
    Table {
        header: vec![
            format!("memory at {} idle users", fmt_num(f.users as f64, 0)),
            "MiB".into(),
            "bytes per user".into(),
            "what it counts".into(),
        ],
        rows,
    }
}

/// The CPU table: per phase, cores busy on each side and CPU microseconds per request.
pub fn cpu_table(f: &Footprint) -> Table {
    let n = |v: Option<f64>, d: usize| v.map_or("-".to_string(), |x| fmt_num(x, d));
    Table {
        header: vec![
            "phase".into(),
            "requests (shakes + grabs + sends)".into(),
            format!("server cores busy ({} processes)", f.servers),
            "server CPU us per request".into(),
            format!("load generator cores busy ({} processes)", f.loadgens),
            "load generator CPU us per request".into(),
        ],
        rows: f
            .cpu
            .iter()
            .map(|r| {
                vec![
                    r.phase.clone(),
                    fmt_num(r.requests as f64, 0),
                    n(CpuRow::cores(r.server_cpu_s, r.seconds), 2),
                    n(r.per_request(r.server_cpu_s), 1),
                    n(CpuRow::cores(r.loadgen_cpu_s, r.seconds), 2),
                    n(r.per_request(r.loadgen_cpu_s), 1),
                ]
            })
            .collect(),
    }
}

/// The sentence under the tables.
pub fn note() -> &'static str {
    "Cores busy count what the processes cost even when nobody asks (the idle phase): \
     per-request figures divide it all by the requests. The old system spent 18-19 us of \
     server CPU per shake where the floor server spent about 10 (REFERENCE, 2 vCPU VM, \
     loopback); `bench/compare.sh` measures ours against \
     the floor in the same run. Kernel rows are host-wide growth since the first sample, \
     taken before any server started."
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_cpu_counts_only_the_samples_inside_it() {
        // Whole-second samples; the connect ramp ends at 10.3 and its last logins cost
        // a core until then; idle runs 10.3-15.3 at 0.1 core.
        let cpu = |t: f64| {
            if t <= 10.3 {
                t
            } else {
                10.3 + (t - 10.3) * 0.1
            }
        };
        let lines: Vec<FootprintLine> = (0..=16)
            .map(|t| {
                let t = f64::from(t);
                let mut l = FootprintLine {
                    t,
                    ..Default::default()
                };
                l.servers.cpu_s = cpu(t);
                l
            })
            .collect();
        let phase = |name: &str, start: f64, end: f64| PhasePlan {
            name: name.into(),
            start,
            end,
            ..Default::default()
        };
        let phases = [phase("connect", 0.0, 10.3), phase("idle", 10.3, 15.3)];
        let rows = cpu_rows(&lines, &phases, &HostData::default());
        let idle = &rows[1];
        let cores = CpuRow::cores(idle.server_cpu_s, idle.seconds).unwrap();
        assert!(
            (cores - 0.1).abs() < 1e-9,
            "idle at {cores} cores: the ramp's end counted"
        );
        assert_eq!((idle.seconds, idle.phase_seconds), (4.0, 5.0));
        // Per request: the CPU rate over the phase's request rate.
        let row = CpuRow {
            requests: 500,
            ..idle.clone()
        };
        let us = row.per_request(row.server_cpu_s).unwrap();
        assert!((us - 0.1 / 100.0 * 1e6).abs() < 1e-6, "{us}");
    }

    #[test]
    fn user_ranges_count_their_users() {
        assert_eq!(parse_users("0..1000000"), Some(1_000_000));
        assert_eq!(parse_users("10..20"), Some(10));
        assert_eq!(parse_users("5000"), Some(5000));
        assert_eq!(parse_users("20..10"), None);
        assert_eq!(parse_users("x"), None);
    }

    #[test]
    fn the_connect_sentence_gives_rate_and_failures() {
        let h = Held {
            connected: 999_990,
            asked: 1_000_000,
            connect_s: 100.0,
            not_in_at_start: 0,
            failed: vec![("timeout".into(), 10), ("refused".into(), 0)],
        };
        let s = h.sentence();
        assert!(s.contains("999,990 of 1,000,000"), "{s}");
        assert!(s.contains("(10,000 per second)"), "{s}");
        assert!(s.contains("timeout 10") && !s.contains("refused"), "{s}");
    }
}
