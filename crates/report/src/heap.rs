//! The heap the report process holds, counted, so that what it keeps from a run folder
//! has a bound in bytes of memory, not only in bytes of files.
//!
//! A file's size says little about what it costs once parsed: a line of a few bytes
//! becomes a record of hundreds, a map entry of six bytes becomes a B-tree slot and an
//! allocation. Counting what is allocated is exact where any estimate per type would
//! drift from the types. `redpacket-report` installs [`Counting`] as its allocator; the
//! loader stops keeping lines once [`in_use`] passes
//! `safe_fs::RUN_HEAP_CAP`. In a program without it (the library's tests),
//! [`in_use`] is `None` and only the byte budget applies.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

static IN_USE: AtomicUsize = AtomicUsize::new(0);

/// What an allocation of `size` bytes takes from the system allocator: glibc rounds to
/// 16 bytes with an 8-byte header, 32 at least. Counting the request alone would
/// undercount the many small keys of a map several times over.
fn chunk(size: usize) -> usize {
    (size.saturating_add(8 + 15) & !15).max(32)
}

/// The system allocator, counting the bytes it hands out and takes back.
pub struct Counting;

// SAFETY: every call is passed on to `System` unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc`, passed on.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            IN_USE.fetch_add(chunk(layout.size()), Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc_zeroed`, passed on.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            IN_USE.fetch_add(chunk(layout.size()), Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc`, passed on.
        unsafe { System.dealloc(ptr, layout) };
        IN_USE.fetch_sub(chunk(layout.size()), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract for `realloc`, passed on.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            IN_USE.fetch_add(chunk(new_size), Relaxed);
            IN_USE.fetch_sub(chunk(layout.size()), Relaxed);
        }
        p
    }
}

/// Heap bytes the process holds now; `None` when [`Counting`] is not its allocator.
pub fn in_use() -> Option<u64> {
    match IN_USE.load(Relaxed) {
        0 => None,
        n => Some(n as u64),
    }
}
