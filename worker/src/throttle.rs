//! Throttling of failed authentication per client address (admin login, proxy keys, integration
//! info), so no endpoint is a free oracle for guessing secrets.
//!
//! The request path pays one relaxed atomic load while nobody is blocked; the map behind a mutex is
//! touched only on failures and while some address is blocked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: Instant,
    failures: u32,
    blocked_until: Option<Instant>,
}

/// Sliding-window failure counter per address.
#[derive(Debug)]
pub struct FailureThrottle {
    max_failures: u32,
    window: Duration,
    block: Duration,
    entries: Mutex<HashMap<String, Entry>>,
    blocked: AtomicUsize,
}

impl FailureThrottle {
    /// `max_failures` within `window` block the address for `block`.
    pub fn new(max_failures: u32, window: Duration, block: Duration) -> Self {
        Self {
            max_failures,
            window,
            block,
            entries: Mutex::new(HashMap::new()),
            blocked: AtomicUsize::new(0),
        }
    }

    /// How long `addr` must still wait, if it is blocked.
    pub fn blocked_for(&self, addr: &str) -> Option<Duration> {
        if self.blocked.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let now = Instant::now();
        let mut entries = self.entries.lock();
        let e = entries.get_mut(addr)?;
        match e.blocked_until {
            Some(until) if until > now => Some(until - now),
            Some(_) => {
                e.blocked_until = None;
                e.failures = 0;
                e.window_start = now;
                self.blocked.fetch_sub(1, Ordering::Relaxed);
                None
            }
            None => None,
        }
    }

    /// Records a failure; returns the block duration when this failure blocks the address.
    pub fn record_failure(&self, addr: &str) -> Option<Duration> {
        let now = Instant::now();
        let mut entries = self.entries.lock();
        if entries.len() > 100_000 {
            entries.retain(|_, e| {
                e.blocked_until.is_some() || now.duration_since(e.window_start) < self.window
            });
        }
        let e = entries.entry(addr.to_owned()).or_insert(Entry {
            window_start: now,
            failures: 0,
            blocked_until: None,
        });
        if e.blocked_until.is_some() {
            return None;
        }
        if now.duration_since(e.window_start) > self.window {
            e.window_start = now;
            e.failures = 0;
        }
        e.failures += 1;
        if e.failures >= self.max_failures {
            e.blocked_until = Some(now + self.block);
            self.blocked.fetch_add(1, Ordering::Relaxed);
            return Some(self.block);
        }
        None
    }

    /// Forgets an address's failures (after a successful login).
    pub fn record_success(&self, addr: &str) {
        if let Some(e) = self.entries.lock().get_mut(addr)
            && e.blocked_until.is_none()
        {
            e.failures = 0;
        }
    }
}

impl Default for FailureThrottle {
    /// 10 failures a minute block for a minute.
    fn default() -> Self {
        Self::new(10, Duration::from_secs(60), Duration::from_secs(60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_failures_and_only_that_address() {
        let t = FailureThrottle::new(3, Duration::from_secs(60), Duration::from_millis(50));
        assert!(t.blocked_for("a").is_none());
        assert!(t.record_failure("a").is_none());
        assert!(t.record_failure("a").is_none());
        assert_eq!(t.record_failure("a"), Some(Duration::from_millis(50)));
        assert!(t.blocked_for("a").is_some());
        assert!(t.blocked_for("b").is_none());
        std::thread::sleep(Duration::from_millis(60));
        assert!(t.blocked_for("a").is_none());
        assert!(
            t.record_failure("a").is_none(),
            "the count restarts after a block"
        );
    }

    #[test]
    fn success_resets_the_count() {
        let t = FailureThrottle::new(2, Duration::from_secs(60), Duration::from_secs(60));
        t.record_failure("a");
        t.record_success("a");
        assert!(t.record_failure("a").is_none());
    }
}
