//! The Redis [`KeyStore`] shared by every node of a cluster.
//!
//! Each proxy-path operation is one `EVALSHA` of a script in `lua/`: selection rotates the
//! group's list and returns what the request needs (id, stored value, hash, failures), failure
//! counting and blacklisting are one atomic step. Stored values are the database's (ciphertext
//! when `ENCRYPTION_KEY` is set); they are decrypted here with the process's cipher.
//!
//! The proxy-path calls made on a serving thread (selection, failure counting, cool-downs) go
//! through a client of that thread's own, connected from its runtime on first use there: with the
//! shared client, whose connection task runs on the main runtime, every round trip crossed threads
//! twice. Until that client is connected (or while it cannot connect; retried every
//! [`THREAD_CLIENT_RETRY`]) the shared one serves. The failure-count reset after a success runs
//! on the main runtime (so that a stopping serving thread cannot cancel it) and so goes through
//! the shared client: in the rare case of a success followed at once by a failure of the same
//! key, the reset may land after that failure's count. A process thus holds one Redis connection
//! per serving thread besides the shared one (per primary, on Redis Cluster). The clients belong
//! to the serving threads of one `serve::start`: they stop with those threads' runtimes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use fred::prelude::*;
use fred::types::scripts::Script;

use super::{
    FailureOutcome, KeyMaterial, KeyStore, KeyStoreError, PoolCounts, PoolKey, SelectedKey,
    Selection,
};
use crate::crypto::KeyCipher;
use crate::model::KeyStatus;
use crate::redis::RedisKeys;
use crate::serving_thread::{self, ServingThread};

/// Keys per script call in bulk operations (bounded argument lists).
const BULK: usize = 500;

struct Scripts {
    select: Script,
    failure: Script,
    success: Script,
    cooldown: Script,
    set_status: Script,
    counts: Script,
    upsert: Script,
    remove: Script,
    rebuild_ring: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            select: Script::from_lua(include_str!("lua/select.lua")),
            failure: Script::from_lua(include_str!("lua/failure.lua")),
            success: Script::from_lua(include_str!("lua/success.lua")),
            cooldown: Script::from_lua(include_str!("lua/cooldown.lua")),
            set_status: Script::from_lua(include_str!("lua/set_status.lua")),
            counts: Script::from_lua(include_str!("lua/counts.lua")),
            upsert: Script::from_lua(include_str!("lua/upsert.lua")),
            remove: Script::from_lua(include_str!("lua/remove.lua")),
            rebuild_ring: Script::from_lua(include_str!("lua/rebuild_ring.lua")),
        }
    }
}

/// How long a serving thread whose own client could not connect waits before trying again.
pub const THREAD_CLIENT_RETRY: Duration = Duration::from_secs(5);

/// One serving thread's client, connected on that thread's first use.
#[derive(Default)]
struct ThreadClient {
    /// A connection attempt is under way (or has succeeded).
    started: AtomicBool,
    /// When the next attempt may start after a failed one, in ms since [`epoch`].
    retry_at_ms: AtomicU64,
    client: OnceLock<Client>,
}

/// The process's clock origin for [`ThreadClient::retry_at_ms`].
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn millis_since_epoch() -> u64 {
    u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Live key state in Redis.
pub struct RedisKeyStore {
    client: Client,
    per_thread: Arc<[ThreadClient]>,
    keys: RedisKeys,
    cipher: Arc<KeyCipher>,
    scripts: Scripts,
}

impl std::fmt::Debug for RedisKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisKeyStore")
            .field("prefix", &self.keys.prefix())
            .finish()
    }
}

fn err(e: fred::error::Error) -> KeyStoreError {
    crate::metrics::metrics().redis_error();
    KeyStoreError(e.to_string())
}

fn status_code(s: KeyStatus) -> &'static str {
    match s {
        KeyStatus::Active => "a",
        KeyStatus::Invalid => "i",
    }
}

impl RedisKeyStore {
    /// `client` serves every thread but the serving threads reserved so far
    /// ([`serving_thread::reserve`]), which get clients of their own.
    pub fn new(client: Client, keys: RedisKeys, cipher: Arc<KeyCipher>) -> Self {
        Self {
            client,
            per_thread: (0..serving_thread::reserved())
                .map(|_| ThreadClient::default())
                .collect(),
            keys,
            cipher,
            scripts: Scripts::new(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The client for a proxy-path call made on serving thread `on`: that thread's own once
    /// connected (the first call there starts connecting it on the thread's runtime), else the
    /// shared one.
    fn here(&self, on: Option<ServingThread>) -> &Client {
        let Some(i) = on.map(ServingThread::index) else {
            return &self.client;
        };
        let Some(slot) = self.per_thread.get(i) else {
            return &self.client;
        };
        if let Some(c) = slot.client.get() {
            return c;
        }
        if millis_since_epoch() >= slot.retry_at_ms.load(Ordering::Relaxed)
            && !slot.started.swap(true, Ordering::AcqRel)
        {
            let client = self.client.clone_new();
            let per_thread = self.per_thread.clone();
            // On this (serving) thread's runtime: the connection task stays here.
            tokio::spawn(async move {
                let Some(slot) = per_thread.get(i) else {
                    return;
                };
                match client.init().await {
                    Ok(_) => {
                        let _ = slot.client.set(client);
                    }
                    // The shared client keeps serving this thread until a later attempt works.
                    Err(e) => {
                        tracing::warn!(thread = i, error = %e, "no Redis connection of its own for a serving thread yet; retrying later");
                        let retry =
                            u64::try_from(THREAD_CLIENT_RETRY.as_millis()).unwrap_or(u64::MAX);
                        slot.retry_at_ms.store(
                            millis_since_epoch().saturating_add(retry),
                            Ordering::Relaxed,
                        );
                        slot.started.store(false, Ordering::Release);
                    }
                }
            });
        }
        &self.client
    }

    /// How many serving threads have a connected client of their own.
    pub fn thread_clients(&self) -> usize {
        self.per_thread
            .iter()
            .filter(|t| t.client.get().is_some())
            .count()
    }

    pub fn keys(&self) -> &RedisKeys {
        &self.keys
    }

    async fn upsert(
        &self,
        group_id: i64,
        keys: &[PoolKey],
        keep_live: bool,
        maintain_ring: bool,
    ) -> Result<(), KeyStoreError> {
        let _: i64 = self
            .client
            .sadd(self.keys.groups(), group_id)
            .await
            .map_err(err)?;
        for chunk in keys.chunks(BULK) {
            let mut args: Vec<String> = Vec::with_capacity(3 + chunk.len() * 5);
            args.push(self.keys.key_prefix(group_id));
            args.push(if keep_live { "1" } else { "0" }.into());
            args.push(if maintain_ring { "1" } else { "0" }.into());
            for k in chunk {
                args.push(k.material.id.to_string());
                args.push(k.material.stored.clone());
                args.push(k.material.hash.clone());
                args.push(status_code(k.status).into());
                args.push(k.failure_count.to_string());
            }
            let _: i64 = self
                .scripts
                .upsert
                .evalsha_with_reload(
                    &self.client,
                    vec![self.keys.ring(group_id), self.keys.all(group_id)],
                    args,
                )
                .await
                .map_err(err)?;
        }
        Ok(())
    }

    /// Ids of every key the group has in Redis.
    pub async fn key_ids(&self, group_id: i64) -> Result<Vec<i64>, KeyStoreError> {
        let ids: Vec<String> = self
            .client
            .smembers(self.keys.all(group_id))
            .await
            .map_err(err)?;
        Ok(ids.iter().filter_map(|i| i.parse().ok()).collect())
    }

    /// Group ids that have pools in Redis.
    pub async fn group_ids(&self) -> Result<Vec<i64>, KeyStoreError> {
        let ids: Vec<String> = self
            .client
            .smembers(self.keys.groups())
            .await
            .map_err(err)?;
        Ok(ids.iter().filter_map(|i| i.parse().ok()).collect())
    }

    /// Which of `group_ids` have no loaded pool in Redis (never loaded since Redis last lost its
    /// data). One pipelined round trip per node.
    pub async fn missing_pools(&self, group_ids: &[i64]) -> Result<Vec<i64>, KeyStoreError> {
        if group_ids.is_empty() {
            return Ok(Vec::new());
        }
        let pipeline = self.client.pipeline();
        for &g in group_ids {
            let _: () = pipeline.exists(self.keys.loaded(g)).await.map_err(err)?;
        }
        let found: Vec<i64> = pipeline.all().await.map_err(err)?;
        Ok(group_ids
            .iter()
            .zip(found.iter().copied().chain(std::iter::repeat(0)))
            .filter(|(_, n)| *n == 0)
            .map(|(g, _)| *g)
            .collect())
    }

    /// Live `(status, failures)` of a key, if Redis has it.
    pub async fn key_state(
        &self,
        group_id: i64,
        key_id: i64,
    ) -> Result<Option<(KeyStatus, u32)>, KeyStoreError> {
        let v: (Option<String>, Option<u32>) = self
            .client
            .hmget(self.keys.key(group_id, key_id), vec!["st", "f"])
            .await
            .map_err(err)?;
        Ok(v.0.map(|st| {
            (
                if st == "a" {
                    KeyStatus::Active
                } else {
                    KeyStatus::Invalid
                },
                v.1.unwrap_or(0),
            )
        }))
    }
}

impl KeyStore for RedisKeyStore {
    async fn select(
        &self,
        group_id: i64,
        on: Option<ServingThread>,
    ) -> Result<Selection, KeyStoreError> {
        let v: Value = self
            .scripts
            .select
            .evalsha_with_reload(
                self.here(on),
                vec![self.keys.ring(group_id), self.keys.loaded(group_id)],
                vec![self.keys.key_prefix(group_id)],
            )
            .await
            .map_err(err)?;
        let Value::Array(items) = v else {
            return Err(KeyStoreError("unexpected select reply".into()));
        };
        let int = |v: Option<&Value>| v.and_then(|x| x.as_i64()).unwrap_or(0);
        let string = |v: Option<&Value>| v.and_then(|x| x.as_string()).unwrap_or_default();
        match int(items.first()) {
            1 => {
                let id: i64 = string(items.get(1))
                    .parse()
                    .map_err(|_| KeyStoreError("bad key id in ring".into()))?;
                let stored = string(items.get(2));
                let hash = string(items.get(3));
                let failures = u32::try_from(int(items.get(4)).max(0)).unwrap_or(u32::MAX);
                Ok(Selection::Key(SelectedKey {
                    key: Arc::new(KeyMaterial {
                        id,
                        group_id,
                        value: self.cipher.decrypt_or_raw(&stored),
                        stored,
                        hash,
                    }),
                    failures,
                }))
            }
            2 => Ok(Selection::AllCooling {
                retry_after: Duration::from_millis(int(items.get(1)).max(0) as u64),
            }),
            3 => Ok(Selection::PoolMissing),
            _ => Ok(Selection::NoActiveKeys),
        }
    }

    async fn record_failure(
        &self,
        group_id: i64,
        key_id: i64,
        threshold: u32,
        on: Option<ServingThread>,
    ) -> Result<FailureOutcome, KeyStoreError> {
        let v: Vec<i64> = self
            .scripts
            .failure
            .evalsha_with_reload(
                self.here(on),
                vec![self.keys.ring(group_id), self.keys.key(group_id, key_id)],
                vec![threshold.to_string(), key_id.to_string()],
            )
            .await
            .map_err(err)?;
        Ok(FailureOutcome {
            failure_count: u32::try_from(v.first().copied().unwrap_or(0).max(0))
                .unwrap_or(u32::MAX),
            blacklisted: v.get(1).copied() == Some(1),
            invalid: v.get(2).copied() == Some(1),
        })
    }

    async fn record_success(&self, group_id: i64, key_id: i64) -> Result<bool, KeyStoreError> {
        let v: i64 = self
            .scripts
            .success
            .evalsha_with_reload(
                &self.client,
                vec![self.keys.key(group_id, key_id)],
                Vec::<String>::new(),
            )
            .await
            .map_err(err)?;
        Ok(v == 1)
    }

    async fn cool_down(
        &self,
        group_id: i64,
        key_id: i64,
        duration: Duration,
        on: Option<ServingThread>,
    ) -> Result<(), KeyStoreError> {
        let _: i64 = self
            .scripts
            .cooldown
            .evalsha_with_reload(
                self.here(on),
                vec![self.keys.key(group_id, key_id)],
                vec![duration.as_millis().max(1).to_string()],
            )
            .await
            .map_err(err)?;
        Ok(())
    }

    /// Makes the pool hold exactly `keys`. Keys already in Redis keep their live state — a
    /// master restart never wipes what the workers learned — and the ring is rebuilt atomically.
    async fn load_group(&self, group_id: i64, keys: Vec<PoolKey>) -> Result<(), KeyStoreError> {
        let wanted: std::collections::HashSet<i64> = keys.iter().map(|k| k.material.id).collect();
        let stale: Vec<i64> = self
            .key_ids(group_id)
            .await?
            .into_iter()
            .filter(|id| !wanted.contains(id))
            .collect();
        self.remove_keys(group_id, &stale).await?;
        self.upsert(group_id, &keys, true, false).await?;
        let _: i64 = self
            .scripts
            .rebuild_ring
            .evalsha_with_reload(
                &self.client,
                vec![
                    self.keys.ring(group_id),
                    self.keys.all(group_id),
                    self.keys.ring_scratch(group_id),
                    self.keys.loaded(group_id),
                ],
                vec![self.keys.key_prefix(group_id)],
            )
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn add_keys(&self, group_id: i64, keys: Vec<PoolKey>) -> Result<(), KeyStoreError> {
        self.upsert(group_id, &keys, false, true).await
    }

    async fn remove_keys(&self, group_id: i64, key_ids: &[i64]) -> Result<(), KeyStoreError> {
        for chunk in key_ids.chunks(BULK) {
            let mut args = vec![self.keys.key_prefix(group_id)];
            args.extend(chunk.iter().map(i64::to_string));
            let _: i64 = self
                .scripts
                .remove
                .evalsha_with_reload(
                    &self.client,
                    vec![self.keys.ring(group_id), self.keys.all(group_id)],
                    args,
                )
                .await
                .map_err(err)?;
        }
        Ok(())
    }

    async fn set_status(
        &self,
        group_id: i64,
        key_ids: &[i64],
        status: KeyStatus,
    ) -> Result<(), KeyStoreError> {
        for chunk in key_ids.chunks(BULK) {
            let mut args = vec![
                self.keys.key_prefix(group_id),
                status_code(status).to_owned(),
            ];
            args.extend(chunk.iter().map(i64::to_string));
            let _: i64 = self
                .scripts
                .set_status
                .evalsha_with_reload(&self.client, vec![self.keys.ring(group_id)], args)
                .await
                .map_err(err)?;
        }
        Ok(())
    }

    async fn remove_group(&self, group_id: i64) -> Result<(), KeyStoreError> {
        let ids = self.key_ids(group_id).await?;
        self.remove_keys(group_id, &ids).await?;
        let _: i64 = self
            .client
            .del(vec![
                self.keys.ring(group_id),
                self.keys.all(group_id),
                self.keys.loaded(group_id),
            ])
            .await
            .map_err(err)?;
        let _: i64 = self
            .client
            .srem(self.keys.groups(), group_id)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn counts(&self, group_id: i64) -> Result<PoolCounts, KeyStoreError> {
        let v: Vec<i64> = self
            .scripts
            .counts
            .evalsha_with_reload(
                &self.client,
                vec![self.keys.all(group_id)],
                vec![self.keys.key_prefix(group_id)],
            )
            .await
            .map_err(err)?;
        let get = |i: usize| usize::try_from(v.get(i).copied().unwrap_or(0)).unwrap_or(0);
        Ok(PoolCounts {
            active: get(0),
            invalid: get(1),
            cooling: get(2),
        })
    }
}
