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
}
