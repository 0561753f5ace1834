//! Conversions between the config snapshot and its protobuf form on the control plane.

use std::collections::BTreeMap;

use gpt_load_proto::controlplane::v1 as pb;

use super::access::AccessKeyDef;
use super::{ConfigSnapshot, GroupDef, SubGroupRef};
use crate::model::{ChannelType, GroupType, HeaderAction, HeaderRule, SystemSettings, Upstream};

/// A snapshot message the worker cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid snapshot: {0}")]
pub struct WireError(pub String);

impl From<&GroupDef> for pb::Group {
    fn from(g: &GroupDef) -> Self {
        pb::Group {
            id: g.id,
            name: g.name.clone(),
            display_name: g.display_name.clone(),
            group_type: g.group_type.as_str().to_owned(),
            channel_type: g.channel_type.as_str().to_owned(),
            upstreams: g
                .upstreams
                .iter()
                .map(|u| pb::Upstream {
                    url: u.url.clone(),
                    weight: u.weight,
                })
                .collect(),
            test_model: g.test_model.clone(),
            validation_endpoint: g.validation_endpoint.clone(),
            param_overrides_json: serde_json::Value::Object(g.param_overrides.clone()).to_string(),
            header_rules: g
                .header_rules
                .iter()
                .map(|r| pb::HeaderRule {
                    key: r.key.clone(),
                    value: r.value.clone(),
                    action: match r.action {
                        HeaderAction::Set => "set".into(),
                        HeaderAction::Remove => "remove".into(),
                    },
                })
                .collect(),
            model_redirect_rules: g
                .model_redirect_rules
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            model_redirect_strict: g.model_redirect_strict,
            proxy_keys: g.proxy_keys.clone(),
            config_json: g.config.to_string(),
            sub_groups: g
                .sub_groups
                .iter()
                .map(|s| pb::SubGroup {
                    group_id: s.group_id,
                    weight: s.weight,
                })
                .collect(),
            models: g.models.clone(),
            priority: g.priority,
            weight: g.weight,
        }
    }
}

impl From<&AccessKeyDef> for pb::AccessKey {
    fn from(k: &AccessKeyDef) -> Self {
        pb::AccessKey {
            id: k.id,
            name: k.name.clone(),
            digest: k.digest.to_vec(),
            enabled: k.enabled,
            expires_at: k.expires_at,
            allowed_ips: k.allowed_ips.clone(),
            groups: k.groups.clone(),
            models: k.models.clone(),
            protocols: k.protocols.iter().map(|p| p.as_str().to_owned()).collect(),
        }
    }
}

impl TryFrom<pb::AccessKey> for AccessKeyDef {
    type Error = WireError;

    fn try_from(k: pb::AccessKey) -> Result<Self, WireError> {
        let digest: [u8; 32] = k
            .digest
            .as_slice()
            .try_into()
            .map_err(|_| WireError(format!("access key {}: digest is not 32 bytes", k.id)))?;
        let protocols = k
            .protocols
            .iter()
            .map(|p| {
                ChannelType::parse(p)
                    .ok_or_else(|| WireError(format!("access key {}: unknown protocol {p}", k.id)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AccessKeyDef {
            id: k.id,
            name: k.name,
            digest,
            enabled: k.enabled,
            expires_at: k.expires_at,
            allowed_ips: k.allowed_ips,
            groups: k.groups,
            models: k.models,
            protocols,
        })
    }
}

impl TryFrom<pb::Group> for GroupDef {
    type Error = WireError;

    fn try_from(g: pb::Group) -> Result<Self, WireError> {
        let channel_type = ChannelType::parse(&g.channel_type).ok_or_else(|| {
            WireError(format!(
                "group {}: unknown channel type {}",
                g.name, g.channel_type
            ))
        })?;
        let group_type = GroupType::parse(&g.group_type).ok_or_else(|| {
            WireError(format!(
                "group {}: unknown group type {}",
                g.name, g.group_type
            ))
        })?;
        let param_overrides =
            match serde_json::from_str::<serde_json::Value>(&g.param_overrides_json) {
                Ok(serde_json::Value::Object(o)) => o,
                _ => serde_json::Map::new(),
            };
        let config = serde_json::from_str(&g.config_json).unwrap_or(serde_json::Value::Null);
        let header_rules = g
            .header_rules
            .into_iter()
            .filter_map(|r| {
                let action = match r.action.as_str() {
                    "set" => HeaderAction::Set,
                    "remove" => HeaderAction::Remove,
                    _ => return None,
                };
                Some(HeaderRule {
                    key: r.key,
                    value: r.value,
                    action,
                })
            })
            .collect();
        Ok(GroupDef {
            id: g.id,
            name: g.name,
            display_name: g.display_name,
            group_type,
            channel_type,
            upstreams: g
                .upstreams
                .into_iter()
                .map(|u| Upstream {
                    url: u.url,
                    weight: u.weight,
                })
                .collect(),
            test_model: g.test_model,
            validation_endpoint: g.validation_endpoint,
            param_overrides,
            header_rules,
            model_redirect_rules: g
                .model_redirect_rules
                .into_iter()
                .collect::<BTreeMap<_, _>>(),
            model_redirect_strict: g.model_redirect_strict,
            proxy_keys: g.proxy_keys,
            config,
            sub_groups: g
                .sub_groups
                .into_iter()
                .map(|s| SubGroupRef {
                    group_id: s.group_id,
                    weight: s.weight,
                })
                .collect(),
            models: g.models,
            priority: g.priority,
            weight: g.weight,
        })
    }
}

impl ConfigSnapshot {
    /// The protobuf form streamed to workers.
    pub fn to_proto(&self) -> pb::Snapshot {
        pb::Snapshot {
            version: self.version,
            settings: self
                .settings
                .to_rows()
                .into_iter()
                .map(|(k, v)| pb::Setting {
                    key: k.to_owned(),
                    value: v,
                })
                .collect(),
            groups: self
                .groups()
                .iter()
                .map(|g| pb::Group::from(&g.def))
                .collect(),
            access_keys: self
                .access_keys()
                .map(|k| pb::AccessKey::from(&k.def))
                .collect(),
        }
    }

    /// Rebuilds a snapshot from its protobuf form.
    pub fn from_proto(s: pb::Snapshot) -> Result<Self, WireError> {
        let (settings, _) = SystemSettings::from_rows(
            s.settings
                .iter()
                .map(|x| (x.key.as_str(), x.value.as_str())),
        );
        let groups = s
            .groups
            .into_iter()
            .map(GroupDef::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let access_keys = s
            .access_keys
            .into_iter()
            .map(AccessKeyDef::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(s.version, settings, groups).with_access_keys(access_keys))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_every_field() {
        let def = GroupDef {
            id: 3,
            name: "g".into(),
            display_name: "G".into(),
            group_type: GroupType::Standard,
            channel_type: ChannelType::Gemini,
            upstreams: vec![Upstream {
                url: "https://x".into(),
                weight: 2,
            }],
            test_model: "m".into(),
            validation_endpoint: "/v".into(),
            param_overrides: serde_json::from_value(json!({"temperature": 0.5})).unwrap(),
            header_rules: vec![HeaderRule {
                key: "X-A".into(),
                value: "1".into(),
                action: HeaderAction::Set,
            }],
            model_redirect_rules: BTreeMap::from([("a".into(), "b".into())]),
            model_redirect_strict: true,
            proxy_keys: vec!["k".into()],
            config: json!({"max_retries": 2}),
            sub_groups: vec![SubGroupRef {
                group_id: 9,
                weight: 1,
            }],
            models: vec!["gemini-*".into()],
            priority: 2,
            weight: 3,
        };
        let key = AccessKeyDef {
            id: 5,
            name: "team".into(),
            digest: super::super::digest("sk-gl-x"),
            enabled: true,
            expires_at: Some(1_900_000_000),
            allowed_ips: vec!["10.0.0.0/8".into()],
            groups: vec![3],
            models: vec!["gemini-*".into()],
            protocols: vec![ChannelType::Gemini],
        };
        let (settings, _) = SystemSettings::from_rows([("max_retries", "5")]);
        let snap = ConfigSnapshot::new(42, settings, vec![def.clone()])
            .with_access_keys(vec![key.clone()]);
        let back = ConfigSnapshot::from_proto(snap.to_proto()).unwrap();
        assert_eq!(back.access_key("sk-gl-x").unwrap().def, key);
        assert!(back.access_key("sk-gl-y").is_none());
        assert_eq!(back.version, 42);
        assert_eq!(back.settings.int("max_retries"), 5);
        assert_eq!(back.group_by_id(3).unwrap().def, def);
        assert_eq!(back.group_by_id(3).unwrap().config.max_retries, 2);
        let mut bad = snap.to_proto();
        bad.groups[0].channel_type = "nope".into();
        assert!(ConfigSnapshot::from_proto(bad).is_err());
    }
}
