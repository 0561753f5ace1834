//! Which serving thread a request runs on (the worker's `serve` module runs one per core),
//! passed along with the request as a value. Resources kept per serving thread — upstream
//! connection pools, Redis clients — are indexed by it, so that a proxied request and the
//! connection tasks it talks to run on the same thread.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Serving thread `n` (from 0): what the serving loop tags each request with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServingThread(pub usize);

impl ServingThread {
    /// Its index into per-thread resources.
    pub fn index(self) -> usize {
        self.0
    }
}

/// How many serving threads get resources of their own in what is built from now on: set once
/// at start from the configuration, before the serving threads and what they use are built.
static RESERVED: AtomicUsize = AtomicUsize::new(0);

/// Gives the next `n` serving threads resources of their own; called before those are built.
pub fn reserve(n: usize) {
    RESERVED.store(n, Ordering::Relaxed);
}

/// How many serving threads have resources of their own.
pub fn reserved() -> usize {
    RESERVED.load(Ordering::Relaxed)
}
