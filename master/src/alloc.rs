//! The process's allocator: mimalloc, called the way `std`'s `System` allocator calls `malloc`.
//!
//! The `mimalloc` crate's `GlobalAlloc` passes every request to `mi_malloc_aligned`, whose fast
//! path (in mimalloc v3) serves only blocks up to 1 KiB. Every larger one (hyper's read buffers,
//! the proxy's boxed futures, tokio's tasks: about a dozen per proxied request) took the generic
//! aligned path, ~190 instructions more than `mi_malloc` spends on it. `mi_malloc` already returns
//! blocks aligned to 16 bytes whenever they are at least that large (mimalloc's `MI_MAX_ALIGN_SIZE`,
//! as C's `max_align_t`), so a layout that asks for no more, and is at least as large as its
//! alignment (as `std` requires of `malloc`), goes there; the others go to the aligned functions.
//! Its `override` feature makes it `malloc`/`free` for the C code too (the bundled SQLite).
//!
//! The one module of the workspace with `unsafe` (the workspace denies it; it was `forbid`, which
//! no module can lift): a `GlobalAlloc` is an unsafe trait over foreign functions. The `mimalloc`
//! crate's own implementation is as unsafe; this one differs only in which function each layout
//! goes to, the same choice `std`'s `System` allocator makes for `malloc`. Pinned by the test
//! below across sizes and alignments.
#![expect(
    unsafe_code,
    reason = "a GlobalAlloc over mimalloc's C functions; see the module documentation"
)]

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as ffi;

/// The largest alignment `mi_malloc` guarantees (for blocks at least that large).
const MIN_ALIGN: usize = 16;

/// mimalloc as the global allocator (see the module documentation).
pub struct MiMalloc;

/// Whether `mi_malloc(size)` returns a block aligned enough for `align`.
#[inline]
fn plain(align: usize, size: usize) -> bool {
    align <= MIN_ALIGN && align <= size
}

// SAFETY: each function forwards to mimalloc with the layout's size, and with its alignment
// whenever the plain functions do not already guarantee it; `dealloc` frees any of them.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc accepts any size; the alignment is a power of two (a `Layout`'s).
        unsafe {
            if plain(layout.align(), layout.size()) {
                ffi::mi_malloc(layout.size()).cast()
            } else {
                ffi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe {
            if plain(layout.align(), layout.size()) {
                ffi::mi_zalloc(layout.size()).cast()
            } else {
                ffi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (the caller's contract).
        unsafe { ffi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout` (the caller's contract); the
        // aligned variant keeps the alignment where the plain one does not guarantee it.
        unsafe {
            if plain(layout.align(), new_size) {
                ffi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                ffi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `len` bytes at `p` all equal `b`.
    ///
    /// # Safety
    /// `p` must point to `len` readable bytes.
    unsafe fn all(p: *const u8, len: usize, b: u8) -> bool {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(p, len) }
            .iter()
            .all(|x| *x == b)
    }

    /// Sizes from 1 byte to past mimalloc's medium blocks, at alignments up to a page: each block
    /// is as aligned as asked (zeroed when asked), and growing then shrinking it keeps its
    /// alignment and its contents.
    #[test]
    fn blocks_are_aligned_as_asked_and_keep_their_contents() {
        let a = MiMalloc;
        let sizes =
            (1..=300)
                .chain((301..=9000).step_by(61))
                .chain([16_384, 65_536, 1 << 20, 4 << 20]);
        for size in sizes {
            for align in [1, 2, 4, 8, 16, 32, 64, 128, 4096] {
                let layout = Layout::from_size_align(size, align).expect("a valid layout");
                for zeroed in [false, true] {
                    let at = format!("size {size}, align {align}, zeroed {zeroed}");
                    // SAFETY: non-zero sizes; each block is used within its size and freed
                    // once, with the layout it has.
                    unsafe {
                        let p = if zeroed {
                            a.alloc_zeroed(layout)
                        } else {
                            a.alloc(layout)
                        };
                        assert!(!p.is_null(), "{at}");
                        assert_eq!(p as usize % align, 0, "{at}");
                        assert!(!zeroed || all(p, size, 0), "{at}: not zeroed");
                        std::ptr::write_bytes(p, 0xA5, size);
                        let grown = size * 2 + 3;
                        let p = a.realloc(p, layout, grown);
                        assert!(!p.is_null(), "{at}");
                        assert_eq!(p as usize % align, 0, "{at}: grown");
                        assert!(all(p, size, 0xA5), "{at}: grown, contents lost");
                        let shrunk = size.div_ceil(2);
                        let grown_layout = Layout::from_size_align(grown, align).expect("valid");
                        let p = a.realloc(p, grown_layout, shrunk);
                        assert!(!p.is_null(), "{at}");
                        assert_eq!(p as usize % align, 0, "{at}: shrunk");
                        assert!(all(p, shrunk, 0xA5), "{at}: shrunk, contents lost");
                        a.dealloc(p, Layout::from_size_align(shrunk, align).expect("valid"));
                    }
                }
            }
        }
    }
}
