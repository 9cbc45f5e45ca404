//! `redpacket-server`: see `redpacket-server --help`.

fn main() {
    std::process::exit(redpacket::cli::server_main(std::env::args_os().collect()));
}
