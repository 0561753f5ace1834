//! Building the config snapshot from the database and publishing it: to the embedded data plane at
//! once (read-your-writes: a change is live before its API response returns) and to the control
//! plane's watchers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gpt_load_common::model::{
    ChannelType, GroupType, HeaderRule, SystemSettings, Upstream, split_proxy_keys,
};
use gpt_load_common::snapshot::{ConfigSnapshot, GroupDef, SubGroupRef};
use gpt_load_worker::WorkerState;
use tokio::sync::watch;

use crate::db::repo::groups::GroupRecord;
use crate::db::repo::{groups, settings};
use crate::db::{Db, DbResult};

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
        models: Vec::new(),
        priority: 0,
        weight: 1,
    })
}

/// Loads settings and groups.
pub async fn load(db: &Db) -> DbResult<(SystemSettings, Vec<GroupDef>)> {
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
    Ok((settings, defs))
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
    pub async fn rebuild(&self, db: &Db, worker: &WorkerState) -> DbResult<Arc<ConfigSnapshot>> {
        let _g = self.rebuild.lock().await;
        let (settings, groups) = load(db).await?;
        let snap = Arc::new(ConfigSnapshot::new(self.next_version(), settings, groups));
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
