//! The live fleet view of a run on this one host: the demo (its server instances and
//! its load generator processes) and `run --procs` (its processes), shown once a second
//! by the same view the fleet uses (`redpacket-live`), from the same files, and kept in
//! the run folder's `live.jsonl`.
//!
//! It follows the files the run writes for the report (the load generator's merged
//! `loadgen.jsonl`, each server instance's `server.jsonl`), so the second it shows is the
//! second the report will show. It replaces the load generator's own progress line.

use redpacket_formats::live;
use redpacket_live::{Role, Source};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A view running in a thread until [`FleetView::finish`].
pub struct FleetView {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FleetView {
    /// Starts showing the run whose load generator writes `loadgen_dir/loadgen.jsonl`
    /// (shown as `host`) and whose servers write `servers` (each shown by its name),
    /// into `run_dir/live.jsonl`. `None`, having said why, when the view cannot start:
    /// the run goes on without it.
    pub fn start(
        run_dir: &Path,
        host: &str,
        loadgen_dir: &Path,
        servers: &[(String, PathBuf)],
    ) -> Option<FleetView> {
        let mut hosts = vec![(
            source(host, &loadgen_dir.join("loadgen.jsonl")),
            Role::Loadgen,
        )];
        for (name, file) in servers {
            hosts.push((source(name, file), Role::Server));
        }
        let path = run_dir.join(live::FILE);
        let file = match std::fs::File::create(&path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("loadgen: no live view ({}: {e})", path.display());
                return None;
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("fleet view".into())
            .spawn(move || {
                // The view and its followers (threads and `tail`s, which inherit it)
                // wait for the run's workers when both want a CPU.
                redpacket_sys::cores::background();
                let mut out = std::io::BufWriter::new(file);
                let mut print = |s: &str| eprintln!("{s}");
                if let Err(e) = redpacket_live::watch(&hosts, None, &mut out, &mut print, &flag) {
                    eprintln!("loadgen: the live view stopped: {e}");
                }
            })
            .ok()?;
        Some(FleetView {
            stop,
            thread: Some(thread),
        })
    }

    /// Shows the last seconds (the files' last lines) and stops.
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FleetView {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn source(name: &str, file: &Path) -> Source {
    Source {
        host: name.to_string(),
        files: vec![file.display().to_string()],
        ssh: Vec::new(),
        sudo: false,
    }
}
