//! The server's command-line entry point, as a library function so that other binaries
//! (the load generator's local run) can start the very same server in a child process.
//!
//! [`ServerCli`] is the whole command line: the server's flags ([`ServerArgs`]) or a
//! subcommand (`check`, and clap's `help`). [`server_main`] parses it and runs one of
//! them: [`check_main`], or the server's life in steps (check the flags, record the
//! start, bind and serve, wait for a signal, drain, account).

use crate::config::{HostFiles, ServerArgs};
use crate::lives::Life;
use crate::server::{Server, StartError, Summary};
use clap::{Args, Parser, Subcommand};
use redpacket_host::sampler::SamplerHandle;
use std::ffi::OsString;
use std::path::PathBuf;

/// Exit codes: 0 clean, 1 failure while running (or a ledger that does not balance),
/// 2 bad flag, 3 cannot bind.
pub const EXIT_FAILURE: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_BIND: i32 = 3;

/// redpacket-server: a thread-per-core red-packet server, wire-compatible with the old system's clients.
///
/// Clients log in (frame 0x0000), shake for red packets (0x0002), grab user-to-user red
/// packets pushed to them (0x0005), and send their own (0x0007). Campaigns are started
/// over HTTP on the control address: `/yaohongbao?qps=R&sum=N` issues N shake packets at
/// R per second, `/fahongbao?qps=R&sum=N&min=A&max=B` sends N user-to-user packets, each
/// to 3 random users in [A, B]. `/stats` (JSON) and `/metrics` (Prometheus) report.
///
/// Without a subcommand it serves, with the flags below. `redpacket-server check` says
/// whether this host can hold N connections as it is (see `redpacket-server help check`).
///
/// Exit codes: 0 clean shutdown, 1 failure while running, 2 bad flag, 3 cannot bind.
#[derive(Parser, Debug)]
#[command(
    name = "redpacket-server",
    version,
    verbatim_doc_comment,
    args_conflicts_with_subcommands = true
)]
pub struct ServerCli {
    #[command(subcommand)]
    pub command: Option<ServerCommand>,
    #[command(flatten)]
    pub args: ServerArgs,
}

/// The subcommands of `redpacket-server`.
#[derive(Subcommand, Debug)]
pub enum ServerCommand {
    /// Can this host hold N connections as it is?
    ///
    /// Reads the open-files limits (soft, hard, fs.nr_open, fs.file-max), memory, CPUs and
    /// every key of sysctl/server.conf, and says for each the value, the one wanted and what
    /// it limits. Limits bound the count (open files, memory, keys marked scale=conn): the
    /// smallest is how many connections the host can hold, and the first to raise. Advice
    /// (somaxconn, backlogs, TCP timers: settings that do not bound the count) is listed
    /// apart and fails the check only with --strict.
    ///
    /// Exit codes: 0 it can hold them, 1 it cannot (or --strict and advice), 2 bad flag.
    #[command(verbatim_doc_comment)]
    Check(CheckArgs),
}

/// Flags of `redpacket-server check`.
#[derive(Args, Debug, Clone)]
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

/// Runs `redpacket-server` with `args` (the first is the program name) until SIGINT or
/// SIGTERM, or its subcommand; returns the exit code.
pub fn server_main(args: Vec<OsString>) -> i32 {
    let cli = match ServerCli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            // Help and version go to stdout with 0; every other error is usage, 2.
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { 0 };
        }
    };
    match cli.command {
        Some(ServerCommand::Check(a)) => check_main(&a),
        None => match serve(cli.args) {
            Ok(code) => code,
            Err((code, msg)) => {
                eprintln!("redpacket-server: {msg}");
                code
            }
        },
    }
}

/// Runs `redpacket-server check`; returns the exit code.
pub fn check_main(args: &CheckArgs) -> i32 {
    use redpacket_host::check;
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

/// The server's life: check the flags, record the start, serve until a signal, drain,
/// then log and write the final account. Errors carry their exit code.
fn serve(args: ServerArgs) -> Result<i32, (i32, String)> {
    let host_files = args.host_files();
    let instance = args.instance;
    let summary_out = host_files
        .as_ref()
        .map(|f| f.summary.clone())
        .or_else(|| args.summary_out.clone());
    if let Some(f) = &host_files {
        std::fs::create_dir_all(&f.dir).map_err(|e| {
            (
                EXIT_USAGE,
                format!("cannot create {}: {e}", f.dir.display()),
            )
        })?;
    }
    let cfg = args.validate().map_err(|msg| (EXIT_USAGE, msg))?;
    init_logging();
    if let Some(i) = instance {
        tracing::info!("instance {i} of this host");
    }
    let life = host_files.as_ref().map(begin_life).transpose()?;
    let handle = Server::start(cfg).map_err(|e| match e {
        e @ StartError::Bind { .. } => (EXIT_BIND, e.to_string()),
        e => (EXIT_FAILURE, e.to_string()),
    })?;
    let sampler = host_files.as_ref().and_then(sample_host);
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
    log_final_account(&summary);
    write_summary(summary_out, &summary);
    Ok(if summary.shake_balanced && summary.send_balanced {
        0
    } else {
        EXIT_FAILURE
    })
}

/// A server restarted in its folder (systemd after a kill) keeps the earlier life's
/// lines and says whether that life's ledger was lost.
fn begin_life(f: &HostFiles) -> Result<Life, (i32, String)> {
    let life = crate::lives::begin(
        &f.dir,
        &f.stats,
        &f.summary,
        redpacket_formats::server::unix_now_f64(),
        std::process::id(),
    )
    .map_err(|e| {
        let msg = format!("cannot record this start in {}: {e}", f.dir.display());
        (EXIT_FAILURE, msg)
    })?;
    if !life.lost.is_empty() {
        tracing::warn!(
            "life {} in {}: {} earlier life(s) ended without a final account \
             (killed); their ledgers are lost",
            life.life,
            f.dir.display(),
            life.lost.len()
        );
    }
    Ok(life)
}

/// The host sampler runs beside the server for the length of the run (one per host:
/// instance 1 of several samples for all of them).
fn sample_host(f: &HostFiles) -> Option<SamplerHandle> {
    let dir = f.sample.as_ref()?;
    match redpacket_host::sampler::record_host(dir) {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!("cannot sample this host into {}: {e}", dir.display());
            None
        }
    }
}

/// The final account in one log line: connections, shakes and both ledgers.
fn log_final_account(summary: &Summary) {
    let s = &summary.stats;
    let verdict = |ok: bool| if ok { "balanced" } else { "NOT BALANCED" };
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
        verdict(summary.shake_balanced),
        s.send.created_cents,
        s.send.grabbed_cents,
        s.send.refunded_cents,
        summary.held.send_cents,
        verdict(summary.send_balanced),
    );
}

/// Writes the final account to `--summary-out` (or the host folder's), if any.
fn write_summary(path: Option<PathBuf>, summary: &Summary) {
    let Some(path) = path else { return };
    let body = serde_json::to_string_pretty(summary).unwrap_or_default();
    if let Err(e) = std::fs::write(&path, body + "\n") {
        eprintln!("redpacket-server: cannot write {}: {e}", path.display());
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
