//! Server instances on this host: how many the open-files limit requires, and starting
//! and stopping them as child processes.
//!
//! A process may open only as many files as its limit allows (20 000 here, hard), and
//! each user costs one on each side. So a run of N users on one host needs
//! N / (limit - what a server keeps back) server instances and as many load-generator
//! processes: exactly what a fleet host with `redpacket_server_instances` runs, and what
//! an operator does where a container caps `nofile`. [`Layout::for_users`] is that
//! arithmetic; [`Instances`] starts the same `redpacket-server` binary once per
//! instance, with the same flags, on consecutive ports, each with its own control port
//! and `--instance I`, and stops them all (SIGTERM, then SIGKILL) when dropped, so no
//! server outlives the run, whatever ends it.

use redpacket_host::reserve::{conns_for, conns_for_with, server_set_apart, FD_RESERVE};
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Users per source address when a run needs more than one process: the kernel's
/// ephemeral-port search for a 4-tuple slows as one source address's ports fill (a
/// million loopback users from one address connected at a few hundred per second past
/// ~700 k on this machine), so each address carries about this many.
pub const USERS_PER_SOURCE: u64 = 20_000;

/// How a run of `users` is laid out on this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Server instances (1: a single server).
    pub instances: usize,
    /// Load-generator processes (1: this process's threads).
    pub procs: usize,
    /// Source addresses in 127.0.1.0/24 (empty: the kernel's choice, 127.0.0.1).
    pub source_addrs: Vec<IpAddr>,
    /// Connections one server instance may hold with its open-files limit.
    pub per_instance: u64,
    /// Users one load-generator process may hold.
    pub per_proc: u64,
}

impl Layout {
    /// The fewest processes that hold `users` with the hard open-files limit `nofile`
    /// (each program raises its soft limit to it; children inherit it), each server
    /// instance running `workers` workers. Errors when even 254 of each cannot.
    pub fn for_users(users: u64, nofile: u64, workers: usize) -> Result<Layout, String> {
        let reserve = FD_RESERVE
            + server_set_apart(redpacket_host::reserve::DEFAULT_CONTROL_MAX_CONNS, workers);
        let per_instance = conns_for_with(nofile, reserve);
        let per_proc = conns_for(nofile);
        let instances = users.div_ceil(per_instance).max(1);
        let procs = users.div_ceil(per_proc).max(1);
        if instances > 254 || procs > 254 {
            return Err(format!(
                "{users} users need {instances} server instances and {procs} load-generator \
                 processes with an open-files limit of {nofile}; at most 254 of each are \
                 started: raise the limit (sysctl/limits.conf) or ask for fewer users"
            ));
        }
        Ok(Layout {
            instances: instances as usize,
            procs: procs as usize,
            source_addrs: source_addrs(users, procs),
            per_instance,
            per_proc,
        })
    }

    /// The layout of a run of `like` users, holding only `users` of them: as many server
    /// instances and load-generator processes as `like` needs, each with its share of
    /// the fewer users (source addresses by the users actually connected). What the
    /// layout costs apart from the users it holds is then measured against the same
    /// users in one process (bench/ratio.sh). Errors when `like` is below `users`.
    pub fn as_for(users: u64, like: u64, nofile: u64, workers: usize) -> Result<Layout, String> {
        if like < users {
            return Err(format!(
                "--layout-for {like} is below --users {users}: a layout must hold every user"
            ));
        }
        let mut layout = Layout::for_users(like, nofile, workers)?;
        layout.source_addrs = source_addrs(users, layout.procs as u64);
        Ok(layout)
    }
}

/// Source addresses for `users` across `procs` load-generator processes: none with one
/// process, else one per [`USERS_PER_SOURCE`] users.
fn source_addrs(users: u64, procs: u64) -> Vec<IpAddr> {
    let sources = if procs > 1 {
        users.div_ceil(USERS_PER_SOURCE).clamp(1, 254)
    } else {
        0
    };
    (1..=sources)
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 1, i as u8)))
        .collect()
}

#[derive(Deserialize)]
struct Ready {
    listen: SocketAddr,
    control: SocketAddr,
}

/// One server child process, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct ServerChild {
    pub child: Child,
    pub listen: SocketAddr,
    pub control: SocketAddr,
    /// Its whole command line, program first.
    pub argv: Vec<String>,
    ready: PathBuf,
}

impl ServerChild {
    /// Starts `program` with `args` and `--ready-file READY` (its status line off:
    /// it would fight the load generator's for the terminal); does not wait.
    fn spawn(
        program: &Path,
        mut args: Vec<String>,
        ready: PathBuf,
        log: Option<PathBuf>,
    ) -> Result<Self, String> {
        let _ = std::fs::remove_file(&ready);
        args.push("--ready-file".into());
        args.push(ready.display().to_string());
        let mut cmd = Command::new(program);
        cmd.args(&args).stdin(Stdio::null()).stdout(Stdio::null());
        if let Some(log) = log {
            if let Some(dir) = log.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let f = std::fs::File::create(&log)
                .map_err(|e| format!("cannot write {}: {e}", log.display()))?;
            cmd.stderr(f);
        }
        // Its own process group: a Ctrl-C at the terminal reaches the demo only, which
        // then stops the servers after the money is reconciled. If the demo dies, the
        // kernel sends the server SIGTERM (it drains and exits).
        cmd.process_group(0);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start the server {}: {e}", program.display()))?;
        let mut argv = vec![program.display().to_string()];
        argv.extend(args);
        Ok(ServerChild {
            child,
            listen: SocketAddr::from(([0, 0, 0, 0], 0)),
            control: SocketAddr::from(([0, 0, 0, 0], 0)),
            argv,
            ready,
        })
    }

    /// Waits until the server has written its ready file (it is bound), it exited, or
    /// `until` passes.
    fn wait_ready(&mut self, until: Instant) -> Result<(), String> {
        loop {
            if let Ok(text) = std::fs::read_to_string(&self.ready) {
                if let Ok(r) = serde_json::from_str::<Ready>(&text) {
                    self.listen = r.listen;
                    self.control = r.control;
                    let _ = std::fs::remove_file(&self.ready);
                    return Ok(());
                }
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                return Err(format!("the server exited before it was ready ({st})"));
            }
            if Instant::now() > until {
                return Err("the server was not ready within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM (the server drains, writes its summary and exits).
    fn terminate(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: signalling our own child by its pid.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        }
    }

    /// Waits until `until` for the exit, then SIGKILL. Returns the exit code.
    fn reap(&mut self, until: Instant) -> Option<i32> {
        loop {
            match self.child.try_wait() {
                Ok(Some(st)) => return st.code(),
                Err(_) => return None,
                Ok(None) if Instant::now() >= until => break,
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        let _ = self.child.kill();
        self.child.wait().ok().and_then(|s| s.code())
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.ready);
    }
}

/// `count` consecutive free TCP ports on 127.0.0.1 below the ephemeral range (checked
/// by binding each; a server that loses a race for one says so when it starts).
pub fn free_ports(count: usize) -> Result<u16, String> {
    let count = count.max(1) as u16;
    let mut base: u16 = 20_000;
    'search: while base as u32 + count as u32 <= 32_000 {
        for i in 0..count {
            if TcpListener::bind((Ipv4Addr::LOCALHOST, base + i)).is_err() {
                base += i + 1;
                continue 'search;
            }
        }
        return Ok(base);
    }
    Err(format!(
        "no {count} consecutive free ports in 20000-32000 on 127.0.0.1"
    ))
}

/// Server instances started together and stopped together.
pub struct Instances {
    pub servers: Vec<ServerChild>,
}

impl Instances {
    /// Starts `count` instances of `program`: instance I (1-based) listens on
    /// `base + I - 1`, serves control on `base + count + I - 1`, runs one worker on the
    /// (I - 1 mod n)-th of the n CPUs it may use when there are several instances, and gets `--instance I`
    /// (its files go to `HOST_DIR/instance-I/`) plus `extra`. A single instance binds
    /// port 0 and keeps every CPU. With several, each one's log (standard error) goes
    /// to `LOGS/instance-I/server.log` instead of the terminal. Waits until all are
    /// bound (30 s at most).
    pub fn start(
        program: &Path,
        count: usize,
        extra: &[String],
        work: &Path,
        logs: &Path,
    ) -> Result<Instances, String> {
        let mut servers = Vec::with_capacity(count);
        let base = if count > 1 { free_ports(2 * count)? } else { 0 };
        for i in 1..=count {
            let mut args: Vec<String> = Vec::new();
            let (listen, control) = if count > 1 {
                let l = base + (i - 1) as u16;
                (l, l + count as u16)
            } else {
                (0, 0)
            };
            args.extend([
                "--listen".into(),
                format!("127.0.0.1:{listen}"),
                "--control".into(),
                format!("127.0.0.1:{control}"),
            ]);
            if count > 1 {
                // One worker each, not pinned: pinned, the instances on a CPU that a
                // kernel thread or a burst holds wait for it while the other CPU idles
                // (p99 at 30 000/s and 300 000 users: 90 ms pinned, 10 ms not).
                args.extend([
                    "--instance".into(),
                    i.to_string(),
                    "--workers".into(),
                    "1".into(),
                ]);
            }
            args.extend(extra.iter().cloned());
            let ready = work.join(format!("server-ready-{i}.json"));
            let log = (count > 1).then(|| {
                logs.join(redpacket_formats::instance_dir(i as u32))
                    .join("server.log")
            });
            servers.push(ServerChild::spawn(program, args, ready, log)?);
        }
        let mut all = Instances { servers };
        let until = Instant::now() + Duration::from_secs(30);
        for (i, s) in all.servers.iter_mut().enumerate() {
            s.wait_ready(until)
                .map_err(|e| format!("server instance {}: {e}", i + 1))?;
        }
        Ok(all)
    }

    pub fn listens(&self) -> Vec<SocketAddr> {
        self.servers.iter().map(|s| s.listen).collect()
    }

    pub fn controls(&self) -> Vec<SocketAddr> {
        self.servers.iter().map(|s| s.control).collect()
    }

    pub fn pids(&self) -> Vec<u32> {
        self.servers.iter().map(ServerChild::pid).collect()
    }

    /// SIGTERM to all at once (they drain in parallel), then waits up to `grace` for
    /// each. Returns the exit codes, instance order.
    pub fn stop(&mut self, grace: Duration) -> Vec<Option<i32>> {
        for s in &mut self.servers {
            s.terminate();
        }
        let until = Instant::now() + grace;
        self.servers.iter_mut().map(|s| s.reap(until)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_process_when_the_limit_allows() {
        let l = Layout::for_users(10_000, 20_000, 1).unwrap();
        assert_eq!((l.instances, l.procs), (1, 1));
        assert!(l.source_addrs.is_empty());
    }

    #[test]
    fn a_million_users_under_20_000_files_need_about_fifty_of_each() {
        let l = Layout::for_users(1_000_000, 20_000, 1).unwrap();
        assert_eq!(l.per_proc, 19_936);
        assert!(l.per_instance < l.per_proc);
        assert_eq!(l.instances as u64, 1_000_000u64.div_ceil(l.per_instance));
        assert_eq!(l.procs, 51);
        assert!((51..=52).contains(&l.instances), "{}", l.instances);
        assert_eq!(l.source_addrs.len(), 50);
        assert_eq!(l.source_addrs[0].to_string(), "127.0.1.1");
        assert_eq!(l.source_addrs[49].to_string(), "127.0.1.50");
    }

    #[test]
    fn a_low_limit_splits_a_small_run() {
        // The test of the demo lowers the limit to 2 000 for 5 000 users.
        let l = Layout::for_users(5_000, 2_000, 1).unwrap();
        assert_eq!((l.instances, l.procs), (3, 3));
        assert_eq!(l.source_addrs.len(), 1);
    }

    #[test]
    fn a_small_run_laid_out_as_a_million_has_its_processes_and_fewer_sources() {
        let big = Layout::for_users(1_000_000, 20_000, 1).unwrap();
        let l = Layout::as_for(10_000, 1_000_000, 20_000, 1).unwrap();
        assert_eq!((l.instances, l.procs), (big.instances, big.procs));
        assert_eq!(
            (l.per_instance, l.per_proc),
            (big.per_instance, big.per_proc)
        );
        assert_eq!(l.source_addrs.len(), 1);
        let e = Layout::as_for(10_000, 5_000, 20_000, 1).unwrap_err();
        assert!(e.contains("5000") && e.contains("10000"), "{e}");
    }

    #[test]
    fn too_many_processes_is_refused_with_the_figures() {
        let e = Layout::for_users(10_000_000, 20_000, 1).unwrap_err();
        assert!(e.contains("server instances") && e.contains("20000"), "{e}");
    }

    #[test]
    fn free_ports_are_bindable() {
        let base = free_ports(4).unwrap();
        for p in base..base + 4 {
            TcpListener::bind((Ipv4Addr::LOCALHOST, p)).unwrap();
        }
    }
}
