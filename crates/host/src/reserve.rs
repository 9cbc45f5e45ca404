//! Descriptors a process keeps back from its connections: the one home of the figures
//! that the server's default `--max-conns`, `check` and the demo's layout all use.

/// Descriptors kept back for everything but connections: listeners, the control
/// server, epoll, stdio, log and result files.
pub const FD_RESERVE: u64 = 64;

/// Connections the control server's accept loop takes in a row before it lets the
/// connections run. An evicted connection's descriptor is closed when its task is next
/// polled, so this is also how far over its cap the control server's descriptors may
/// briefly go (the control plane uses this very constant).
pub const EVICT_BURST: usize = 16;

/// The control server's default connection cap (`--control-max-conns`).
pub const DEFAULT_CONTROL_MAX_CONNS: u64 = 64;

/// Connections one process can hold with `nofile` descriptors (at least 1).
pub fn conns_for(nofile: u64) -> u64 {
    conns_for_with(nofile, FD_RESERVE)
}

/// Connections one process can hold with `nofile` descriptors when `reserve` of them are
/// kept for other things (at least 1).
pub fn conns_for_with(nofile: u64, reserve: u64) -> u64 {
    nofile.saturating_sub(reserve).max(1)
}

/// Descriptors the server keeps back beyond [`FD_RESERVE`]: the control server's
/// connections (its cap, the burst it may accept before evicting, its listener and a
/// spare) and each worker's own (runtime, listener, spare). One home for the figure the
/// server's default `--max-conns` and `check` both use.
pub fn server_set_apart(control_max_conns: u64, workers: usize) -> u64 {
    control_max_conns + EVICT_BURST as u64 + 2 + 4 * workers as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_keeps_its_reserve() {
        assert_eq!(conns_for(20_000), 19_936);
        assert_eq!(conns_for(10), 1);
    }
}
