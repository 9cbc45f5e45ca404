//! `--procs N`: the users split over N child processes, one output.
//!
//! One process may hold only as many users as it may open files. The parent re-executes
//! itself as `run --child` once per slice of users ([`child_args`]) and each child runs
//! the ordinary engine. This module is the parent's side: starting the children, a
//! reader thread per child, and waiting for them at the end. What goes over the pipes,
//! both ends of it, is [`pipe`]'s; how the parent lines up its children's seconds,
//! [`seconds`]'s. The parent feeds what its children send into the
//! same [`crate::run_state::WorkerBlock`]s its own threads would use, so everything
//! downstream is unchanged.

pub mod pipe;
pub mod seconds;

use crate::run_config::RunConfig;
use crate::run_state::RunState;
use crate::users::UserRange;
use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The parent's handle on its children.
pub struct Children {
    procs: Vec<Child>,
    stdins: Vec<ChildStdin>,
    readers: Vec<std::thread::JoinHandle<()>>,
    /// Users of all children: closing a connection costs each a little, so the time
    /// they are given to stop grows with it.
    users: u64,
}

impl Children {
    pub fn command(&mut self, line: &str) {
        for s in &mut self.stdins {
            let _ = writeln!(s, "{line}");
            let _ = s.flush();
        }
    }

    /// Waits (bounded) for every child to finish and its last figures to arrive.
    pub fn finish(mut self) {
        self.stdins.clear();
        // 30 s, plus a second per 10 000 users to close: with a million loopback users
        // on 2 CPUs, 51 children closing ~20 000 each, two were not done after 30 s.
        let deadline = Instant::now() + Duration::from_secs(30 + self.users / 10_000);
        for c in &mut self.procs {
            loop {
                match c.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        eprintln!("loadgen: child {} did not stop; killing it", c.id());
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

/// The `run` arguments that make a child drive `slice` as part of `cfg`.
pub fn child_args(cfg: &RunConfig, slice: UserRange) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "run".into(),
        "--child".into(),
        "--users".into(),
        slice.to_string(),
        "--all-users".into(),
        cfg.all_users.to_string(),
        "--connect-rate".into(),
        (cfg.connect_rate / cfg.procs.max(1) as f64).to_string(),
        "--connect-deadline".into(),
        format!("{}s", cfg.connect_deadline_s),
        "--threads".into(),
        cfg.threads.to_string(),
        "--timeout".into(),
        format!("{}ms", cfg.timeout.as_millis()),
        "--connect-timeout".into(),
        format!("{}ms", cfg.connect_timeout.as_millis()),
        "--think-ms".into(),
        format!("{}..{}", cfg.think_ms.0, cfg.think_ms.1),
        "--send-cents".into(),
        format!("{}..{}", cfg.send_cents.0, cfg.send_cents.1),
        "--seed".into(),
        cfg.seed.wrapping_add(u64::from(slice.start)).to_string(),
        "--tick".into(),
        format!("{}us", cfg.tick.as_micros()),
        "--quiet".into(),
    ];
    // Each server as given (bare, or with its range): the child applies the same rule
    // to its slice, with the run's users as --all-users.
    for s in &cfg.servers {
        a.push("--server".into());
        a.push(s.to_string());
    }
    if !cfg.source_addrs.is_empty() {
        a.push("--source-addrs".into());
        a.push(
            cfg.source_addrs
                .iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    if cfg.reconnect {
        a.push("--reconnect".into());
    }
    if !cfg.pin {
        a.push("--no-pin".into());
    }
    a
}

/// Starts one child per slice, each feeding `shared.workers[i]`.
pub fn spawn_children(
    cfg: &RunConfig,
    slices: &[UserRange],
    shared: Arc<RunState>,
) -> Result<Children, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find this program to re-run it: {e}"))?;
    let mut ch = Children {
        procs: Vec::new(),
        stdins: Vec::new(),
        readers: Vec::new(),
        users: slices.iter().map(|s| u64::from(s.len())).sum(),
    };
    for (i, slice) in slices.iter().enumerate() {
        let mut child = Command::new(&exe)
            .args(child_args(cfg, *slice))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start child {i}: {e}"))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(format!("child {i} has no pipes"));
        };
        let sh = shared.clone();
        let reader = std::thread::Builder::new()
            .name(format!("loadgen-child{i}"))
            .spawn(move || {
                // Reading a child's lines is housekeeping: it waits for the workers.
                redpacket_sys::cores::background();
                pipe::read_child(stdout, &sh.workers[i], i)
            })
            .map_err(|e| e.to_string())?;
        ch.procs.push(child);
        ch.stdins.push(stdin);
        ch.readers.push(reader);
    }
    Ok(ch)
}
