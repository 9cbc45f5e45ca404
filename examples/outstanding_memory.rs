//! Bytes of server memory per outstanding user-to-user packet.
//!
//! Starts the real server in this process (on 127.0.0.1, port 0), asks it over HTTP for
//! a `/fahongbao` campaign of N packets to random users nobody will ever log in as (so
//! every packet stays outstanding and every notification waits for its recipient's
//! login, the costliest case), waits until all N exist, and prints the growth of this
//! process's resident memory divided by N.
//!
//! `cargo run --release --example outstanding_memory -- [N]` (default 1 000 000).

use redpacket::config::Config;
use redpacket::server::Server;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// The server binary's allocator and options (src/bin/redpacket-server.rs), so the
/// figure is the server's.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8; 85] =
    b"background_thread:true,max_background_threads:1,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect(addr)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

fn main() {
    let n: u64 = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 1_000_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: outstanding_memory [N > 0]");
            std::process::exit(2);
        }
    };
    let mut cfg = Config::for_tests();
    cfg.max_outstanding_sends = cfg.max_outstanding_sends.max(n);
    let server = match Server::start(cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot start the server: {e}");
            std::process::exit(1);
        }
    };
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_bytes();
    let path = format!("/fahongbao?qps=1000000&sum={n}&min=0&max=4294967295");
    match http_get(server.control, &path) {
        Ok(r) if r.starts_with("HTTP/1.1 200") => {}
        other => {
            eprintln!("campaign not started: {other:?}");
            std::process::exit(1);
        }
    }
    let started = Instant::now();
    // Every packet made and each of its three notifications kept for a later login.
    let done = |s: &redpacket_formats::server::Snapshot| {
        s.outstanding.send >= n && s.send.deferred >= 3 * n
    };
    while !done(&server.snapshot()) {
        if started.elapsed() > Duration::from_secs(120) {
            let s = server.snapshot();
            eprintln!(
                "after 120 s: {:?}, {} deferred",
                s.outstanding, s.send.deferred
            );
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    let at_once = rss_bytes();
    // jemalloc hands freed pages (grown tables, drained inboxes) back after ~10 s.
    std::thread::sleep(Duration::from_secs(12));
    let after = rss_bytes();
    println!(
        "at once: {:.0} bytes per outstanding packet (RSS {:.1} MB)",
        at_once.saturating_sub(before) as f64 / n as f64,
        at_once as f64 / 1e6
    );
    let s = server.snapshot();
    println!(
        "settled (12 s later): outstanding packets {} (deferred notifications {}), RSS {:.1} MB -> {:.1} MB: {:.0} bytes per outstanding packet",
        s.outstanding.send,
        s.send.deferred,
        before as f64 / 1e6,
        after as f64 / 1e6,
        after.saturating_sub(before) as f64 / n as f64
    );
    let sum = server.stop();
    if !sum.send_balanced {
        eprintln!("the ledger does not balance: {sum:?}");
        std::process::exit(1);
    }
}
