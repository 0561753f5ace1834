//! Building the config snapshot from the database (settings, groups, access keys) and publishing it: to the embedded data plane at
//! once (read-your-writes: a change is live before its API response returns) and to the control
//! plane's watchers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gpt_load_common::crypto::KeyCipher;
use gpt_load_common::model::{
    ChannelType, GroupType, HeaderRule, SystemSettings, Upstream, split_proxy_keys,
};
use gpt_load_common::snapshot::access::AccessKeyDef;
use gpt_load_common::snapshot::{ConfigSnapshot, GroupDef, SubGroupRef, digest};
use gpt_load_worker::WorkerState;
use tokio::sync::watch;

use crate::db::repo::access_keys::AccessKeyRecord;
use crate::db::repo::groups::GroupRecord;
use crate::db::repo::{access_keys, groups, settings};
use crate::db::{Db, DbResult};
use crate::service::access_keys::{stored_filters, stored_ips};
use crate::service::groups::stored_models;

/// Parses a stored group into its snapshot definition; `None` for an unknown channel type.
pub fn group_def(g: &GroupRecord, sub_groups: Vec<SubGroupRef>) -> Option<GroupDef> {
    let channel_type = ChannelType::parse(&g.channel_type)?;
    let parse_json = |s: &Option<String>| -> serde_json::Value {
        s.as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(serde_json::Value::Null)
    };
    let upstreams: Vec<Upstream> = g
        .upstreams
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    let header_rules: Vec<HeaderRule> = g
        .header_rules
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    let model_redirect_rules: BTreeMap<String, String> = match parse_json(&g.model_redirect_rules) {
        serde_json::Value::Object(o) => o
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned())))
            .collect(),
        _ => BTreeMap::new(),
    };
    let param_overrides = match parse_json(&g.param_overrides) {
        serde_json::Value::Object(o) => o,
        _ => serde_json::Map::new(),
    };
    Some(GroupDef {
        id: g.id,
        name: g.name.clone(),
        display_name: g.display_name.clone(),
        group_type: GroupType::parse(&g.group_type).unwrap_or_default(),
        channel_type,
        upstreams,
        test_model: g.test_model.clone(),
        validation_endpoint: g.validation_endpoint.clone(),
        param_overrides,
        header_rules,
        model_redirect_rules,
        model_redirect_strict: g.model_redirect_strict,
        proxy_keys: split_proxy_keys(&g.proxy_keys),
        config: parse_json(&g.config),
        sub_groups,
        models: stored_models(g.models.as_deref()),
        priority: g.priority,
        weight: g.weight.max(0),
    })
}

/// A stored access key as the data plane sees it: the SHA-256 digest of the decrypted key, never
/// the key. `None` when the key cannot be decrypted (a wrong `ENCRYPTION_KEY`): it is left out,
/// so it answers 401. Filters or addresses that cannot be read disable the key instead of
/// lifting its restrictions.
pub fn access_key_def(k: &AccessKeyRecord, cipher: &KeyCipher) -> Option<AccessKeyDef> {
    let Ok(plain) = cipher.decrypt(&k.key_value) else {
        tracing::warn!(
            access_key_id = k.id,
            "skipping an access key that cannot be decrypted (is ENCRYPTION_KEY the one it was stored with?)"
        );
        return None;
    };
    let filters = stored_filters(k.filters.as_deref());
    let protocols: Option<Vec<ChannelType>> = filters.as_ref().and_then(|f| {
        f.protocols
            .iter()
            .map(|p| ChannelType::parse(p))
            .collect::<Option<Vec<_>>>()
    });
    let allowed_ips = stored_ips(k.allowed_ips.as_deref());
    let readable = protocols.is_some() && allowed_ips.is_some();
    if !readable {
        tracing::warn!(
            access_key_id = k.id,
            "disabling an access key whose stored filters or addresses cannot be read"
        );
    }
    let filters = filters.unwrap_or_default();
    Some(AccessKeyDef {
        id: k.id,
        name: k.name.clone(),
        digest: digest(&plain),
        enabled: readable && k.status == "active",
        expires_at: k.expires_at.map(|t| t.timestamp()),
        allowed_ips: allowed_ips.unwrap_or_default(),
        groups: filters.groups,
        models: filters.models,
        protocols: protocols.unwrap_or_default(),
    })
}

/// What a snapshot is built from, as stored.
#[derive(Debug)]
pub struct SnapshotParts {
    pub settings: SystemSettings,
    pub groups: Vec<GroupDef>,
    pub access_keys: Vec<AccessKeyDef>,
}

impl SnapshotParts {
    /// The snapshot at `version`.
    pub fn into_snapshot(self, version: u64) -> ConfigSnapshot {
        ConfigSnapshot::new(version, self.settings, self.groups).with_access_keys(self.access_keys)
    }
}

/// Loads settings, groups and access keys (decrypted with `cipher` to compute their digests).
pub async fn load(db: &Db, cipher: &KeyCipher) -> DbResult<SnapshotParts> {
    let rows = settings::list(db).await?;
    let (settings, skipped) = SystemSettings::from_rows(
        rows.iter()
            .map(|r| (r.setting_key.as_str(), r.setting_value.as_str())),
    );
    for k in skipped {
        tracing::debug!(key = %k, "ignoring unknown or invalid stored setting");
    }
    let subs = groups::all_sub_groups(db).await?;
    let mut defs = Vec::new();
    for g in groups::list(db).await? {
        let members = subs
            .iter()
            .filter(|s| s.group_id == g.id)
            .map(|s| SubGroupRef {
                group_id: s.sub_group_id,
                weight: s.weight,
            })
            .collect();
        match group_def(&g, members) {
            Some(d) => defs.push(d),
            None => {
                tracing::warn!(group = %g.name, channel_type = %g.channel_type, "skipping group with an unknown channel type")
            }
        }
    }
    let access_keys = access_keys::list(db)
        .await?
        .iter()
        .filter_map(|k| access_key_def(k, cipher))
        .collect();
    Ok(SnapshotParts {
        settings,
        groups: defs,
        access_keys,
    })
}

/// Publishes new snapshots with increasing versions.
#[derive(Debug)]
pub struct SnapshotPublisher {
    version: AtomicU64,
    tx: watch::Sender<Arc<ConfigSnapshot>>,
    rebuild: tokio::sync::Mutex<()>,
}

impl SnapshotPublisher {
    pub fn new(initial: Arc<ConfigSnapshot>) -> Self {
        let (tx, _) = watch::channel(initial.clone());
        Self {
            version: AtomicU64::new(initial.version),
            tx,
            rebuild: tokio::sync::Mutex::new(()),
        }
    }

    /// A version above every earlier one, also across master restarts (time-based).
    pub fn next_version(&self) -> u64 {
        let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
        let mut cur = self.version.load(Ordering::Acquire);
        loop {
            let next = now_ms.max(cur + 1);
            match self
                .version
                .compare_exchange(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return next,
                Err(v) => cur = v,
            }
        }
    }

    /// Rebuilds from the database and publishes to `worker` and every watcher.
    pub async fn rebuild(
        &self,
        db: &Db,
        cipher: &KeyCipher,
        worker: &WorkerState,
    ) -> DbResult<Arc<ConfigSnapshot>> {
        let _g = self.rebuild.lock().await;
        let parts = load(db, cipher).await?;
        let snap = Arc::new(parts.into_snapshot(self.next_version()));
        worker.publish(snap.clone());
        self.tx.send_replace(snap.clone());
        Ok(snap)
    }

    pub fn current(&self) -> Arc<ConfigSnapshot> {
        self.tx.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<ConfigSnapshot>> {
        self.tx.subscribe()
    }
}
