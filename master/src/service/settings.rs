//! System settings as the API shows and changes them (spec §8).

use gpt_load_common::model::settings::{SettingKind, SettingValue, setting_def, validate_json};
use gpt_load_common::model::{SETTING_DEFS, SystemSettings};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::error::ServiceError;
use crate::api::schema as doc;
use crate::i18n::{self, Lang};

/// The locale ids of a setting's name (the description is `<id>_desc`).
pub fn name_id(key: &str) -> String {
    let short = match key {
        "request_log_retention_days" => "log_retention_days",
        "request_log_write_interval_minutes" => "log_write_interval",
        "key_validation_interval_minutes" => "key_validation_interval",
        "key_validation_timeout_seconds" => "key_validation_timeout",
        k => k,
    };
    format!("config.{short}")
}

/// GPT-Load's group `config` override order (also the order of `config-options`).
pub const GROUP_CONFIG_ORDER: &[&str] = &[
    "request_timeout",
    "idle_conn_timeout",
    "connect_timeout",
    "max_idle_conns",
    "max_idle_conns_per_host",
    "response_header_timeout",
    "proxy_url",
    "max_retries",
    "blacklist_threshold",
    "failover_status_codes",
    "key_validation_interval_minutes",
    "key_validation_concurrency",
    "key_validation_timeout_seconds",
    "enable_request_body_logging",
];

/// A setting as `GET /api/settings` shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SettingItem {
    pub key: String,
    /// Localised.
    pub name: String,
    #[schema(value_type = doc::SettingValue)]
    pub value: Value,
    #[serde(rename = "type")]
    #[schema(value_type = doc::SettingType)]
    pub kind: String,
    /// The default, as text.
    pub default_value: String,
    /// Localised.
    pub description: String,
    /// Localised category name.
    pub category: String,
    pub required: bool,
    /// Only for `int` settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub min_value: Option<i64>,
}

/// A category of settings, in display order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SettingsCategory {
    /// Localised.
    pub category_name: String,
    pub settings: Vec<SettingItem>,
}

/// A setting a group may override, with the system's current value.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConfigOption {
    pub key: String,
    /// Localised.
    pub name: String,
    /// Localised.
    pub description: String,
    /// The system-wide value the group inherits.
    #[schema(value_type = doc::SettingValue)]
    pub default_value: Value,
}

/// `GET /api/settings` data: categories in order, each with its settings (names and
/// descriptions in `lang`).
pub fn categorized(lang: Lang, s: &SystemSettings) -> Vec<SettingsCategory> {
    let mut cats: Vec<SettingsCategory> = Vec::new();
    for d in SETTING_DEFS {
        let id = name_id(d.key);
        let item = SettingItem {
            key: d.key.to_owned(),
            name: i18n::t(lang, &id),
            value: s
                .get(d.key)
                .map(SettingValue::to_json)
                .unwrap_or(Value::Null),
            kind: d.kind.type_name().to_owned(),
            default_value: d.default.to_owned(),
            description: i18n::t(lang, &format!("{id}_desc")),
            category: i18n::t(lang, &format!("config.category.{}", d.category)),
            required: !matches!(
                d.kind,
                SettingKind::Bool | SettingKind::Str { required: false }
            ),
            min_value: match d.kind {
                SettingKind::Int { min } => Some(min),
                _ => None,
            },
        };
        match cats.iter_mut().find(|c| c.category_name == item.category) {
            Some(c) => c.settings.push(item),
            None => cats.push(SettingsCategory {
                category_name: item.category.clone(),
                settings: vec![item],
            }),
        }
    }
    cats
}

/// `GET /api/groups/config-options` data.
pub fn config_options(lang: Lang, s: &SystemSettings) -> Vec<ConfigOption> {
    GROUP_CONFIG_ORDER
        .iter()
        .map(|k| {
            let id = name_id(k);
            ConfigOption {
                key: (*k).to_owned(),
                name: i18n::t(lang, &id),
                description: i18n::t(lang, &format!("{id}_desc")),
                default_value: s.get(k).map(SettingValue::to_json).unwrap_or(Value::Null),
            }
        })
        .collect()
}

/// Validates a `PUT /api/settings` body; returns `(key, stored value)` rows. Any bad value is a 400
/// that names the key and the reason (GPT-Load answered 500).
pub fn validate_update(
    body: &Map<String, Value>,
) -> Result<Vec<(&'static str, String)>, ServiceError> {
    let mut rows = Vec::with_capacity(body.len());
    let mut keys: Vec<&String> = body.keys().collect();
    keys.sort();
    for k in keys {
        let def = setting_def(k)
            .ok_or_else(|| ServiceError::invalid_text(format!("invalid setting key: {k}")))?;
        let v = body.get(k).unwrap_or(&Value::Null);
        let parsed =
            validate_json(def, v).map_err(|e| ServiceError::invalid_text(e.to_string()))?;
        rows.push((def.key, parsed.to_db_string()));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_grouped_in_three_categories() {
        let v = serde_json::to_value(categorized(Lang::EnUs, &SystemSettings::default())).unwrap();
        let cats = v.as_array().unwrap();
        assert_eq!(cats.len(), 3);
        assert_eq!(cats[0]["category_name"], "Basic");
        let total: usize = cats
            .iter()
            .map(|c| c["settings"].as_array().unwrap().len())
            .sum();
        assert_eq!(total, 18);
        let rt = &cats[1]["settings"][0];
        assert_eq!(rt["key"], "request_timeout");
        assert_eq!(rt["value"], 600);
        assert_eq!(rt["min_value"], 1);
        assert_eq!(rt["default_value"], "600");
        assert!(!rt["name"].as_str().unwrap().starts_with("config."));
    }

    #[test]
    fn config_options_follow_gpt_load_order_with_current_values() {
        let v =
            serde_json::to_value(config_options(Lang::EnUs, &SystemSettings::default())).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 14);
        assert_eq!(v[0]["key"], "request_timeout");
        assert_eq!(v[0]["default_value"], 600);
        assert_eq!(v[13]["default_value"], false);
    }

    #[test]
    fn updates_are_validated_with_the_key_named() {
        let body: Map<String, Value> =
            serde_json::from_str(r#"{"max_retries": 2, "proxy_keys": " a, b "}"#).unwrap();
        assert_eq!(
            validate_update(&body).unwrap(),
            vec![
                ("max_retries", "2".to_string()),
                ("proxy_keys", "a,b".to_string())
            ]
        );
        for bad in [
            r#"{"nope":1}"#,
            r#"{"request_timeout":0}"#,
            r#"{"max_retries":"3"}"#,
            r#"{"failover_status_codes":"x"}"#,
            r#"{"enable_request_body_logging":1}"#,
        ] {
            let body: Map<String, Value> = serde_json::from_str(bad).unwrap();
            let e = validate_update(&body).unwrap_err();
            assert!(matches!(e, ServiceError::Invalid(_)), "{bad}");
        }
        let body: Map<String, Value> = serde_json::from_str(r#"{"request_timeout":0}"#).unwrap();
        let ServiceError::Invalid(crate::service::error::Msg::Text(text)) =
            validate_update(&body).unwrap_err()
        else {
            panic!("not a validation failure");
        };
        assert!(text.contains("request_timeout"), "{text}");
    }
}
