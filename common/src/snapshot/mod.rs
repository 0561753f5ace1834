//! The immutable configuration snapshot every proxying node serves from.
//!
//! Built by the master from the database (groups with their effective settings, proxy keys,
//! upstreams and rules, plus a monotonically increasing `version`), swapped atomically into an
//! `ArcSwap` on every node. A request reads it once and never locks. Upstream keys are *not* part of
//! it: they live in the [`crate::keystore::KeyStore`].

pub mod access;
pub mod wire;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::settings::{SettingValue, parse_group_config_lenient};
use crate::model::{ChannelType, EffectiveConfig, GroupType, HeaderRule, SystemSettings, Upstream};

/// A member of an aggregate group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubGroupRef {
    pub group_id: i64,
    pub weight: i64,
}

/// The serialisable definition of a group, as stored (no derived fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupDef {
    pub id: i64,
    pub name: String,
    pub display_name: String,
    pub group_type: GroupType,
    pub channel_type: ChannelType,
    pub upstreams: Vec<Upstream>,
    pub test_model: String,
    pub validation_endpoint: String,
    pub param_overrides: serde_json::Map<String, serde_json::Value>,
    pub header_rules: Vec<HeaderRule>,
    pub model_redirect_rules: BTreeMap<String, String>,
    pub model_redirect_strict: bool,
    pub proxy_keys: Vec<String>,
    pub config: serde_json::Value,
    pub sub_groups: Vec<SubGroupRef>,
    /// Models (names or glob patterns) the group serves on the native routes; empty: reachable
    /// only through `/proxy/{group}`.
    #[serde(default)]
    pub models: Vec<String>,
    /// Routing tier on the native routes: lower is tried first.
    #[serde(default)]
    pub priority: i64,
    /// Share within its tier on the native routes.
    #[serde(default = "default_weight")]
    pub weight: i64,
}

fn default_weight() -> i64 {
    1
}

impl GroupDef {
    /// Whether the group serves `model` on the native routes: one of its `models` (exact or glob)
    /// or an alias of its model redirect rules.
    pub fn serves_model(&self, model: &str) -> bool {
        if self.models.is_empty() {
            return false;
        }
        self.model_redirect_rules.contains_key(model)
            || self.models.iter().any(|p| access::glob_match(p, model))
    }
}

/// A group ready to serve: its definition plus everything derived from it.
#[derive(Debug)]
pub struct GroupSnapshot {
    pub def: GroupDef,
    pub config: EffectiveConfig,
    proxy_key_digests: DigestSet,
}

impl GroupSnapshot {
    pub fn new(def: GroupDef, settings: &SystemSettings) -> Self {
        let overrides: BTreeMap<String, SettingValue> = parse_group_config_lenient(&def.config);
        let config = settings.effective(&overrides);
        let proxy_key_digests = def.proxy_keys.iter().map(|k| digest(k)).collect();
        Self {
            def,
            config,
            proxy_key_digests,
        }
    }

    pub fn id(&self) -> i64 {
        self.def.id
    }

    pub fn name(&self) -> &str {
        &self.def.name
    }

    pub fn is_aggregate(&self) -> bool {
        self.def.group_type == GroupType::Aggregate
    }

    /// The validation path: the group's own, or the channel's default.
    pub fn validation_endpoint(&self) -> &str {
        if self.def.validation_endpoint.is_empty() {
            self.def.channel_type.default_validation_endpoint()
        } else {
            &self.def.validation_endpoint
        }
    }
}

/// The whole serving configuration at one version.
#[derive(Debug)]
pub struct ConfigSnapshot {
    pub version: u64,
    pub settings: SystemSettings,
    groups: Vec<Arc<GroupSnapshot>>,
    by_name: HashMap<String, usize>,
    by_id: HashMap<i64, usize>,
    global_key_digests: DigestSet,
    access_keys:
        HashMap<[u8; 32], Arc<access::AccessKey>, std::hash::BuildHasherDefault<DigestHasher>>,
}

/// The wire form of a snapshot (what the control plane streams).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotWire {
    pub version: u64,
    pub settings: Vec<(String, String)>,
    pub groups: Vec<GroupDef>,
    #[serde(default)]
    pub access_keys: Vec<access::AccessKeyDef>,
}

impl ConfigSnapshot {
    pub fn new(version: u64, settings: SystemSettings, groups: Vec<GroupDef>) -> Self {
        let global_key_digests = settings.proxy_keys().iter().map(|k| digest(k)).collect();
        let groups: Vec<Arc<GroupSnapshot>> = groups
            .into_iter()
            .map(|g| Arc::new(GroupSnapshot::new(g, &settings)))
            .collect();
        let by_name = groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.def.name.clone(), i))
            .collect();
        let by_id = groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.def.id, i))
            .collect();
        Self {
            version,
            settings,
            groups,
            by_name,
            by_id,
            global_key_digests,
            access_keys: HashMap::default(),
        }
    }

    /// The snapshot with these access keys.
    pub fn with_access_keys(mut self, keys: Vec<access::AccessKeyDef>) -> Self {
        self.access_keys = keys
            .into_iter()
            .map(|d| (d.digest, Arc::new(access::AccessKey::new(d))))
            .collect();
        self
    }

    /// The access key `candidate` is, found by its digest (timing reveals nothing about the
    /// stored keys).
    pub fn access_key(&self, candidate: &str) -> Option<&Arc<access::AccessKey>> {
        if candidate.is_empty() || self.access_keys.is_empty() {
            return None;
        }
        self.access_key_by_digest(&digest(candidate))
    }

    /// The access key whose SHA-256 is `d` (a caller that also checks proxy keys hashes once).
    pub fn access_key_by_digest(&self, d: &[u8; 32]) -> Option<&Arc<access::AccessKey>> {
        self.access_keys.get(d)
    }

    /// Every access key (in no particular order).
    pub fn access_keys(&self) -> impl Iterator<Item = &Arc<access::AccessKey>> {
        self.access_keys.values()
    }

    /// An empty snapshot (version 0) used before the first real one arrives.
    pub fn empty() -> Self {
        Self::new(0, SystemSettings::default(), Vec::new())
    }

    pub fn group_by_name(&self, name: &str) -> Option<&Arc<GroupSnapshot>> {
        self.by_name.get(name).map(|&i| &self.groups[i])
    }

    pub fn group_by_id(&self, id: i64) -> Option<&Arc<GroupSnapshot>> {
        self.by_id.get(&id).map(|&i| &self.groups[i])
    }

    pub fn groups(&self) -> &[Arc<GroupSnapshot>] {
        &self.groups
    }

    /// Whether `candidate` is a global proxy key or one of `group`'s. The candidate is hashed and
    /// looked up by digest, so timing reveals nothing about the stored keys.
    pub fn authorizes(&self, group: &GroupSnapshot, candidate: &str) -> bool {
        !candidate.is_empty() && self.authorizes_digest(group, &digest(candidate))
    }

    /// [`Self::authorizes`] for a key already hashed with [`digest`].
    pub fn authorizes_digest(&self, group: &GroupSnapshot, d: &[u8; 32]) -> bool {
        self.global_key_digests.contains(d) || group.proxy_key_digests.contains(d)
    }

    /// Whether `candidate` is a global proxy key.
    pub fn is_global_proxy_key(&self, candidate: &str) -> bool {
        !candidate.is_empty() && self.is_global_digest(&digest(candidate))
    }

    /// Whether the key hashed to `d` is a global proxy key.
    pub fn is_global_digest(&self, d: &[u8; 32]) -> bool {
        self.global_key_digests.contains(d)
    }

    pub fn to_wire(&self) -> SnapshotWire {
        SnapshotWire {
            version: self.version,
            settings: self
                .settings
                .to_rows()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            groups: self.groups.iter().map(|g| g.def.clone()).collect(),
            access_keys: self.access_keys.values().map(|k| k.def.clone()).collect(),
        }
    }

    pub fn from_wire(w: SnapshotWire) -> Self {
        let (settings, _) =
            SystemSettings::from_rows(w.settings.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        Self::new(w.version, settings, w.groups).with_access_keys(w.access_keys)
    }
}

/// SHA-256 of a key: how proxy keys and access keys are looked up.
pub fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// SHA-256 digests of proxy keys, looked up on every proxied request.
type DigestSet = HashSet<[u8; 32], std::hash::BuildHasherDefault<DigestHasher>>;

/// Hashes a digest by its first eight bytes: a digest is already uniformly distributed, and no
/// one can choose digests that collide in the table (the stored ones come from the configured
/// keys, a candidate's from SHA-256), so SipHash's work would add nothing here.
#[derive(Default)]
struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn write(&mut self, bytes: &[u8]) {
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 ^= u64::from(*b) << (8 * i);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn group(id: i64, name: &str, keys: &[&str]) -> GroupDef {
        GroupDef {
            id,
            name: name.into(),
            display_name: String::new(),
            group_type: GroupType::Standard,
            channel_type: ChannelType::OpenAi,
            upstreams: vec![Upstream {
                url: "http://127.0.0.1:1".into(),
                weight: 1,
            }],
            test_model: "gpt-4.1-nano".into(),
            validation_endpoint: String::new(),
            param_overrides: Default::default(),
            header_rules: vec![],
            model_redirect_rules: Default::default(),
            model_redirect_strict: false,
            proxy_keys: keys.iter().map(|s| s.to_string()).collect(),
            config: json!({"max_retries": 1}),
            sub_groups: vec![],
            models: vec![],
            priority: 0,
            weight: 1,
        }
    }

    #[test]
    fn lookups_auth_and_effective_config() {
        let (settings, _) = SystemSettings::from_rows([("proxy_keys", "global-1,global-2")]);
        let snap = ConfigSnapshot::new(
            7,
            settings,
            vec![group(1, "a", &["ga"]), group(2, "b", &[])],
        );
        let a = snap.group_by_name("a").unwrap().clone();
        let b = snap.group_by_id(2).unwrap().clone();
        assert!(snap.authorizes(&a, "ga"));
        assert!(snap.authorizes(&a, "global-2"));
        assert!(!snap.authorizes(&b, "ga"));
        assert!(!snap.authorizes(&b, ""));
        assert_eq!(a.config.max_retries, 1);
        assert_eq!(a.validation_endpoint(), "/v1/chat/completions");
        assert!(snap.group_by_name("zzz").is_none());

        let round = ConfigSnapshot::from_wire(
            serde_json::from_str(&serde_json::to_string(&snap.to_wire()).unwrap()).unwrap(),
        );
        assert_eq!(round.version, 7);
        assert_eq!(round.groups().len(), 2);
        assert!(round.is_global_proxy_key("global-1"));
        assert_eq!(round.group_by_name("a").unwrap().def, a.def);
    }
}
