//! The in-process [`KeyStore`] of a single node.
//!
//! Readers never lock: the group map and each group's rotation ring sit behind `ArcSwap`, the
//! rotation cursor and the per-key counters are atomics. Writers (admin changes, blacklisting —
//! rare) take a per-group mutex and publish a rebuilt ring.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use super::{
    FailureOutcome, KeyMaterial, KeyStore, KeyStoreError, PoolCounts, PoolKey, SelectedKey,
    Selection,
};
use crate::model::KeyStatus;
use crate::serving_thread::ServingThread;

/// Bit of [`KeyEntry::state`] set while the key is invalid; the low 32 bits count failures.
/// One word for both makes "count, then blacklist at the threshold" a single atomic step.
const INVALID_BIT: u64 = 1 << 63;
const COUNT_MASK: u64 = u32::MAX as u64;

struct KeyEntry {
    material: Arc<KeyMaterial>,
    state: AtomicU64,
    /// Milliseconds since the store's epoch until which the key cools down (0 = not cooling).
    cooling_until_ms: AtomicU64,
}

impl KeyEntry {
    fn new(k: PoolKey) -> Arc<Self> {
        Arc::new(Self {
            material: k.material,
            state: AtomicU64::new(
                u64::from(k.failure_count)
                    | match k.status {
                        KeyStatus::Active => 0,
                        KeyStatus::Invalid => INVALID_BIT,
                    },
            ),
            cooling_until_ms: AtomicU64::new(0),
        })
    }

    fn is_active(&self) -> bool {
        self.state.load(Ordering::Acquire) & INVALID_BIT == 0
    }

    fn failures(&self) -> u32 {
        (self.state.load(Ordering::Acquire) & COUNT_MASK) as u32
    }
}

#[derive(Default)]
struct GroupPool {
    /// Active keys in rotation order.
    ring: ArcSwap<Vec<Arc<KeyEntry>>>,
    /// Every key of the group by id.
    index: ArcSwap<HashMap<i64, Arc<KeyEntry>>>,
    cursor: AtomicUsize,
    /// Serialises writers of `ring` and `index`.
    write: Mutex<()>,
}

impl GroupPool {
    /// Republishes the ring from the index (active keys, ordered by id). Call with `write` held.
    fn rebuild_ring(&self, index: &HashMap<i64, Arc<KeyEntry>>) {
        let mut ring: Vec<Arc<KeyEntry>> =
            index.values().filter(|e| e.is_active()).cloned().collect();
        ring.sort_unstable_by_key(|e| e.material.id);
        self.ring.store(Arc::new(ring));
    }
}

/// The in-memory key store.
pub struct MemoryKeyStore {
    groups: ArcSwap<HashMap<i64, Arc<GroupPool>>>,
    groups_write: Mutex<()>,
    epoch: Instant,
}

impl Default for MemoryKeyStore {
    fn default() -> Self {
        Self {
            groups: ArcSwap::from_pointee(HashMap::new()),
            groups_write: Mutex::new(()),
            epoch: Instant::now(),
        }
    }
}

impl std::fmt::Debug for MemoryKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryKeyStore")
            .field("groups", &self.groups.load().len())
            .finish()
    }
}

impl MemoryKeyStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    fn pool(&self, group_id: i64) -> Option<Arc<GroupPool>> {
        self.groups.load().get(&group_id).cloned()
    }

    fn pool_or_create(&self, group_id: i64) -> Arc<GroupPool> {
        if let Some(p) = self.pool(group_id) {
            return p;
        }
        let _w = self.groups_write.lock();
        let current = self.groups.load_full();
        if let Some(p) = current.get(&group_id) {
            return p.clone();
        }
        let pool = Arc::new(GroupPool::default());
        let mut next = (*current).clone();
        next.insert(group_id, pool.clone());
        self.groups.store(Arc::new(next));
        pool
    }

    fn entry(&self, group_id: i64, key_id: i64) -> Option<(Arc<GroupPool>, Arc<KeyEntry>)> {
        let pool = self.pool(group_id)?;
        let e = pool.index.load().get(&key_id).cloned()?;
        Some((pool, e))
    }

    fn select_now(&self, group_id: i64) -> Selection {
        let Some(pool) = self.pool(group_id) else {
            return Selection::NoActiveKeys;
        };
        let ring = pool.ring.load();
        let n = ring.len();
        if n == 0 {
            return Selection::NoActiveKeys;
        }
        let start = pool.cursor.fetch_add(1, Ordering::Relaxed);
        let mut now = 0;
        let mut earliest = u64::MAX;
        for i in 0..n {
            let e = &ring[(start.wrapping_add(i)) % n];
            if !e.is_active() {
                continue;
            }
            let until = e.cooling_until_ms.load(Ordering::Relaxed);
            if until != 0 {
                if now == 0 {
                    now = self.now_ms();
                }
                if until > now {
                    earliest = earliest.min(until);
                    continue;
                }
            }
            return Selection::Key(SelectedKey {
                key: e.material.clone(),
                failures: e.failures(),
            });
        }
        if earliest == u64::MAX {
            Selection::NoActiveKeys
        } else {
            Selection::AllCooling {
                retry_after: Duration::from_millis(earliest.saturating_sub(now)),
            }
        }
    }

    fn failure_now(&self, group_id: i64, key_id: i64, threshold: u32) -> FailureOutcome {
        let Some((pool, e)) = self.entry(group_id, key_id) else {
            return FailureOutcome {
                failure_count: 0,
                blacklisted: false,
                invalid: false,
            };
        };
        let prev = e
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |st| {
                if st & INVALID_BIT != 0 {
                    return None;
                }
                let count = (st & COUNT_MASK).saturating_add(1).min(COUNT_MASK);
                let invalid = if threshold > 0 && count >= u64::from(threshold) {
                    INVALID_BIT
                } else {
                    0
                };
                Some(count | invalid)
            });
        let (count, blacklisted, invalid) = match prev {
            Err(st) => ((st & COUNT_MASK) as u32, false, true),
            Ok(st) => {
                let count = ((st & COUNT_MASK) + 1).min(COUNT_MASK) as u32;
                let b = threshold > 0 && count >= threshold;
                (count, b, b)
            }
        };
        if blacklisted {
            let _w = pool.write.lock();
            pool.rebuild_ring(&pool.index.load());
        }
        FailureOutcome {
            failure_count: count,
            blacklisted,
            invalid,
        }
    }

    fn set_status_now(&self, group_id: i64, key_ids: &[i64], status: KeyStatus) {
        let Some(pool) = self.pool(group_id) else {
            return;
        };
        let _w = pool.write.lock();
        let index = pool.index.load_full();
        for id in key_ids {
            if let Some(e) = index.get(id) {
                match status {
                    KeyStatus::Active => {
                        e.cooling_until_ms.store(0, Ordering::Release);
                        e.state.store(0, Ordering::Release);
                    }
                    KeyStatus::Invalid => {
                        e.state.fetch_or(INVALID_BIT, Ordering::AcqRel);
                    }
                }
            }
        }
        pool.rebuild_ring(&index);
    }

    /// Adds keys (`replace = false`) or makes the pool hold exactly `keys` (`replace = true`). With
    /// `replace`, keys already present keep their live state (status, failures, cool-down).
    fn upsert_now(&self, group_id: i64, keys: Vec<PoolKey>, replace: bool) {
        let pool = self.pool_or_create(group_id);
        let _w = pool.write.lock();
        let previous = pool.index.load_full();
        let mut index = if replace {
            HashMap::with_capacity(keys.len())
        } else {
            (*previous).clone()
        };
        for k in keys {
            let id = k.material.id;
            let entry = match previous.get(&id) {
                Some(old) if replace => Arc::new(KeyEntry {
                    material: k.material,
                    state: AtomicU64::new(old.state.load(Ordering::Acquire)),
                    cooling_until_ms: AtomicU64::new(old.cooling_until_ms.load(Ordering::Acquire)),
                }),
                _ => KeyEntry::new(k),
            };
            index.insert(id, entry);
        }
        pool.rebuild_ring(&index);
        pool.index.store(Arc::new(index));
    }

    fn remove_now(&self, group_id: i64, key_ids: &[i64]) {
        let Some(pool) = self.pool(group_id) else {
            return;
        };
        let _w = pool.write.lock();
        let mut index = (*pool.index.load_full()).clone();
        for id in key_ids {
            index.remove(id);
        }
        pool.rebuild_ring(&index);
        pool.index.store(Arc::new(index));
    }

    fn counts_now(&self, group_id: i64) -> PoolCounts {
        let Some(pool) = self.pool(group_id) else {
            return PoolCounts::default();
        };
        let now = self.now_ms();
        let mut c = PoolCounts::default();
        for e in pool.index.load().values() {
            if e.is_active() {
                c.active += 1;
                if e.cooling_until_ms.load(Ordering::Relaxed) > now {
                    c.cooling += 1;
                }
            } else {
                c.invalid += 1;
            }
        }
        c
    }
}

impl KeyStore for MemoryKeyStore {
    async fn select(
        &self,
        group_id: i64,
        _on: Option<ServingThread>,
    ) -> Result<Selection, KeyStoreError> {
        Ok(self.select_now(group_id))
    }

    async fn record_failure(
        &self,
        group_id: i64,
        key_id: i64,
        threshold: u32,
        _on: Option<ServingThread>,
    ) -> Result<FailureOutcome, KeyStoreError> {
        Ok(self.failure_now(group_id, key_id, threshold))
    }

    async fn record_success(&self, group_id: i64, key_id: i64) -> Result<bool, KeyStoreError> {
        Ok(self.entry(group_id, key_id).is_some_and(|(_, e)| {
            e.state
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |st| {
                    (st & COUNT_MASK != 0).then_some(st & INVALID_BIT)
                })
                .is_ok()
        }))
    }

    async fn cool_down(
        &self,
        group_id: i64,
        key_id: i64,
        duration: Duration,
        _on: Option<ServingThread>,
    ) -> Result<(), KeyStoreError> {
        if let Some((_, e)) = self.entry(group_id, key_id) {
            let until = self.now_ms() + duration.as_millis().max(1) as u64;
            e.cooling_until_ms.fetch_max(until, Ordering::AcqRel);
        }
        Ok(())
    }

    async fn load_group(&self, group_id: i64, keys: Vec<PoolKey>) -> Result<(), KeyStoreError> {
        self.upsert_now(group_id, keys, true);
        Ok(())
    }

    async fn add_keys(&self, group_id: i64, keys: Vec<PoolKey>) -> Result<(), KeyStoreError> {
        self.upsert_now(group_id, keys, false);
        Ok(())
    }

    async fn remove_keys(&self, group_id: i64, key_ids: &[i64]) -> Result<(), KeyStoreError> {
        self.remove_now(group_id, key_ids);
        Ok(())
    }

    async fn set_status(
        &self,
        group_id: i64,
        key_ids: &[i64],
        status: KeyStatus,
    ) -> Result<(), KeyStoreError> {
        self.set_status_now(group_id, key_ids, status);
        Ok(())
    }

    async fn remove_group(&self, group_id: i64) -> Result<(), KeyStoreError> {
        let _w = self.groups_write.lock();
        let mut next = (*self.groups.load_full()).clone();
        next.remove(&group_id);
        self.groups.store(Arc::new(next));
        Ok(())
    }

    async fn counts(&self, group_id: i64) -> Result<PoolCounts, KeyStoreError> {
        Ok(self.counts_now(group_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap as Map;

    fn key(id: i64, status: KeyStatus) -> PoolKey {
        PoolKey {
            material: Arc::new(KeyMaterial {
                id,
                group_id: 1,
                value: format!("sk-{id}"),
                stored: format!("sk-{id}"),
                hash: format!("h{id}"),
            }),
            status,
            failure_count: 0,
        }
    }

    async fn pick(s: &MemoryKeyStore) -> Option<i64> {
        match s.select(1, None).await.unwrap() {
            Selection::Key(k) => Some(k.key.id),
            _ => None,
        }
    }

    #[tokio::test]
    async fn rotation_is_even_and_skips_invalid_keys() {
        let s = MemoryKeyStore::new();
        s.load_group(
            1,
            vec![
                key(1, KeyStatus::Active),
                key(2, KeyStatus::Active),
                key(3, KeyStatus::Invalid),
                key(4, KeyStatus::Active),
            ],
        )
        .await
        .unwrap();
        let mut seen = Map::new();
        for _ in 0..300 {
            *seen.entry(pick(&s).await.unwrap()).or_insert(0) += 1;
        }
        assert_eq!(seen, Map::from([(1, 100), (2, 100), (4, 100)]));
        assert_eq!(
            s.counts(1).await.unwrap(),
            PoolCounts {
                active: 3,
                invalid: 1,
                cooling: 0
            }
        );
    }

    #[tokio::test]
    async fn blacklists_exactly_at_threshold_and_restores() {
        let s = MemoryKeyStore::new();
        s.load_group(
            1,
            vec![key(1, KeyStatus::Active), key(2, KeyStatus::Active)],
        )
        .await
        .unwrap();
        assert_eq!(
            s.record_failure(1, 1, 3, None).await.unwrap(),
            FailureOutcome {
                failure_count: 1,
                blacklisted: false,
                invalid: false
            }
        );
        assert_eq!(
            s.record_failure(1, 1, 3, None).await.unwrap().failure_count,
            2
        );
        assert_eq!(
            s.record_failure(1, 1, 3, None).await.unwrap(),
            FailureOutcome {
                failure_count: 3,
                blacklisted: true,
                invalid: true
            }
        );
        // An invalid key no longer counts.
        assert_eq!(
            s.record_failure(1, 1, 3, None).await.unwrap(),
            FailureOutcome {
                failure_count: 3,
                blacklisted: false,
                invalid: true
            }
        );
        for _ in 0..10 {
            assert_eq!(pick(&s).await, Some(2));
        }
        s.set_status(1, &[1], KeyStatus::Active).await.unwrap();
        let mut seen: Vec<_> = Vec::new();
        for _ in 0..4 {
            seen.push(pick(&s).await.unwrap());
        }
        seen.sort();
        assert_eq!(seen, [1, 1, 2, 2]);
    }

    #[tokio::test]
    async fn success_resets_consecutive_failures() {
        let s = MemoryKeyStore::new();
        s.load_group(1, vec![key(1, KeyStatus::Active)])
            .await
            .unwrap();
        s.record_failure(1, 1, 3, None).await.unwrap();
        s.record_failure(1, 1, 3, None).await.unwrap();
        assert!(s.record_success(1, 1).await.unwrap());
        assert!(!s.record_success(1, 1).await.unwrap());
        assert_eq!(
            s.record_failure(1, 1, 3, None).await.unwrap().failure_count,
            1
        );
        assert_eq!(
            s.record_failure(1, 1, 0, None).await.unwrap(),
            FailureOutcome {
                failure_count: 2,
                blacklisted: false,
                invalid: false
            }
        );
    }

    #[tokio::test]
    async fn cooling_keys_are_skipped_and_all_cooling_reports_when() {
        let s = MemoryKeyStore::new();
        s.load_group(
            1,
            vec![key(1, KeyStatus::Active), key(2, KeyStatus::Active)],
        )
        .await
        .unwrap();
        s.cool_down(1, 1, Duration::from_secs(30), None)
            .await
            .unwrap();
        for _ in 0..5 {
            assert_eq!(pick(&s).await, Some(2));
        }
        s.cool_down(1, 2, Duration::from_secs(10), None)
            .await
            .unwrap();
        match s.select(1, None).await.unwrap() {
            Selection::AllCooling { retry_after } => {
                assert!(
                    retry_after <= Duration::from_secs(10) && retry_after > Duration::from_secs(8),
                    "{retry_after:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.counts(1).await.unwrap().cooling, 2);
        s.cool_down(1, 2, Duration::from_millis(1), None)
            .await
            .unwrap(); // never shortens a cool-down
        assert!(matches!(
            s.select(1, None).await.unwrap(),
            Selection::AllCooling { .. }
        ));
    }

    #[tokio::test]
    async fn empty_and_unknown_groups_have_no_keys() {
        let s = MemoryKeyStore::new();
        assert!(matches!(
            s.select(9, None).await.unwrap(),
            Selection::NoActiveKeys
        ));
        s.load_group(1, vec![key(1, KeyStatus::Invalid)])
            .await
            .unwrap();
        assert!(matches!(
            s.select(1, None).await.unwrap(),
            Selection::NoActiveKeys
        ));
        s.add_keys(1, vec![key(2, KeyStatus::Active)])
            .await
            .unwrap();
        assert_eq!(pick(&s).await, Some(2));
        s.remove_keys(1, &[2]).await.unwrap();
        assert!(matches!(
            s.select(1, None).await.unwrap(),
            Selection::NoActiveKeys
        ));
        s.remove_group(1).await.unwrap();
        assert_eq!(s.counts(1).await.unwrap(), PoolCounts::default());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_failures_are_counted_exactly() {
        let s = Arc::new(MemoryKeyStore::new());
        s.load_group(1, vec![key(1, KeyStatus::Active)])
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let mut blacklisted = 0;
                for _ in 0..1000 {
                    if s.record_failure(1, 1, 10_000, None)
                        .await
                        .unwrap()
                        .blacklisted
                    {
                        blacklisted += 1;
                    }
                }
                blacklisted
            }));
        }
        let mut total_blacklisted = 0;
        for t in tasks {
            total_blacklisted += t.await.unwrap();
        }
        // 16 000 failures: the 10 000th blacklists exactly once, the rest are not counted.
        assert_eq!(total_blacklisted, 1);
        let outcome = s.record_failure(1, 1, 10_000, None).await.unwrap();
        assert_eq!(
            outcome,
            FailureOutcome {
                failure_count: 10_000,
                blacklisted: false,
                invalid: true
            }
        );
        assert_eq!(
            s.counts(1).await.unwrap(),
            PoolCounts {
                active: 0,
                invalid: 1,
                cooling: 0
            }
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_failures_without_threshold_lose_nothing() {
        let s = Arc::new(MemoryKeyStore::new());
        s.load_group(1, vec![key(1, KeyStatus::Active)])
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..1000 {
                    s.record_failure(1, 1, 0, None).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            s.record_failure(1, 1, 0, None).await.unwrap().failure_count,
            16_001
        );
    }
}
