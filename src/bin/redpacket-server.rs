//! `redpacket-server`: see `redpacket-server --help`.

/// jemalloc serves 128-byte-aligned allocations from exact size classes, where glibc's
/// memalign pads each one: when every connection was a tokio task it cut the server's
/// memory per idle user by a third (bench/README.md, "Where the bytes of an idle user
/// go", has the figures). What `check` counts per connection is the host crate's
/// model (`redpacket_host::check::assess::SERVER_USER_BYTES`, and the descriptors of
/// `redpacket_host::reserve`), not a figure quoted here.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its start: a background thread returns freed pages to
/// the kernel about a second after they are freed, so memory a burst took (a million
/// outstanding packets, a login storm) leaves the RSS once it is released instead of
/// staying with the process (bench/README.md, "Memory per outstanding packet"). A thin pointer
/// to a C string, as jemalloc reads it.
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8; 85] =
    b"background_thread:true,max_background_threads:1,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

fn main() {
    std::process::exit(redpacket::cli::server_main(std::env::args_os().collect()));
}
