//! `redpacket-server`: see `redpacket-server --help`.

/// jemalloc serves tokio's 128-byte-aligned task and I/O-registration allocations from
/// exact size classes, where glibc's memalign pads each one: with 19 000 idle users it
/// cut the server's memory from 985 to 658 bytes per user (README, Benchmarks).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    std::process::exit(redpacket::cli::server_main(std::env::args_os().collect()));
}
