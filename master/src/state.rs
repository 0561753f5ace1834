//! The master's shared state: one cloneable handle built in [`crate::app`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use gpt_load_common::config::StaticConfig;
use gpt_load_common::crypto::KeyCipher;
use gpt_load_common::keystore::AnyKeyStore;
use gpt_load_common::log_record::RecordSender;
use gpt_load_worker::WorkerState;
use gpt_load_worker::throttle::FailureThrottle;

use crate::db::{Db, LogWriter};
use crate::service::tasks::TaskManager;
use crate::snapshot::SnapshotPublisher;

#[derive(Clone, Debug)]
pub struct AppState(pub Arc<AppInner>);

#[derive(Debug)]
pub struct AppInner {
    pub cfg: StaticConfig,
    pub db: Db,
    /// Where request-log batches are written.
    pub log_writer: LogWriter,
    pub cipher: KeyCipher,
    pub store: Arc<AnyKeyStore>,
    pub worker: WorkerState,
    pub records: RecordSender,
    pub publisher: SnapshotPublisher,
    pub tasks: TaskManager,
    pub login_throttle: FailureThrottle,
    /// Serialises writes to `api_keys` (imports, deletes): the database has no unique index on
    /// `(group_id, key_hash)`, so concurrent imports must not interleave their duplicate checks.
    pub key_writes: tokio::sync::Mutex<()>,
    pub started: Instant,
    /// This master's id (lease owner name, `ctl status`).
    pub instance_id: String,
    /// Workers that reported to this master.
    pub workers: crate::grpc::registry::WorkerRegistry,
    /// The shared Redis of a cluster (`None` on a single node).
    pub redis: Option<RedisCtx>,
    /// Whether this master runs the scheduled jobs (always on a single node; the Redis lease
    /// holder in a cluster).
    pub leader: AtomicBool,
}

/// The Redis client and key names of a cluster master.
#[derive(Debug, Clone)]
pub struct RedisCtx {
    pub client: fred::prelude::Client,
    pub keys: gpt_load_common::redis::RedisKeys,
}

impl std::ops::Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl AppState {
    /// Which upstream addresses the admin API accepts (`ALLOW_LINK_LOCAL_UPSTREAMS`).
    pub fn upstream_policy(&self) -> crate::service::groups::UpstreamPolicy {
        crate::service::groups::UpstreamPolicy {
            allow_link_local: self.cfg.allow_link_local_upstreams,
        }
    }

    /// Rebuilds and publishes the config snapshot after a change (to the embedded data plane, the
    /// gRPC watchers and, in a cluster, Redis for workers that start while the master is away).
    pub async fn publish(&self) -> Result<(), crate::db::DbError> {
        let snap = self
            .publisher
            .rebuild(&self.db, &self.cipher, &self.worker)
            .await?;
        if let Some(r) = &self.redis {
            use fred::prelude::KeysInterface;
            use prost::Message;
            let bytes = snap.to_proto().encode_to_vec();
            let res: Result<(), _> = r
                .client
                .set(r.keys.snapshot(), bytes, None, None, false)
                .await;
            if let Err(e) = res {
                tracing::warn!(error = %e, "could not store the snapshot in redis");
            }
        }
        Ok(())
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }
}
