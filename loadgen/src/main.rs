//! The `redpacket-loadgen` binary: everything lives in the library.

/// The same allocator as `redpacket-server`, which this binary also runs (the demo's
/// server child), so a server started either way costs the same memory.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    std::process::exit(redpacket_loadgen::cli::main(std::env::args_os().collect()));
}
