//! Live key state: which keys of a group are in rotation, their consecutive-failure counts,
//! blacklisting and 429 cool-downs.
//!
//! The [`KeyStore`] trait is shaped for Redis as much as for memory: every proxy-path operation
//! ([`KeyStore::select`], [`KeyStore::record_failure`], [`KeyStore::record_success`],
//! [`KeyStore::cool_down`]) is one atomic step — lock-free in memory, one script round trip on
//! Redis — and returns everything the request needs, so the caller never reads back.
//!
//! Semantics (documented for users in the README):
//! - `failure_count` counts *consecutive* failures: a successful proxied request resets it to 0.
//! - A counted failure that brings the count to `blacklist_threshold` (when > 0) blacklists the key
//!   exactly once: it leaves the rotation and its status becomes `invalid`.
//! - A 429 does not count: the key cools down for `Retry-After` (or a default) and selection skips
//!   it until then.

pub mod memory;
pub mod redis;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use memory::MemoryKeyStore;
pub use redis::RedisKeyStore;

use crate::model::KeyStatus;
use crate::serving_thread::ServingThread;

/// What a request needs of an upstream key. Shared, so selecting a key copies a pointer.
#[derive(Debug, PartialEq, Eq)]
pub struct KeyMaterial {
    pub id: i64,
    pub group_id: i64,
    /// The plaintext key sent upstream.
    pub value: String,
    /// The value as stored (ciphertext when `ENCRYPTION_KEY` is set), for request logs.
    pub stored: String,
    /// `key_hash`, for request logs and lookups.
    pub hash: String,
}

/// A key handed out for one attempt.
#[derive(Debug, Clone)]
pub struct SelectedKey {
    pub key: Arc<KeyMaterial>,
    /// Consecutive failures before this attempt (lets the caller skip a no-op reset).
    pub failures: u32,
}

/// The result of a selection.
#[derive(Debug, Clone)]
pub enum Selection {
    Key(SelectedKey),
    /// The group has no active key.
    NoActiveKeys,
    /// Every active key is cooling down; the earliest is free after `retry_after`.
    AllCooling {
        retry_after: Duration,
    },
    /// The group's pool is not in the store at all (Redis lost its data): the master reloads it
    /// from the database within seconds. Never from the memory store.
    PoolMissing,
}

/// A key to load into a pool.
#[derive(Debug, Clone)]
pub struct PoolKey {
    pub material: Arc<KeyMaterial>,
    pub status: KeyStatus,
    pub failure_count: u32,
}

/// What a counted failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureOutcome {
    /// The consecutive-failure count after this failure (unchanged when the key was already invalid).
    pub failure_count: u32,
    /// This failure moved the key from active to invalid.
    pub blacklisted: bool,
    /// The key is invalid after this call (blacklisted now or before).
    pub invalid: bool,
}

/// Counts of one group's pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolCounts {
    pub active: usize,
    pub invalid: usize,
    pub cooling: usize,
}

/// The store is out of reach (Redis down): the request gets a quick 503.
#[derive(Debug, Clone, thiserror::Error)]
#[error("key store unavailable: {0}")]
pub struct KeyStoreError(pub String);

/// A key status change to persist in the database (the store is the live truth; the master
/// reconciles these into `api_keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyEvent {
    pub group_id: i64,
    pub key_id: i64,
    pub failure_count: u32,
    pub status: KeyStatus,
}

/// Live key state shared by every proxying node.
pub trait KeyStore: Send + Sync + 'static {
    /// The next key of `group_id` in round-robin order, skipping invalid and cooling keys.
    /// `on` is the serving thread the call is made on, if any (the proxy-path calls name it, so a
    /// store can keep a connection per thread).
    fn select(
        &self,
        group_id: i64,
        on: Option<ServingThread>,
    ) -> impl Future<Output = Result<Selection, KeyStoreError>> + Send;

    /// Counts one failure against a key; blacklists it at `threshold` (0 = never).
    fn record_failure(
        &self,
        group_id: i64,
        key_id: i64,
        threshold: u32,
        on: Option<ServingThread>,
    ) -> impl Future<Output = Result<FailureOutcome, KeyStoreError>> + Send;

    /// Resets a key's consecutive-failure count after a success. Returns whether it was non-zero.
    fn record_success(
        &self,
        group_id: i64,
        key_id: i64,
    ) -> impl Future<Output = Result<bool, KeyStoreError>> + Send;

    /// Takes a key out of selection for `duration` (a 429) without counting a failure.
    fn cool_down(
        &self,
        group_id: i64,
        key_id: i64,
        duration: Duration,
        on: Option<ServingThread>,
    ) -> impl Future<Output = Result<(), KeyStoreError>> + Send;

    /// Replaces a group's whole pool (boot load, reconciliation).
    fn load_group(
        &self,
        group_id: i64,
        keys: Vec<PoolKey>,
    ) -> impl Future<Output = Result<(), KeyStoreError>> + Send;

    /// Adds keys (new keys join the rotation when active).
    fn add_keys(
        &self,
        group_id: i64,
        keys: Vec<PoolKey>,
    ) -> impl Future<Output = Result<(), KeyStoreError>> + Send;

    /// Removes keys from the pool.
    fn remove_keys(
        &self,
        group_id: i64,
        key_ids: &[i64],
    ) -> impl Future<Output = Result<(), KeyStoreError>> + Send;

    /// Sets keys' status: `Active` restores them (failure count 0, cool-down cleared); `Invalid`
    /// takes them out of rotation.
    fn set_status(
        &self,
        group_id: i64,
        key_ids: &[i64],
        status: KeyStatus,
    ) -> impl Future<Output = Result<(), KeyStoreError>> + Send;

    /// Drops a group's pool.
    fn remove_group(&self, group_id: i64)
    -> impl Future<Output = Result<(), KeyStoreError>> + Send;

    /// Counts of a group's pool.
    fn counts(
        &self,
        group_id: i64,
    ) -> impl Future<Output = Result<PoolCounts, KeyStoreError>> + Send;
}

/// The key store of a process, chosen at start (memory for a single node, Redis for a cluster).
/// An enum rather than a trait object: the proxy path stays statically dispatched.
#[derive(Debug)]
pub enum AnyKeyStore {
    Memory(MemoryKeyStore),
    Redis(Box<RedisKeyStore>),
}

/// Calls the store's method. The Redis futures (several kilobytes of client state) are boxed: the
/// proxy's request futures embed these calls and are moved whole into their tasks, so an unboxed
/// Redis arm made every request copy kilobytes even on the memory store. One allocation is nothing
/// beside a Redis round trip.
macro_rules! delegate {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnyKeyStore::Memory($s) => $call.await,
            AnyKeyStore::Redis($s) => Box::pin($call).await,
        }
    };
}

impl KeyStore for AnyKeyStore {
    async fn select(
        &self,
        group_id: i64,
        on: Option<ServingThread>,
    ) -> Result<Selection, KeyStoreError> {
        delegate!(self, s => s.select(group_id, on))
    }

    async fn record_failure(
        &self,
        group_id: i64,
        key_id: i64,
        threshold: u32,
        on: Option<ServingThread>,
    ) -> Result<FailureOutcome, KeyStoreError> {
        delegate!(self, s => s.record_failure(group_id, key_id, threshold, on))
    }

    async fn record_success(&self, group_id: i64, key_id: i64) -> Result<bool, KeyStoreError> {
        delegate!(self, s => s.record_success(group_id, key_id))
    }

    async fn cool_down(
        &self,
        group_id: i64,
        key_id: i64,
        duration: Duration,
        on: Option<ServingThread>,
    ) -> Result<(), KeyStoreError> {
        delegate!(self, s => s.cool_down(group_id, key_id, duration, on))
    }

    async fn load_group(&self, group_id: i64, keys: Vec<PoolKey>) -> Result<(), KeyStoreError> {
        delegate!(self, s => s.load_group(group_id, keys))
    }

    async fn add_keys(&self, group_id: i64, keys: Vec<PoolKey>) -> Result<(), KeyStoreError> {
        delegate!(self, s => s.add_keys(group_id, keys))
    }

    async fn remove_keys(&self, group_id: i64, key_ids: &[i64]) -> Result<(), KeyStoreError> {
        delegate!(self, s => s.remove_keys(group_id, key_ids))
    }

    async fn set_status(
        &self,
        group_id: i64,
        key_ids: &[i64],
        status: KeyStatus,
    ) -> Result<(), KeyStoreError> {
        delegate!(self, s => s.set_status(group_id, key_ids, status))
    }

    async fn remove_group(&self, group_id: i64) -> Result<(), KeyStoreError> {
        delegate!(self, s => s.remove_group(group_id))
    }

    async fn counts(&self, group_id: i64) -> Result<PoolCounts, KeyStoreError> {
        delegate!(self, s => s.counts(group_id))
    }
}
