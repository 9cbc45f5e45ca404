//! The `redpacket-loadgen` binary: everything lives in the library.

fn main() {
    std::process::exit(redpacket_loadgen::cli::main(std::env::args_os().collect()));
}
