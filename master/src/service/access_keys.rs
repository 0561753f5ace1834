//! Access keys (issue 19): the keys clients send to the native routes (`/v1/chat/completions`,
//! `/v1/messages`, …) and to `/proxy/{group}` when their filters allow it.
//!
//! Invariants: a key is stored like a vendor key — encrypted with the key cipher, looked up by the
//! cipher's hash, which is unique — and shown whole exactly once, in the answer to its creation;
//! every other answer masks it. The key itself never changes after creation. Filters are checked
//! here when written (known group ids, known protocols, non-empty model patterns), so what the
//! snapshot reads back is trusted; if it cannot be read anyway, the snapshot disables the key
//! rather than lifting its restrictions.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use gpt_load_common::crypto::KeyCipher;
use gpt_load_common::model::ChannelType;
use gpt_load_common::snapshot::access::parse_net;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::error::ServiceError;
use super::groups::validate_models;
use super::lenient;
use crate::api::response::{go_time, go_time_opt, go_time_or_zero};
use crate::api::schema as doc;
use crate::db::Db;
use crate::db::repo::access_keys::{self, AccessKeyRecord};
use crate::db::repo::groups;

/// The prefix of generated keys.
pub const KEY_PREFIX: &str = "sk-gl-";
/// Random letters and digits after the prefix of a generated key (≈ 238 bits).
const GENERATED_CHARS: usize = 40;
/// Bounds of a key given by the administrator, in bytes.
pub const MIN_KEY_BYTES: usize = 16;
pub const MAX_KEY_BYTES: usize = 4096;
/// Longest name, in characters (the column is `varchar(255)`).
const MAX_NAME_CHARS: usize = 255;

/// `active` (usable) or `disabled` (refused with 401, kept in the snapshot).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccessKeyStatus {
    Active,
    Disabled,
}

/// What an access key may reach. An empty list restricts nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccessKeyFilters {
    /// Ids of the groups the key may use.
    #[serde(default)]
    pub groups: Vec<i64>,
    /// Model names or glob patterns (`*`, `?`) the key may ask for.
    #[serde(default)]
    pub models: Vec<String>,
    /// Protocols the key may speak.
    #[serde(default)]
    #[schema(value_type = Vec<doc::ChannelType>)]
    pub protocols: Vec<String>,
}

/// A new access key.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct AccessKeyCreate {
    /// 1–255 characters.
    pub name: Option<String>,
    /// The key, 16–4096 bytes without whitespace; absent or empty: generated as `sk-gl-` and 40
    /// random letters and digits.
    pub key: Option<String>,
    /// `active` when absent.
    #[schema(value_type = Option<AccessKeyStatus>)]
    pub status: Option<String>,
    pub filters: Option<AccessKeyFilters>,
    /// RFC 3339; absent or `null`: never expires.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// Addresses or CIDRs the key may be used from; empty: any.
    pub allowed_ips: Option<Vec<String>>,
}

/// Changes to an access key; an absent field keeps its value. The key itself cannot change.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct AccessKeyUpdate {
    /// 1–255 characters.
    pub name: Option<String>,
    #[schema(value_type = Option<AccessKeyStatus>)]
    pub status: Option<String>,
    /// Replaces all three lists.
    pub filters: Option<AccessKeyFilters>,
    /// RFC 3339, or `null` to never expire.
    #[serde(default, deserialize_with = "lenient::present")]
    #[schema(value_type = Option<String>, format = DateTime, nullable)]
    pub expires_at: Option<Value>,
    /// Addresses or CIDRs the key may be used from; empty: any.
    pub allowed_ips: Option<Vec<String>>,
}

/// An access key as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = AccessKey)]
pub struct AccessKeyResponse {
    pub id: i64,
    pub name: String,
    /// Masked (`sk-gl-abcd…wxyz`), except in the answer to the key's creation: the only time the
    /// whole key is shown.
    pub key: String,
    #[schema(value_type = AccessKeyStatus)]
    pub status: String,
    pub filters: AccessKeyFilters,
    /// RFC 3339; `null`: never expires.
    pub expires_at: Option<String>,
    /// Addresses or CIDRs the key may be used from; empty: any.
    pub allowed_ips: Vec<String>,
    /// RFC 3339 (local offset).
    pub created_at: String,
    /// RFC 3339 (local offset); `null`: never used.
    pub last_used_at: Option<String>,
    pub request_count: i64,
}

fn invalid(field: &str, error: &str) -> ServiceError {
    ServiceError::invalid_with(
        "validation.invalid_field",
        &[("field", field), ("error", error)],
    )
}

/// A new random key: `sk-gl-` and 40 letters and digits from the thread's CSPRNG.
pub fn generate_key() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    format!(
        "{KEY_PREFIX}{}",
        Alphanumeric.sample_string(&mut rand::rng(), GENERATED_CHARS)
    )
}

/// The key as lists show it: `sk-gl-` kept, then the first and last 4 characters of the rest
/// (fewer for a short key, none for a very short one).
pub fn mask(key: &str) -> String {
    let (prefix, rest) = match key.strip_prefix(KEY_PREFIX) {
        Some(rest) => (KEY_PREFIX, rest),
        None => ("", key),
    };
    let chars: Vec<char> = rest.chars().collect();
    let n = chars.len();
    let keep = if n >= 12 {
        4
    } else if n >= 8 {
        2
    } else {
        0
    };
    let head: String = chars[..keep].iter().collect();
    let tail: String = chars[n - keep..].iter().collect();
    format!("{prefix}{head}…{tail}")
}

/// A trimmed, non-empty name of at most 255 characters.
pub fn validate_name(name: &str) -> Result<String, ServiceError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(invalid("name", "a name is required"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid("name", "at most 255 characters"));
    }
    Ok(name.to_owned())
}

/// A key given by the administrator: 16–4096 bytes, no whitespace or control characters (it
/// travels in a header). The error never shows the key.
pub fn validate_key(key: &str) -> Result<(), ServiceError> {
    if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len()) {
        return Err(invalid("key", "a key has 16 to 4096 bytes"));
    }
    if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            "key",
            "a key may not contain whitespace or control characters",
        ));
    }
    Ok(())
}

fn validate_status(status: &str) -> Result<String, ServiceError> {
    match status.trim() {
        s @ ("active" | "disabled") => Ok(s.to_owned()),
        _ => Err(invalid("status", "use \"active\" or \"disabled\"")),
    }
}

/// Filters with every group id known, every protocol a channel type and every model pattern
/// valid; duplicates dropped, order kept.
pub fn validate_filters(
    f: &AccessKeyFilters,
    known_groups: &HashSet<i64>,
) -> Result<AccessKeyFilters, ServiceError> {
    let mut groups = Vec::with_capacity(f.groups.len());
    for id in &f.groups {
        if !known_groups.contains(id) {
            return Err(invalid(
                "filters.groups",
                &format!("no group has the id {id}"),
            ));
        }
        if !groups.contains(id) {
            groups.push(*id);
        }
    }
    let models = validate_models(&f.models).map_err(|e| invalid("filters.models", &e))?;
    let mut protocols: Vec<String> = Vec::with_capacity(f.protocols.len());
    for p in &f.protocols {
        let Some(c) = ChannelType::parse(p.trim()) else {
            let all: Vec<&str> = ChannelType::ALL.iter().map(|c| c.as_str()).collect();
            return Err(invalid(
                "filters.protocols",
                &format!("unknown protocol {p:?}; use one of {}", all.join(", ")),
            ));
        };
        if !protocols.iter().any(|q| q == c.as_str()) {
            protocols.push(c.as_str().to_owned());
        }
    }
    Ok(AccessKeyFilters {
        groups,
        models,
        protocols,
    })
}

/// Addresses (`10.0.0.1`, `::1`) and networks (`10.0.0.0/8`), trimmed, blanks dropped.
pub fn validate_ips(ips: &[String]) -> Result<Vec<String>, ServiceError> {
    let mut out: Vec<String> = Vec::with_capacity(ips.len());
    for ip in ips {
        let ip = ip.trim();
        if ip.is_empty() {
            continue;
        }
        if parse_net(ip).is_none() {
            return Err(invalid(
                "allowed_ips",
                &format!("{ip:?} is neither an IP address nor a CIDR"),
            ));
        }
        if !out.iter().any(|o| o == ip) {
            out.push(ip.to_owned());
        }
    }
    Ok(out)
}

/// An RFC 3339 time.
pub fn parse_expiry(raw: &str) -> Result<DateTime<Utc>, ServiceError> {
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            invalid(
                "expires_at",
                "use an RFC 3339 time such as 2030-01-01T00:00:00Z, or null",
            )
        })
}

/// The stored filters; `None` when they cannot be read (the snapshot then disables the key).
pub fn stored_filters(raw: Option<&str>) -> Option<AccessKeyFilters> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Some(AccessKeyFilters::default()),
        Some(s) => serde_json::from_str(s).ok(),
    }
}

/// The stored address list; `None` when it cannot be read.
pub fn stored_ips(raw: Option<&str>) -> Option<Vec<String>> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Some(Vec::new()),
        Some(s) => serde_json::from_str(s).ok(),
    }
}

fn to_json<T: Serialize>(v: &T) -> Result<String, ServiceError> {
    serde_json::to_string(v).map_err(|_| ServiceError::Internal)
}

async fn known_groups(db: &Db) -> Result<HashSet<i64>, ServiceError> {
    Ok(groups::list(db).await?.into_iter().map(|g| g.id).collect())
}

/// The key as the API shows it, with `key` as given (whole or masked).
fn response(k: &AccessKeyRecord, key: String) -> AccessKeyResponse {
    AccessKeyResponse {
        id: k.id,
        name: k.name.clone(),
        key,
        status: k.status.clone(),
        filters: stored_filters(k.filters.as_deref()).unwrap_or_default(),
        expires_at: k.expires_at.map(go_time),
        allowed_ips: stored_ips(k.allowed_ips.as_deref()).unwrap_or_default(),
        created_at: go_time_or_zero(k.created_at),
        last_used_at: go_time_opt(k.last_used_at),
        request_count: k.request_count,
    }
}

/// The masked key of a stored record (`****` when it cannot be decrypted: wrong `ENCRYPTION_KEY`).
fn masked(k: &AccessKeyRecord, cipher: &KeyCipher) -> String {
    cipher
        .decrypt(&k.key_value)
        .map(|plain| mask(&plain))
        .unwrap_or_else(|_| "****".to_owned())
}

/// Every access key, oldest first, keys masked.
pub async fn list(db: &Db, cipher: &KeyCipher) -> Result<Vec<AccessKeyResponse>, ServiceError> {
    Ok(access_keys::list(db)
        .await?
        .iter()
        .map(|k| response(k, masked(k, cipher)))
        .collect())
}

/// Creates a key; the answer carries the whole key (the only one that does).
pub async fn create(
    db: &Db,
    cipher: &KeyCipher,
    r: &AccessKeyCreate,
) -> Result<AccessKeyResponse, ServiceError> {
    let name = validate_name(r.name.as_deref().unwrap_or_default())?;
    let plain = match r.key.as_deref().filter(|k| !k.is_empty()) {
        Some(k) => {
            validate_key(k)?;
            k.to_owned()
        }
        None => generate_key(),
    };
    let status = match &r.status {
        Some(s) => validate_status(s)?,
        None => "active".to_owned(),
    };
    let filters = match &r.filters {
        Some(f) => validate_filters(f, &known_groups(db).await?)?,
        None => AccessKeyFilters::default(),
    };
    let expires_at = r.expires_at.as_deref().map(parse_expiry).transpose()?;
    let allowed_ips = validate_ips(r.allowed_ips.as_deref().unwrap_or_default())?;
    let key_hash = cipher.hash(&plain);
    if access_keys::exists_hash(db, &key_hash).await? {
        return Err(ServiceError::Duplicate);
    }
    let mut rec = AccessKeyRecord {
        id: 0,
        name,
        key_value: cipher.encrypt(&plain),
        key_hash,
        status,
        filters: Some(to_json(&filters)?),
        expires_at,
        allowed_ips: Some(to_json(&allowed_ips)?),
        limits: None,
        request_count: 0,
        last_used_at: None,
        created_at: None,
        updated_at: None,
    };
    // A concurrent create of the same key fails on the unique hash: `Duplicate` as well.
    rec.id = access_keys::insert(db, &rec).await?;
    let rec = access_keys::get(db, rec.id).await?;
    Ok(response(&rec, plain))
}

/// Applies a partial update; the answer masks the key.
pub async fn update(
    db: &Db,
    cipher: &KeyCipher,
    id: i64,
    r: &AccessKeyUpdate,
) -> Result<AccessKeyResponse, ServiceError> {
    let mut rec = access_keys::get(db, id).await?;
    if let Some(n) = &r.name {
        rec.name = validate_name(n)?;
    }
    if let Some(s) = &r.status {
        rec.status = validate_status(s)?;
    }
    if let Some(f) = &r.filters {
        rec.filters = Some(to_json(&validate_filters(f, &known_groups(db).await?)?)?);
    }
    match &r.expires_at {
        None => {}
        Some(Value::Null) => rec.expires_at = None,
        Some(Value::String(s)) => rec.expires_at = Some(parse_expiry(s)?),
        Some(_) => {
            return Err(invalid(
                "expires_at",
                "use an RFC 3339 time such as 2030-01-01T00:00:00Z, or null",
            ));
        }
    }
    if let Some(ips) = &r.allowed_ips {
        rec.allowed_ips = Some(to_json(&validate_ips(ips)?)?);
    }
    access_keys::update(db, &rec).await?;
    let rec = access_keys::get(db, id).await?;
    Ok(response(&rec, masked(&rec, cipher)))
}

pub async fn delete(db: &Db, id: i64) -> Result<(), ServiceError> {
    Ok(access_keys::delete(db, id).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_error(e: ServiceError) -> String {
        match e {
            ServiceError::Invalid(m) => crate::api::response::render(crate::i18n::Lang::EnUs, &m),
            other => panic!("not a validation failure: {other:?}"),
        }
    }

    #[test]
    fn generated_keys_are_long_random_and_masked() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a, b);
        assert_eq!(a.len(), KEY_PREFIX.len() + GENERATED_CHARS);
        assert!(
            a[KEY_PREFIX.len()..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric())
        );
        assert!(validate_key(&a).is_ok());
        let m = mask(&a);
        assert_eq!(m.chars().count(), KEY_PREFIX.len() + 9, "{m}");
        assert!(
            m.starts_with(&a[..10]) && m.ends_with(&a[a.len() - 4..]),
            "{m}"
        );
        assert_eq!(mask("sk-gl-abcdefghijklmnwxyz"), "sk-gl-abcd…wxyz");
        assert_eq!(mask("my-own-key-0123456789"), "my-o…6789");
        assert_eq!(mask("sk-gl-0123456789"), "sk-gl-01…89");
        assert_eq!(mask("sk-gl-short"), "sk-gl-…");
    }

    #[test]
    fn given_keys_are_checked_without_echoing_them() {
        for bad in [
            "short",
            "has a space in it here",
            "tab\tin-the-middle-of-it",
        ] {
            let text = field_error(validate_key(bad).unwrap_err());
            assert!(text.contains("key"), "{text}");
            assert!(!text.contains(bad), "{text}");
        }
        assert!(validate_key(&"k".repeat(4097)).is_err());
        assert!(validate_key(&"k".repeat(4096)).is_ok());
        assert!(validate_key("exactly-16-bytes").is_ok());
    }

    #[test]
    fn filters_name_the_field_at_fault() {
        let known: HashSet<i64> = [1, 2].into();
        let f = |groups: Vec<i64>, models: Vec<&str>, protocols: Vec<&str>| AccessKeyFilters {
            groups,
            models: models.into_iter().map(str::to_owned).collect(),
            protocols: protocols.into_iter().map(str::to_owned).collect(),
        };
        let ok = validate_filters(
            &f(
                vec![2, 1, 2],
                vec![" gpt-* ", "gpt-*"],
                vec!["openai", "anthropic", "openai"],
            ),
            &known,
        )
        .unwrap();
        assert_eq!(
            ok,
            f(vec![2, 1], vec!["gpt-*"], vec!["openai", "anthropic"])
        );
        for (bad, field) in [
            (f(vec![3], vec![], vec![]), "filters.groups"),
            (f(vec![], vec![" "], vec![]), "filters.models"),
            (f(vec![], vec![&"m".repeat(201)], vec![]), "filters.models"),
            (f(vec![], vec![], vec!["azure"]), "filters.protocols"),
        ] {
            let text = field_error(validate_filters(&bad, &known).unwrap_err());
            assert!(text.contains(field), "{text}");
        }
    }

    #[test]
    fn addresses_names_statuses_and_expiry() {
        assert_eq!(
            validate_ips(&[" 10.0.0.0/8 ".into(), "::1".into(), "".into(), "::1".into()]).unwrap(),
            vec!["10.0.0.0/8", "::1"]
        );
        for bad in ["10.0.0.0/33", "example.com", "1.2.3"] {
            let text = field_error(validate_ips(&[bad.into()]).unwrap_err());
            assert!(text.contains("allowed_ips"), "{text}");
        }
        assert!(field_error(validate_name("  ").unwrap_err()).contains("name"));
        assert!(validate_name(&"n".repeat(256)).is_err());
        assert_eq!(validate_name(" ci ").unwrap(), "ci");
        assert!(field_error(validate_status("on").unwrap_err()).contains("status"));
        assert_eq!(
            parse_expiry("2030-01-01T08:00:00+08:00")
                .unwrap()
                .timestamp(),
            1_893_456_000
        );
        assert!(field_error(parse_expiry("tomorrow").unwrap_err()).contains("expires_at"));
    }

    #[test]
    fn stored_values_that_cannot_be_read_are_none() {
        assert_eq!(stored_filters(None), Some(AccessKeyFilters::default()));
        assert_eq!(
            stored_filters(Some(r#"{"groups":[1]}"#)).map(|f| f.groups),
            Some(vec![1])
        );
        assert_eq!(stored_filters(Some("{oops")), None);
        assert_eq!(stored_ips(Some(r#"["::1"]"#)), Some(vec!["::1".to_owned()]));
        assert_eq!(stored_ips(Some("nope")), None);
    }
}
