//! What a run starts before its first second: the workers (threads here, or `--procs`
//! children), this host's sampler, `loadgen.jsonl` and the `--control` listener.

use super::control;
use super::live::Live;
use crate::engine::{self, WorkerConfig};
use crate::http;
use crate::procs::{self, Children};
use crate::run_config::RunConfig;
use crate::run_state::RunState;
use crate::users::{split_even, Targets};
use redpacket_host::sampler::SamplerHandle;
use std::fs::File;
use std::io::BufWriter;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The workers of a run: its own threads, or the children that run them.
pub struct Workers {
    pub shared: Arc<RunState>,
    pub threads: Vec<JoinHandle<()>>,
    pub children: Option<Children>,
}

/// Starts the workers: one child process per slice with `--procs`, else one thread per
/// slice (pinned to a core each unless `--no-pin`).
pub fn workers(cfg: &RunConfig, targets: &Targets) -> Result<Workers, (i32, String)> {
    if cfg.procs > 1 && !cfg.child {
        let slices = split_even(cfg.users, cfg.procs);
        let shared = Arc::new(RunState::new(cfg.all_users, &slices));
        let children = procs::spawn_children(cfg, &slices, shared.clone()).map_err(|e| (1, e))?;
        return Ok(Workers {
            shared,
            threads: Vec::new(),
            children: Some(children),
        });
    }
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
    Ok(Workers {
        shared,
        threads: handles,
        children: None,
    })
}

/// The host's network, TCP, CPU and memory once a second into `--out`, beside our own
/// log; dropping the handle at the end of the run stops it.
pub fn host_sampler(cfg: &RunConfig) -> Option<SamplerHandle> {
    let dir = cfg.out.as_ref().filter(|_| !cfg.child && cfg.sample_host)?;
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

/// `--out`/loadgen.jsonl, created with its folder (none in a child).
pub fn jsonl(cfg: &RunConfig) -> Result<Option<BufWriter<File>>, (i32, String)> {
    let Some(dir) = cfg.out.as_ref().filter(|_| !cfg.child) else {
        return Ok(None);
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| (1, format!("cannot create {}: {e}", dir.display())))?;
    let f = File::create(dir.join("loadgen.jsonl"))
        .map_err(|e| (1, format!("cannot write in {}: {e}", dir.display())))?;
    Ok(Some(BufWriter::new(f)))
}

/// Serves `--control` (`/qps`, `/stats`, `/metrics` from `live`) on its own thread, if
/// asked (never in a child).
pub fn control_listener(
    cfg: &RunConfig,
    shared: &Arc<RunState>,
    live: &Arc<Mutex<Live>>,
) -> Result<(), (i32, String)> {
    let Some(listen) = cfg.control.as_ref().filter(|_| !cfg.child) else {
        return Ok(());
    };
    let addr = listen.addr;
    let l = std::net::TcpListener::bind(addr).map_err(|e| (1, format!("--control {addr}: {e}")))?;
    let bound = l.local_addr().map_err(|e| (1, e.to_string()))?;
    if !cfg.quiet {
        let auth = if listen.token.is_some() {
            " (Authorization: Bearer, --control-token-file)"
        } else {
            ""
        };
        note!("loadgen: control on http://{bound}/qps?qps=X, /stats and /metrics{auth}");
    }
    let (sh, live) = (shared.clone(), live.clone());
    http::serve(
        l,
        http::Limits::default(),
        listen.token.clone(),
        move |target| control::control(&sh, &live, target),
    )
    .map_err(|e| (1, e.to_string()))
}
