//! Which serving thread the current thread is (the worker's `serve` module runs one per core).
//! Resources kept per serving thread — upstream connection pools, Redis clients — are indexed by
//! it, so a proxied request and the connection tasks it talks to run on the same thread.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

thread_local! {
    /// This thread's serving-thread number; `usize::MAX` on any other thread.
    static SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// How many serving threads get resources of their own in what is built from now on.
static RESERVED: AtomicUsize = AtomicUsize::new(0);

/// Gives the next `n` serving threads resources of their own; called before those are built.
pub fn reserve(n: usize) {
    RESERVED.store(n, Ordering::Relaxed);
}

/// How many serving threads have resources of their own.
pub fn reserved() -> usize {
    RESERVED.load(Ordering::Relaxed)
}

/// Marks the current thread as serving thread `i`.
pub fn enter(i: usize) {
    SLOT.set(i);
}

/// The current thread's serving-thread number, `usize::MAX` when it is not one.
pub fn current() -> usize {
    SLOT.get()
}
