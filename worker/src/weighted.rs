//! Lock-free smooth weighted round-robin.
//!
//! nginx's smooth WRR needs mutable per-item state on every pick. The sequence it produces is
//! periodic with period Σweights, so we precompute one period when the configuration is built and
//! pick with an atomic counter: the same spread as GPT-Load's SWRR, no lock on the request path.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

/// Longest precomputed period; larger weight sums are scaled down proportionally.
const MAX_PERIOD: u64 = 4096;

/// A weighted set of items picked in smooth weighted round-robin order.
#[derive(Debug)]
pub struct Weighted<T> {
    items: Vec<T>,
    weights: Vec<u64>,
    /// Indices into `items`, one SWRR period.
    sequence: Vec<u32>,
    cursor: AtomicUsize,
    /// Tables over subsets of `items` (bit i set = item i excluded), built when a pick has to
    /// skip items; keeps the spread among the remaining items smooth and weighted.
    subsets: Mutex<HashMap<u64, Arc<Weighted<usize>>>>,
}

impl<T> Weighted<T> {
    /// Builds the table; items with weight ≤ 0 are excluded.
    pub fn new(weighted: Vec<(T, i64)>) -> Self {
        let (items, weights): (Vec<T>, Vec<u64>) = weighted
            .into_iter()
            .filter(|(_, w)| *w > 0)
            .map(|(t, w)| (t, w as u64))
            .unzip();
        let sequence = swrr_sequence(&weights);
        Self {
            items,
            weights,
            sequence,
            cursor: AtomicUsize::new(0),
            subsets: Mutex::new(HashMap::new()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn items(&self) -> &[T] {
        &self.items
    }

    /// The next item, or `None` when there is none.
    pub fn pick(&self) -> Option<&T> {
        match self.items.len() {
            0 => None,
            1 => self.items.first(),
            _ => {
                let i = self.cursor.fetch_add(1, Ordering::Relaxed) % self.sequence.len();
                self.items.get(self.sequence[i] as usize)
            }
        }
    }

    /// The next item among those `accept` allows, in smooth weighted order over exactly those items.
    pub fn pick_where(&self, mut accept: impl FnMut(&T) -> bool) -> Option<&T> {
        let first = self.pick()?;
        if accept(first) {
            return Some(first);
        }
        if self.items.len() > 64 {
            // Bitmask limit: fall back to the first acceptable item in sequence order.
            return self.items.iter().find(|t| accept(t));
        }
        let mut mask = 0u64;
        for (i, t) in self.items.iter().enumerate() {
            if !accept(t) {
                mask |= 1 << i;
            }
        }
        if mask.count_ones() as usize == self.items.len() {
            return None;
        }
        let table = {
            let mut subsets = self.subsets.lock();
            subsets
                .entry(mask)
                .or_insert_with(|| {
                    Arc::new(Weighted::new(
                        (0..self.items.len())
                            .filter(|i| mask & (1 << i) == 0)
                            .map(|i| (i, self.weights[i] as i64))
                            .collect(),
                    ))
                })
                .clone()
        };
        table.pick().and_then(|i| self.items.get(*i))
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// One period of nginx's smooth weighted round-robin over `weights`.
fn swrr_sequence(weights: &[u64]) -> Vec<u32> {
    if weights.len() <= 1 {
        return vec![0];
    }
    let g = weights.iter().copied().fold(0, gcd).max(1);
    let mut w: Vec<u64> = weights.iter().map(|x| x / g).collect();
    let total: u64 = w.iter().sum();
    if total > MAX_PERIOD {
        // Scale down keeping every item at least once per period.
        w = w
            .iter()
            .map(|x| ((x * MAX_PERIOD) / total).max(1))
            .collect();
    }
    let total: i64 = w.iter().sum::<u64>() as i64;
    let mut current = vec![0i64; w.len()];
    let mut seq = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, wi) in w.iter().enumerate() {
            current[i] += *wi as i64;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        seq.push(best as u32);
    }
    seq
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_sequence_matches_nginx() {
        // nginx's classic example: weights 5,1,1 → a a b a c a a.
        let w = Weighted::new(vec![("a", 5), ("b", 1), ("c", 1)]);
        let picks: Vec<_> = (0..7).map(|_| *w.pick().unwrap()).collect();
        assert_eq!(picks, ["a", "a", "b", "a", "c", "a", "a"]);
    }

    #[test]
    fn distribution_follows_weights_and_zero_is_excluded() {
        let w = Weighted::new(vec![(1, 3), (2, 1), (3, 0)]);
        assert_eq!(w.len(), 2);
        let mut counts = [0; 4];
        for _ in 0..400 {
            counts[*w.pick().unwrap()] += 1;
        }
        assert_eq!(counts, [0, 300, 100, 0]);
        assert!(Weighted::<i32>::new(vec![(1, 0)]).pick().is_none());
    }

    #[test]
    fn huge_weights_are_scaled_not_dropped() {
        let w = Weighted::new(vec![("big", 1_000_000), ("small", 1)]);
        let picks: Vec<_> = (0..MAX_PERIOD as usize + 1)
            .map(|_| *w.pick().unwrap())
            .collect();
        assert!(picks.contains(&"small"));
    }

    #[test]
    fn pick_where_keeps_weights_among_the_remaining_items() {
        let w = Weighted::new(vec![("a", 3), ("b", 1), ("empty", 100)]);
        let mut counts = HashMap::new();
        for _ in 0..40 {
            *counts
                .entry(*w.pick_where(|x| *x != "empty").unwrap())
                .or_insert(0) += 1;
        }
        assert_eq!(counts, HashMap::from([("a", 30), ("b", 10)]));
        assert_eq!(w.pick_where(|_| false), None);
        assert_eq!(w.pick_where(|x| *x == "b"), Some(&"b"));
    }
}
