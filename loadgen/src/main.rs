//! The `redpacket-loadgen` binary: everything lives in the library.

/// The same allocator as `redpacket-server`; the memory per user in the README was
/// measured with it.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    std::process::exit(redpacket_loadgen::cli::main(std::env::args_os().collect()));
}
