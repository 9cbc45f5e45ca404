//! Memory and CPUs of this host, through the `sysinfo` crate.
//!
//! Each call refreshes only what it returns (sysinfo reads `/proc/meminfo` for memory
//! and `/proc/stat` for the CPU list), so a caller pays for nothing else.

use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

/// Memory figures, bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    pub total: u64,
    /// `MemAvailable`: what new allocations can get without swapping.
    pub available: u64,
}

/// Reads memory now.
pub fn memory() -> Memory {
    let sys = System::new_with_specifics(
        RefreshKind::nothing().with_memory(MemoryRefreshKind::nothing().with_ram()),
    );
    Memory {
        total: sys.total_memory(),
        available: sys.available_memory(),
    }
}

/// CPUs online on this host (the process's affinity may allow fewer: see
/// [`crate::cores::allowed_cpus`]).
pub fn cpu_count() -> usize {
    let sys =
        System::new_with_specifics(RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing()));
    sys.cpus().len()
}

/// CLOCK_MONOTONIC now, ns: the clock `std::time::Instant` reads, one for every process
/// of the host, so processes can act in step (the load generator's ticks).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes into `ts`, a live timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_host() {
        let m = memory();
        assert!(
            m.total > 0 && m.available > 0 && m.available <= m.total,
            "{m:?}"
        );
        assert!(cpu_count() >= 1);
    }

    #[test]
    fn the_monotonic_clock_is_the_one_instant_reads() {
        let (a, i) = (super::monotonic_ns(), std::time::Instant::now());
        std::thread::sleep(std::time::Duration::from_millis(20));
        let (b, j) = (super::monotonic_ns(), std::time::Instant::now());
        let d = (j - i).as_nanos() as i128 - i128::from(b - a);
        assert!(
            d.abs() < 1_000_000,
            "the two clocks drifted {d} ns apart in 20 ms"
        );
    }
}
