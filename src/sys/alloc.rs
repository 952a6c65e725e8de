//! The global allocator: the C library's `malloc` for small blocks, `mmap(2)` for large ones.
//!
//! Why: the daemon allocates its buffers once, at start — the resend store (~0.7 MiB), the
//! reorder buffer (~0.4 MiB), receive slots — and most of their pages are used only under load
//! (or never, on slow links). `mmap` gives zero-filled pages that take memory when first
//! written, whatever the C library. Zig's libc (our static router builds) zeroes `calloc`
//! blocks by writing them, which made every buffer resident from the first second: 2.5 MiB
//! for a daemon at rest. glibc already maps large blocks; this makes every build behave so.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;

/// Blocks of at least this size are mapped; smaller ones come from `malloc`.
const MAPPED: usize = 64 * 1024;

#[derive(Debug)]
pub struct Allocator;

/// Large blocks are page-aligned, which covers any alignment a Rust type asks for.
fn mapped(layout: Layout) -> bool {
    layout.size() >= MAPPED && layout.align() <= 4096
}

// SAFETY: every block comes from exactly one of two sources, chosen by its layout alone
// (`mapped`), and goes back to the same one: `GlobalAlloc` passes the same layout to `dealloc`
// as to `alloc`, and the default `realloc` allocates anew, copies and frees through these
// methods. mmap returns page-aligned memory (satisfying `align() <= 4096`) or MAP_FAILED,
// turned into null as GlobalAlloc requires; its pages are zero-filled.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if mapped(layout) {
            map(layout.size())
        } else {
            // SAFETY: forwarded with the caller's guarantees (non-zero size).
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if mapped(layout) {
            map(layout.size())
        } else {
            // SAFETY: as in `alloc`.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if mapped(layout) {
            // SAFETY: `ptr` came from `map` with this size (same layout, same choice).
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
        } else {
            // SAFETY: `ptr` came from `System` with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }
}

/// `size` bytes of private, zero-filled, not yet resident memory; null on failure.
fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches
    // nothing of ours.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED { ptr::null_mut() } else { p.cast() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_blocks_are_mapped_zeroed_and_freed_small_ones_are_not() {
        let a = Allocator;
        for (size, align) in [(16, 8), (MAPPED - 1, 16), (MAPPED, 8), (1 << 20, 4096), (MAPPED, 8192)] {
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero sizes; every block is freed with its layout.
            unsafe {
                let p = a.alloc_zeroed(layout);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0);
                let block = std::slice::from_raw_parts_mut(p, size);
                assert!(block.iter().all(|&b| b == 0));
                block.fill(7);
                let q = a.realloc(p, layout, size * 2);
                assert!(std::slice::from_raw_parts(q, size).iter().all(|&b| b == 7));
                a.dealloc(q, Layout::from_size_align(size * 2, align).unwrap());
            }
        }
    }
}
