//! System settings (spec §8): 18 keys stored as strings in `system_settings`, typed here, with
//! defaults, minimums, categories and per-group overrides.

use std::collections::BTreeMap;

use serde_json::Value;

use super::status_matcher::StatusMatcher;

/// The type of a setting and its validation rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingKind {
    Int { min: i64 },
    Bool,
    Str { required: bool },
}

impl SettingKind {
    /// GPT-Load's `type` string in `GET /api/settings`.
    pub fn type_name(self) -> &'static str {
        match self {
            Self::Int { .. } => "int",
            Self::Bool => "bool",
            Self::Str { .. } => "string",
        }
    }
}

/// The definition of one setting.
#[derive(Debug, Clone, Copy)]
pub struct SettingDef {
    pub key: &'static str,
    pub kind: SettingKind,
    pub default: &'static str,
    /// Category id: `basic`, `request` or `key`.
    pub category: &'static str,
    /// Whether a group's `config` may override it.
    pub overridable: bool,
}

macro_rules! def {
    ($key:literal, $kind:expr, $default:literal, $cat:literal, $over:literal) => {
        SettingDef {
            key: $key,
            kind: $kind,
            default: $default,
            category: $cat,
            overridable: $over,
        }
    };
}

/// Every setting, in GPT-Load's display order.
pub const SETTING_DEFS: &[SettingDef] = &[
    def!(
        "app_url",
        SettingKind::Str { required: true },
        "http://localhost:3001",
        "basic",
        false
    ),
    def!(
        "proxy_keys",
        SettingKind::Str { required: true },
        "",
        "basic",
        false
    ),
    def!(
        "request_log_retention_days",
        SettingKind::Int { min: 0 },
        "7",
        "basic",
        false
    ),
    def!(
        "request_log_write_interval_minutes",
        SettingKind::Int { min: 0 },
        "1",
        "basic",
        false
    ),
    def!(
        "enable_request_body_logging",
        SettingKind::Bool,
        "false",
        "basic",
        true
    ),
    def!(
        "request_timeout",
        SettingKind::Int { min: 1 },
        "600",
        "request",
        true
    ),
    def!(
        "connect_timeout",
        SettingKind::Int { min: 1 },
        "15",
        "request",
        true
    ),
    def!(
        "idle_conn_timeout",
        SettingKind::Int { min: 1 },
        "120",
        "request",
        true
    ),
    def!(
        "response_header_timeout",
        SettingKind::Int { min: 1 },
        "600",
        "request",
        true
    ),
    def!(
        "max_idle_conns",
        SettingKind::Int { min: 1 },
        "100",
        "request",
        true
    ),
    def!(
        "max_idle_conns_per_host",
        SettingKind::Int { min: 1 },
        "50",
        "request",
        true
    ),
    def!(
        "proxy_url",
        SettingKind::Str { required: false },
        "",
        "request",
        true
    ),
    def!("max_retries", SettingKind::Int { min: 0 }, "3", "key", true),
    def!(
        "blacklist_threshold",
        SettingKind::Int { min: 0 },
        "3",
        "key",
        true
    ),
    def!(
        "failover_status_codes",
        SettingKind::Str { required: false },
        "400-403,405-999",
        "key",
        true
    ),
    def!(
        "key_validation_interval_minutes",
        SettingKind::Int { min: 1 },
        "60",
        "key",
        true
    ),
    def!(
        "key_validation_concurrency",
        SettingKind::Int { min: 1 },
        "10",
        "key",
        true
    ),
    def!(
        "key_validation_timeout_seconds",
        SettingKind::Int { min: 1 },
        "20",
        "key",
        true
    ),
];

/// Looks up a setting definition.
pub fn setting_def(key: &str) -> Option<&'static SettingDef> {
    SETTING_DEFS.iter().find(|d| d.key == key)
}

/// A typed setting value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingValue {
    Int(i64),
    Bool(bool),
    Str(String),
}

impl SettingValue {
    /// The string stored in `system_settings.setting_value`.
    pub fn to_db_string(&self) -> String {
        match self {
            Self::Int(i) => i.to_string(),
            Self::Bool(b) => b.to_string(),
            Self::Str(s) => s.clone(),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Self::Int(i) => Value::from(*i),
            Self::Bool(b) => Value::from(*b),
            Self::Str(s) => Value::from(s.clone()),
        }
    }
}

/// Why a setting value was refused; rendered as a 400 naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct SettingError {
    pub key: String,
    pub reason: String,
}

impl SettingError {
    fn new(key: &str, reason: impl Into<String>) -> Self {
        Self {
            key: key.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Validates a JSON value for `def`, as sent to `PUT /api/settings` or in a group's `config`.
pub fn validate_json(def: &SettingDef, value: &Value) -> Result<SettingValue, SettingError> {
    let key = def.key;
    let v = match def.kind {
        SettingKind::Int { min } => {
            let n = match value {
                Value::Number(n) => n
                    .as_i64()
                    .or_else(|| {
                        n.as_f64()
                            .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                            .map(|f| f as i64)
                    })
                    .ok_or_else(|| SettingError::new(key, "must be an integer"))?,
                _ => return Err(SettingError::new(key, "must be an integer")),
            };
            if n < min {
                return Err(SettingError::new(key, format!("must be at least {min}")));
            }
            SettingValue::Int(n)
        }
        SettingKind::Bool => match value {
            Value::Bool(b) => SettingValue::Bool(*b),
            _ => return Err(SettingError::new(key, "must be a boolean")),
        },
        SettingKind::Str { required } => {
            let s = match value {
                Value::String(s) => s.trim().to_owned(),
                _ => return Err(SettingError::new(key, "must be a string")),
            };
            if required && s.is_empty() {
                return Err(SettingError::new(key, "is required"));
            }
            validate_string(key, s)?
        }
    };
    Ok(v)
}

fn validate_string(key: &str, s: String) -> Result<SettingValue, SettingError> {
    match key {
        "failover_status_codes" => {
            StatusMatcher::parse(&s).map_err(|e| SettingError::new(key, e))?;
        }
        "proxy_url" if !s.is_empty() => {
            let ok = ["http://", "https://", "socks5://", "socks5h://"]
                .iter()
                .any(|p| s.starts_with(p) && s.len() > p.len());
            if !ok {
                return Err(SettingError::new(
                    key,
                    "must be an http://, https:// or socks5:// URL",
                ));
            }
        }
        "app_url" if !(s.starts_with("http://") || s.starts_with("https://")) => {
            return Err(SettingError::new(
                key,
                "must start with http:// or https://",
            ));
        }
        "proxy_keys" => {
            let keys = super::split_proxy_keys(&s);
            if keys.is_empty() {
                return Err(SettingError::new(key, "is required"));
            }
            return Ok(SettingValue::Str(keys.join(",")));
        }
        _ => {}
    }
    Ok(SettingValue::Str(s))
}

/// Parses a stored string; a bad stored value yields `None` (the caller keeps the default).
fn parse_db(def: &SettingDef, raw: &str) -> Option<SettingValue> {
    match def.kind {
        SettingKind::Int { min } => raw
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= min)
            .map(SettingValue::Int),
        SettingKind::Bool => crate::env::parse_bool(raw).map(SettingValue::Bool),
        SettingKind::Str { .. } => Some(SettingValue::Str(raw.to_owned())),
    }
}

/// The typed system settings (defaults overlaid by the database rows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemSettings {
    values: BTreeMap<&'static str, SettingValue>,
}

impl Default for SystemSettings {
    fn default() -> Self {
        let mut values = BTreeMap::new();
        for d in SETTING_DEFS {
            let v = parse_db(d, d.default).unwrap_or(SettingValue::Str(d.default.to_owned()));
            values.insert(d.key, v);
        }
        Self { values }
    }
}

impl SystemSettings {
    /// Defaults overlaid by stored `(key, value)` rows; unknown keys and bad values are skipped
    /// (and reported back so the caller can log them).
    pub fn from_rows<'a>(
        rows: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> (Self, Vec<String>) {
        let mut s = Self::default();
        let mut skipped = Vec::new();
        for (k, v) in rows {
            match setting_def(k) {
                Some(def) => match parse_db(def, v) {
                    Some(val) => {
                        s.values.insert(def.key, val);
                    }
                    None => skipped.push(k.to_owned()),
                },
                None => skipped.push(k.to_owned()),
            }
        }
        (s, skipped)
    }

    pub fn get(&self, key: &str) -> Option<&SettingValue> {
        self.values.get(key)
    }

    pub fn set(&mut self, key: &'static str, v: SettingValue) {
        self.values.insert(key, v);
    }

    pub fn int(&self, key: &str) -> i64 {
        match self.values.get(key) {
            Some(SettingValue::Int(i)) => *i,
            _ => setting_def(key)
                .and_then(|d| d.default.parse().ok())
                .unwrap_or(0),
        }
    }

    pub fn bool(&self, key: &str) -> bool {
        matches!(self.values.get(key), Some(SettingValue::Bool(true)))
    }

    pub fn str(&self, key: &str) -> &str {
        match self.values.get(key) {
            Some(SettingValue::Str(s)) => s,
            _ => "",
        }
    }

    pub fn app_url(&self) -> &str {
        self.str("app_url")
    }

    pub fn proxy_keys(&self) -> Vec<String> {
        super::split_proxy_keys(self.str("proxy_keys"))
    }

    /// The group's effective configuration: these settings with each override replacing its key.
    pub fn effective(&self, overrides: &BTreeMap<String, SettingValue>) -> EffectiveConfig {
        let pick_i = |k: &str| match overrides.get(k) {
            Some(SettingValue::Int(i)) => *i,
            _ => self.int(k),
        };
        let pick_s = |k: &str| match overrides.get(k) {
            Some(SettingValue::Str(s)) => s.clone(),
            _ => self.str(k).to_owned(),
        };
        let body_logging = match overrides.get("enable_request_body_logging") {
            Some(SettingValue::Bool(b)) => *b,
            _ => self.bool("enable_request_body_logging"),
        };
        let failover = pick_s("failover_status_codes");
        EffectiveConfig {
            request_timeout_s: pick_i("request_timeout").max(1) as u64,
            connect_timeout_s: pick_i("connect_timeout").max(1) as u64,
            idle_conn_timeout_s: pick_i("idle_conn_timeout").max(1) as u64,
            response_header_timeout_s: pick_i("response_header_timeout").max(1) as u64,
            max_idle_conns: pick_i("max_idle_conns").max(1) as usize,
            max_idle_conns_per_host: pick_i("max_idle_conns_per_host").max(1) as usize,
            proxy_url: pick_s("proxy_url"),
            max_retries: pick_i("max_retries").max(0) as u32,
            blacklist_threshold: pick_i("blacklist_threshold").max(0) as u32,
            failover_matcher: StatusMatcher::parse(&failover).unwrap_or_default(),
            failover_status_codes: failover,
            key_validation_interval_minutes: pick_i("key_validation_interval_minutes").max(1)
                as u64,
            key_validation_concurrency: pick_i("key_validation_concurrency").max(1) as usize,
            key_validation_timeout_s: pick_i("key_validation_timeout_seconds").max(1) as u64,
            enable_request_body_logging: body_logging,
        }
    }

    /// All values as `(key, stored string)`.
    pub fn to_rows(&self) -> Vec<(&'static str, String)> {
        self.values
            .iter()
            .map(|(k, v)| (*k, v.to_db_string()))
            .collect()
    }
}

/// Parses and validates a group's `config` JSON object. Only overridable keys are accepted.
pub fn parse_group_config(config: &Value) -> Result<BTreeMap<String, SettingValue>, SettingError> {
    let mut out = BTreeMap::new();
    let obj = match config {
        Value::Null => return Ok(out),
        Value::Object(o) => o,
        _ => return Err(SettingError::new("config", "must be a JSON object")),
    };
    for (k, v) in obj {
        if v.is_null() {
            continue;
        }
        let def = setting_def(k)
            .filter(|d| d.overridable)
            .ok_or_else(|| SettingError::new(k, "is not a setting a group can override"))?;
        out.insert(k.clone(), validate_json(def, v)?);
    }
    Ok(out)
}

/// Lenient variant for values already stored: bad entries are dropped.
pub fn parse_group_config_lenient(config: &Value) -> BTreeMap<String, SettingValue> {
    let mut out = BTreeMap::new();
    if let Value::Object(o) = config {
        for (k, v) in o {
            if let Some(def) = setting_def(k).filter(|d| d.overridable)
                && let Ok(val) = validate_json(def, v)
            {
                out.insert(k.clone(), val);
            }
        }
    }
    out
}

/// The settings a group actually runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveConfig {
    pub request_timeout_s: u64,
    pub connect_timeout_s: u64,
    pub idle_conn_timeout_s: u64,
    pub response_header_timeout_s: u64,
    pub max_idle_conns: usize,
    pub max_idle_conns_per_host: usize,
    pub proxy_url: String,
    pub max_retries: u32,
    pub blacklist_threshold: u32,
    pub failover_status_codes: String,
    pub failover_matcher: StatusMatcher,
    pub key_validation_interval_minutes: u64,
    pub key_validation_concurrency: usize,
    pub key_validation_timeout_s: u64,
    pub enable_request_body_logging: bool,
}

impl EffectiveConfig {
    /// The fields that shape an upstream HTTP client; equal fingerprints share one client pool.
    pub fn client_fingerprint(&self) -> (u64, u64, usize, &str) {
        (
            self.connect_timeout_s,
            self.idle_conn_timeout_s,
            self.max_idle_conns_per_host,
            &self.proxy_url,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn eighteen_settings_with_gpt_load_defaults() {
        assert_eq!(SETTING_DEFS.len(), 18);
        let s = SystemSettings::default();
        assert_eq!(s.int("request_timeout"), 600);
        assert_eq!(s.int("max_retries"), 3);
        assert_eq!(s.int("blacklist_threshold"), 3);
        assert_eq!(s.str("failover_status_codes"), "400-403,405-999");
        assert!(!s.bool("enable_request_body_logging"));
        let e = s.effective(&BTreeMap::new());
        assert!(e.failover_matcher.matches(500) && !e.failover_matcher.matches(404));
    }

    #[test]
    fn validation_names_key_and_reason() {
        let d = setting_def("max_retries").unwrap();
        assert_eq!(validate_json(d, &json!(5)).unwrap(), SettingValue::Int(5));
        assert_eq!(validate_json(d, &json!(5.0)).unwrap(), SettingValue::Int(5));
        let e = validate_json(d, &json!(-1)).unwrap_err();
        assert_eq!(e.to_string(), "max_retries: must be at least 0");
        assert!(validate_json(d, &json!("5")).is_err());
        assert!(validate_json(d, &json!(1.5)).is_err());
        let b = setting_def("enable_request_body_logging").unwrap();
        assert!(validate_json(b, &json!("yes")).is_err());
        let f = setting_def("failover_status_codes").unwrap();
        assert!(validate_json(f, &json!("500-")).is_err());
        let a = setting_def("app_url").unwrap();
        assert!(validate_json(a, &json!("")).is_err());
        let p = setting_def("proxy_keys").unwrap();
        assert_eq!(
            validate_json(p, &json!(" a , b,")).unwrap(),
            SettingValue::Str("a,b".into())
        );
    }

    #[test]
    fn stored_rows_overlay_defaults_and_bad_rows_are_skipped() {
        let (s, skipped) = SystemSettings::from_rows([
            ("max_retries", "7"),
            ("request_timeout", "0"),
            ("nope", "1"),
        ]);
        assert_eq!(s.int("max_retries"), 7);
        assert_eq!(s.int("request_timeout"), 600);
        assert_eq!(skipped, ["request_timeout", "nope"]);
    }

    #[test]
    fn group_overrides_replace_global_values() {
        let o = parse_group_config(
            &json!({"max_retries": 0, "proxy_url": "http://p:8080", "blacklist_threshold": null}),
        )
        .unwrap();
        let e = SystemSettings::default().effective(&o);
        assert_eq!(e.max_retries, 0);
        assert_eq!(e.proxy_url, "http://p:8080");
        assert_eq!(e.blacklist_threshold, 3);
        assert!(parse_group_config(&json!({"app_url": "http://x"})).is_err());
        assert!(parse_group_config(&json!({"request_timeout": 0})).is_err());
        assert!(parse_group_config(&json!([1])).is_err());
    }
}
