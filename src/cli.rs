//! The server's command-line entry point, as a library function so that other binaries
//! (the load generator's local run) can start the very same server in a child process.

use crate::config::ServerArgs;
use crate::server::{Server, StartError};
use clap::Parser;
use std::ffi::OsString;

/// Exit codes: 0 clean, 1 failure while running (or a ledger that does not balance),
/// 2 bad flag, 3 cannot bind.
pub const EXIT_FAILURE: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_BIND: i32 = 3;

/// Sets up logging to stderr (`RUST_LOG` overrides the `info` default) once per process.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// `redpacket-server check`: can this host hold N connections as it is?
///
/// Reads the open-files limits (soft, hard, fs.nr_open, fs.file-max), memory, CPUs and
/// every key of sysctl/server.conf, and says for each the value, the one wanted and what
/// it limits. Limits bound the count (open files, memory, keys marked scale=conn): the
/// smallest is how many connections the host can hold, and the first to raise. Advice
/// (somaxconn, backlogs, TCP timers: settings that do not bound the count) is listed
/// apart and fails the check only with --strict.
/// Exit codes: 0 it can hold them, 1 it cannot (or --strict and advice), 2 bad flag.
#[derive(Parser, Debug, Clone)]
#[command(name = "redpacket-server check", verbatim_doc_comment)]
pub struct CheckArgs {
    /// Connections this host must hold, all instances together.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub connections: u64,
    /// Server processes on this host sharing the connections (each has its own
    /// open-files limit).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub instances: u64,
    /// CPUs the workers will run on, as for the server (`0-3,6`).
    #[arg(long)]
    pub cores: Option<String>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Fail (exit 1) also when advice is short, not only when a limit is.
    #[arg(long)]
    pub strict: bool,
}

/// Runs `redpacket-server check` (`args` without the word `check`); returns the exit code.
pub fn check_main(args: Vec<OsString>) -> i32 {
    use redpacket_host::check;
    let args = match CheckArgs::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    // CPUs this host does not have are a bad flag, as they are for the server.
    let cores = match args.cores.as_deref().map(|list| {
        let want = redpacket_sys::cores::parse_list(list)?;
        redpacket_sys::cores::check_allowed(&want, &redpacket_sys::cores::allowed_cpus())?;
        Ok::<_, String>(want)
    }) {
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => {
            eprintln!("redpacket-server check: {e}");
            return EXIT_USAGE;
        }
        None => None,
    };
    let ask = check::ServerAsk {
        connections: args.connections,
        instances: args.instances,
        cores,
        control_max_conns: crate::config::DEFAULT_CONTROL_MAX_CONNS,
    };
    let conf = redpacket_host::conf::Conf::server();
    let report =
        check::server(&ask, Some(&conf), &check::HostView::read(Some(&conf))).strict(args.strict);
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.human());
    }
    report.exit_code()
}

/// Runs `redpacket-server` with `args` (the first is the program name) until SIGINT or
/// SIGTERM, and returns the exit code. `redpacket-server check ...` runs [`check_main`].
pub fn server_main(mut args: Vec<OsString>) -> i32 {
    if args.get(1).is_some_and(|a| a == "check") {
        args.remove(1);
        return check_main(args);
    }
    let args = match ServerArgs::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let host_files = args.host_files();
    let instance = args.instance;
    let summary_out = host_files
        .as_ref()
        .map(|f| f.summary.clone())
        .or_else(|| args.summary_out.clone());
    if let Some(f) = &host_files {
        if let Err(e) = std::fs::create_dir_all(&f.dir) {
            eprintln!("redpacket-server: cannot create {}: {e}", f.dir.display());
            return EXIT_USAGE;
        }
    }
    let cfg = match args.validate() {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("redpacket-server: {msg}");
            return EXIT_USAGE;
        }
    };
    init_logging();
    if let Some(i) = instance {
        tracing::info!("instance {i} of this host");
    }
    // A server restarted in its folder (systemd after a kill) keeps the earlier life's
    // lines and says whether that life's ledger was lost.
    let life = match &host_files {
        Some(f) => match crate::lives::begin(
            &f.dir,
            &f.stats,
            &f.summary,
            redpacket_formats::server::unix_now_f64(),
            std::process::id(),
        ) {
            Ok(life) => {
                if !life.lost.is_empty() {
                    tracing::warn!(
                        "life {} in {}: {} earlier life(s) ended without a final account \
                         (killed); their ledgers are lost",
                        life.life,
                        f.dir.display(),
                        life.lost.len()
                    );
                }
                Some(life)
            }
            Err(e) => {
                eprintln!(
                    "redpacket-server: cannot record this start in {}: {e}",
                    f.dir.display()
                );
                return EXIT_FAILURE;
            }
        },
        None => None,
    };
    let handle = match Server::start(cfg) {
        Ok(h) => h,
        Err(e @ StartError::Bind { .. }) => {
            eprintln!("redpacket-server: {e}");
            return EXIT_BIND;
        }
        Err(e) => {
            eprintln!("redpacket-server: {e}");
            return EXIT_FAILURE;
        }
    };
    // The host sampler runs beside the server for the length of the run (one per host:
    // instance 1 of several samples for all of them).
    let sampler = match host_files.as_ref().and_then(|f| f.sample.as_ref()) {
        Some(dir) => match redpacket_host::sampler::record_host(dir) {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!("cannot sample this host into {}: {e}", dir.display());
                None
            }
        },
        None => None,
    };
    if let Err(e) = wait_for_signal() {
        eprintln!("redpacket-server: cannot wait for signals: {e}");
    }
    tracing::info!("shutting down: no new connections, draining");
    handle.shutdown();
    let mut summary = handle.wait();
    if let Some(life) = life {
        summary.life = life.life;
        summary.lives_lost = life.lost.len() as u32;
        summary.lost_lives = life.lost;
    }
    if let Some(s) = sampler {
        let _ = s.stop();
    }
    let s = &summary.stats;
    tracing::info!(
        "final: {} connections served, {} shakes ({} won, {} none, {} overloaded); \
         shake cents issued {} = won {} + held {} [{}]; send cents created {} = grabbed {} + refunded {} + held {} [{}]",
        s.connections.accepted,
        s.requests.shake,
        s.shake.won,
        s.shake.none,
        s.shake.overloaded,
        s.shake.issued_cents,
        s.shake.won_cents,
        summary.held.shake_cents,
        if summary.shake_balanced { "balanced" } else { "NOT BALANCED" },
        s.send.created_cents,
        s.send.grabbed_cents,
        s.send.refunded_cents,
        summary.held.send_cents,
        if summary.send_balanced { "balanced" } else { "NOT BALANCED" },
    );
    if let Some(path) = summary_out {
        let body = serde_json::to_string_pretty(&summary).unwrap_or_default();
        if let Err(e) = std::fs::write(&path, body + "\n") {
            eprintln!("redpacket-server: cannot write {}: {e}", path.display());
        }
    }
    if summary.shake_balanced && summary.send_balanced {
        0
    } else {
        EXIT_FAILURE
    }
}

fn wait_for_signal() -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        Ok(())
    })
}
