//! Group rules (spec §7): validating create/update input and shaping GPT-Load's group responses.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use gpt_load_common::model::settings::parse_group_config;
use gpt_load_common::model::{
    ChannelType, GroupType, HeaderAction, HeaderRule, Upstream, is_valid_group_name,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::error::ServiceError;
use super::lenient;
use crate::api::response::{go_time_opt, go_time_or_zero};
use crate::api::schema as doc;
use crate::db::repo::groups::GroupRecord;

/// Group fields as create and update take them; on update an absent field keeps its value.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct GroupRequest {
    /// 1–100 of `a-z 0-9 _ -`; the group's URL segment.
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub description: Option<String>,
    /// `standard` (default) or `aggregate`; fixed once created.
    #[schema(value_type = Option<doc::GroupType>)]
    pub group_type: Option<String>,
    #[schema(value_type = Option<doc::ChannelType>)]
    pub channel_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub sort: Option<i64>,
    /// The model key validation asks for (required for standard groups).
    pub test_model: Option<String>,
    /// A path such as `/v1/chat/completions`; empty for the channel's default.
    pub validation_endpoint: Option<String>,
    /// Required for standard groups; ignored for aggregates. On update, `null` is refused.
    #[serde(default, deserialize_with = "lenient::present")]
    #[schema(value_type = Option<Vec<doc::Upstream>>)]
    pub upstreams: Option<Value>,
    /// Group proxy keys, comma- or newline-separated.
    pub proxy_keys: Option<String>,
    #[schema(value_type = Option<std::collections::HashMap<String, serde_json::Value>>)]
    pub param_overrides: Option<Map<String, Value>>,
    /// Model name → model name sent upstream.
    pub model_redirect_rules: Option<BTreeMap<String, String>>,
    pub model_redirect_strict: Option<bool>,
    /// Per-group overrides of system settings (see `GET /api/groups/config-options`).
    #[schema(value_type = Option<doc::GroupConfig>)]
    pub config: Option<Map<String, Value>>,
    pub header_rules: Option<Vec<HeaderRuleInput>>,
    /// Models the group serves on the native routes (`/v1/…`): names or glob patterns (`*`, `?`),
    /// each 1–200 characters. Empty (the default): reachable only through `/proxy/{name}`.
    pub models: Option<Vec<String>>,
    /// Routing tier on the native routes: lower is tried first (default 0).
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub priority: Option<i64>,
    /// Share of the group within its tier on the native routes, 0–1000 (default 1).
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    #[schema(minimum = 0, maximum = 1000)]
    pub weight: Option<i64>,
}

/// A header rule as written: blank keys are dropped, keys are canonicalised.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct HeaderRuleInput {
    pub key: Option<String>,
    pub value: Option<String>,
    /// `set` or `remove`.
    pub action: Option<String>,
}

fn v(id: &'static str, vars: &[(&'static str, &str)]) -> ServiceError {
    ServiceError::invalid_with(id, vars)
}

/// Which upstream addresses an administrator may configure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpstreamPolicy {
    /// `ALLOW_LINK_LOCAL_UPSTREAMS`: link-local IP literals (cloud metadata services) are refused
    /// unless this is set.
    pub allow_link_local: bool,
}

/// Validates upstreams: a non-empty array of `{url: http(s)://…, weight ≥ 0}` with one weight > 0.
pub fn validate_upstreams(
    raw: Option<&Value>,
    policy: UpstreamPolicy,
) -> Result<String, ServiceError> {
    let err = |m: &str| v("validation.invalid_upstreams", &[("error", m)]);
    let arr = match raw {
        None => return Err(err("upstreams field is required")),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(err("upstreams must be an array of {url, weight}")),
    };
    if arr.is_empty() {
        return Err(err("at least one upstream is required"));
    }
    let mut out = Vec::with_capacity(arr.len());
    for item in arr {
        let Value::Object(o) = item else {
            return Err(err("each upstream must be an object {url, weight}"));
        };
        let url = match o.get("url") {
            Some(Value::String(s)) => s.trim().to_owned(),
            None | Some(Value::Null) => String::new(),
            Some(_) => return Err(err("upstream url must be a string")),
        };
        if url.is_empty() {
            return Err(err("upstream URL cannot be empty"));
        }
        let parsed_ok = (url.starts_with("http://") || url.starts_with("https://"))
            && gpt_load_worker::state::UpstreamBase::parse(&url).is_some();
        if !parsed_ok {
            return Err(err(&format!("invalid URL format for upstream: {url}")));
        }
        if !policy.allow_link_local
            && let Some(ip) = link_local_host(&url)
        {
            return Err(err(&format!(
                "upstream {url} points at the link-local address {ip} \
                 (where cloud metadata services answer); link-local upstreams are refused \
                 unless ALLOW_LINK_LOCAL_UPSTREAMS=true"
            )));
        }
        let weight = match o.get("weight") {
            None | Some(Value::Null) => 0,
            Some(Value::Number(n)) => n
                .as_i64()
                .ok_or_else(|| err("upstream weight must be a non-negative integer"))?,
            Some(_) => return Err(err("upstream weight must be a non-negative integer")),
        };
        if weight < 0 {
            return Err(err("upstream weight must be a non-negative integer"));
        }
        out.push(Upstream { url, weight });
    }
    if !out.iter().any(|u| u.weight > 0) {
        return Err(err(
            "at least one upstream must have a weight greater than 0",
        ));
    }
    serde_json::to_string(&out).map_err(|_| ServiceError::Internal)
}

/// The address of `url`'s host when it is a link-local IP literal: `169.254.0.0/16`,
/// `fe80::/10`, or the former mapped into IPv6, in any spelling the system resolver accepts
/// (`2852039166`, `0xa9.0xfe.0xa9.0xfe`, `169.254.43518`). Cloud metadata services answer
/// there (instance credentials), so an upstream there is refused: defence in depth against a
/// stolen admin key or a careless paste, since the proxy attaches a vendor key to every request.
/// Host names are not resolved: a name that resolves to such an address is not caught here.
pub fn link_local_host(url: &str) -> Option<IpAddr> {
    let uri: http::Uri = url.trim().parse().ok()?;
    let host = uri.host()?;
    let ip = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => IpAddr::V6(v6.parse().ok()?),
        None => IpAddr::V4(resolver_ipv4(host.strip_suffix('.').unwrap_or(host))?),
    };
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.is_link_local(),
            None => v6.segments()[0] & 0xffc0 == 0xfe80,
        },
    };
    link_local.then_some(ip)
}

/// An IPv4 address as `inet_aton` (and so `getaddrinfo`) reads a host: one to four parts, each
/// decimal, octal (`0` prefix) or hex (`0x` prefix), the last filling the remaining bytes.
fn resolver_ipv4(host: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = host.split('.').collect();
    if parts.len() > 4 {
        return None;
    }
    let mut nums = Vec::with_capacity(parts.len());
    for p in parts {
        let (digits, radix) = if let Some(h) = p.strip_prefix("0x").or(p.strip_prefix("0X")) {
            (h, 16)
        } else if p.len() > 1 && p.starts_with('0') {
            (&p[1..], 8)
        } else {
            (p, 10)
        };
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            return None;
        }
        nums.push(u32::from_str_radix(digits, radix).ok()?);
    }
    let (last, head) = nums.split_last()?;
    if head.iter().any(|n| *n > 255) {
        return None;
    }
    // `head.len()` is at most 3, so the last part fills 1 to 4 bytes.
    let last_bits = 8 * (4 - head.len() as u32);
    if last_bits < 32 && *last >> last_bits != 0 {
        return None;
    }
    let high = head
        .iter()
        .enumerate()
        .fold(0u32, |v, (i, n)| v | n << (24 - 8 * i as u32));
    Some(Ipv4Addr::from(high | last))
}

/// Canonical header name, as Go's `http.CanonicalHeaderKey` (`x-foo-bar` → `X-Foo-Bar`).
pub fn canonical_header(k: &str) -> String {
    k.split('-')
        .map(|part| {
            let mut c = part.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Normalises header rules: trimmed canonical keys, blank keys dropped, duplicates refused,
/// action `set` or `remove`.
pub fn validate_header_rules(rules: &[HeaderRuleInput]) -> Result<String, ServiceError> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for rule in rules {
        let key = rule.key.as_deref().unwrap_or_default().trim();
        if key.is_empty() {
            continue;
        }
        if http::HeaderName::from_bytes(key.as_bytes()).is_err() {
            return Err(ServiceError::invalid_text(format!(
                "Invalid header name: {key}"
            )));
        }
        let canonical = canonical_header(key);
        if !seen.insert(canonical.to_ascii_lowercase()) {
            return Err(v("validation.duplicate_header", &[("key", &canonical)]));
        }
        let action = match rule.action.as_deref().map(str::trim) {
            Some("set") => HeaderAction::Set,
            Some("remove") => HeaderAction::Remove,
            other => {
                return Err(ServiceError::invalid_text(format!(
                    "Invalid header rule action {:?} for {canonical}: use \"set\" or \"remove\"",
                    other.unwrap_or("")
                )));
            }
        };
        let value = rule.value.clone().unwrap_or_default();
        if action == HeaderAction::Set && http::HeaderValue::from_str(&value).is_err() {
            return Err(ServiceError::invalid_text(format!(
                "Invalid header value for {canonical}"
            )));
        }
        out.push(HeaderRule {
            key: canonical,
            value,
            action,
        });
    }
    serde_json::to_string(&out).map_err(|_| ServiceError::Internal)
}

/// Longest model name or pattern, in characters.
pub const MAX_MODEL_CHARS: usize = 200;
/// Largest routing weight of a group (as for aggregate members: sums of weights stay small).
pub const MAX_ROUTING_WEIGHT: i64 = 1000;

/// Model names or glob patterns: trimmed, each 1–200 characters, duplicates dropped (order kept).
/// The error says what is wrong, for a message naming the field.
pub fn validate_models(models: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::with_capacity(models.len());
    for m in models {
        let m = m.trim();
        if m.is_empty() {
            return Err("a model name or pattern cannot be empty".to_owned());
        }
        if m.chars().count() > MAX_MODEL_CHARS {
            return Err(format!(
                "a model name or pattern has at most {MAX_MODEL_CHARS} characters"
            ));
        }
        if !out.iter().any(|o| o == m) {
            out.push(m.to_owned());
        }
    }
    Ok(out)
}

/// Model redirect rules: non-empty source and target names.
pub fn validate_redirect_rules(raw: &BTreeMap<String, String>) -> Result<String, ServiceError> {
    let mut out = BTreeMap::new();
    for (from, to) in raw {
        if from.trim().is_empty() || to.trim().is_empty() {
            return Err(v(
                "validation.invalid_model_redirect",
                &[("error", "model name cannot be empty")],
            ));
        }
        out.insert(from.trim().to_owned(), to.trim().to_owned());
    }
    serde_json::to_string(&out).map_err(|_| ServiceError::Internal)
}

fn validate_config(raw: &Map<String, Value>) -> Result<String, ServiceError> {
    let parsed = parse_group_config(&Value::Object(raw.clone()))
        .map_err(|e| v("error.invalid_config_format", &[("error", &e.to_string())]))?;
    let obj: Map<String, Value> = parsed.into_iter().map(|(k, v)| (k, v.to_json())).collect();
    serde_json::to_string(&obj).map_err(|_| ServiceError::Internal)
}

fn validate_test_path(p: &str) -> Result<String, ServiceError> {
    let p = p.trim();
    if p.is_empty() {
        return Ok(String::new());
    }
    if !p.starts_with('/') || p.contains("://") {
        return Err(v("validation.invalid_test_path", &[]));
    }
    Ok(p.to_owned())
}

fn invalid_channel() -> ServiceError {
    let types = ChannelType::ALL
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    v("validation.invalid_channel_type", &[("types", &types)])
}

fn trimmed(s: &Option<String>) -> String {
    s.as_deref().unwrap_or_default().trim().to_owned()
}

/// The fields create and update treat alike.
fn apply_common(
    g: &mut GroupRecord,
    r: &GroupRequest,
    aggregate: bool,
) -> Result<(), ServiceError> {
    if let Some(c) = &r.config {
        g.config = Some(validate_config(c)?);
    }
    if let Some(h) = &r.header_rules {
        g.header_rules = Some(validate_header_rules(h)?);
    }
    if let Some(rules) = &r.model_redirect_rules {
        if aggregate && !rules.is_empty() {
            return Err(v("validation.aggregate_no_model_redirect", &[]));
        }
        g.model_redirect_rules = Some(validate_redirect_rules(rules)?);
    }
    if let Some(p) = &r.param_overrides {
        g.param_overrides = Some(Value::Object(p.clone()).to_string());
    }
    if let Some(m) = &r.models {
        let models = validate_models(m).map_err(|e| field("models", &e))?;
        g.models = Some(serde_json::to_string(&models).map_err(|_| ServiceError::Internal)?);
    }
    if let Some(p) = r.priority {
        g.priority = p;
    }
    if let Some(w) = r.weight {
        if !(0..=MAX_ROUTING_WEIGHT).contains(&w) {
            return Err(field("weight", "an integer from 0 to 1000"));
        }
        g.weight = w;
    }
    Ok(())
}

/// A value of `name` breaks a rule; `error` says which.
fn field(name: &str, error: &str) -> ServiceError {
    ServiceError::invalid_with(
        "validation.invalid_field",
        &[("field", name), ("error", error)],
    )
}

/// The stored model list (none when it is unset or cannot be read).
pub fn stored_models(raw: Option<&str>) -> Vec<String> {
    raw.and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

/// Builds a new group from a create request.
pub fn from_create(r: &GroupRequest, policy: UpstreamPolicy) -> Result<GroupRecord, ServiceError> {
    let name = trimmed(&r.name);
    if !is_valid_group_name(&name) {
        return Err(v("validation.invalid_group_name", &[]));
    }
    let channel = trimmed(&r.channel_type);
    if ChannelType::parse(&channel).is_none() {
        return Err(invalid_channel());
    }
    let group_type = GroupType::parse(&trimmed(&r.group_type))
        .ok_or_else(|| v("validation.invalid_group_type", &[]))?;
    let mut g = GroupRecord {
        id: 0,
        name,
        display_name: trimmed(&r.display_name),
        proxy_keys: normalize_proxy_keys(r.proxy_keys.as_deref().unwrap_or_default()),
        description: trimmed(&r.description),
        group_type: group_type.as_str().to_owned(),
        upstreams: None,
        validation_endpoint: String::new(),
        channel_type: channel,
        sort: r.sort.unwrap_or(0),
        test_model: String::new(),
        param_overrides: None,
        config: None,
        header_rules: Some("[]".into()),
        model_redirect_rules: Some("{}".into()),
        model_redirect_strict: r.model_redirect_strict.unwrap_or(false),
        last_validated_at: None,
        created_at: None,
        updated_at: None,
        models: Some("[]".into()),
        priority: 0,
        weight: 1,
    };
    let aggregate = group_type == GroupType::Aggregate;
    if aggregate {
        g.upstreams = Some("[]".into());
        g.test_model = "-".into();
    } else {
        let test_model = trimmed(&r.test_model);
        if test_model.is_empty() {
            return Err(v("validation.test_model_required", &[]));
        }
        g.test_model = test_model;
        g.upstreams = Some(validate_upstreams(
            r.upstreams.as_ref().filter(|v| !v.is_null()),
            policy,
        )?);
        g.validation_endpoint =
            validate_test_path(r.validation_endpoint.as_deref().unwrap_or_default())?;
    }
    apply_common(&mut g, r, aggregate)?;
    Ok(g)
}

/// Applies a partial update. `member_of` is how many aggregates use this group as a member.
pub fn apply_update(
    g: &mut GroupRecord,
    r: &GroupRequest,
    member_of: usize,
    policy: UpstreamPolicy,
) -> Result<(), ServiceError> {
    let aggregate = g.group_type == "aggregate";
    if let Some(name) = &r.name {
        let name = name.trim().to_owned();
        if !is_valid_group_name(&name) {
            return Err(v("validation.invalid_group_name", &[]));
        }
        g.name = name;
    }
    if let Some(s) = &r.display_name {
        g.display_name = s.trim().to_owned();
    }
    if let Some(s) = &r.description {
        g.description = s.trim().to_owned();
    }
    if let Some(s) = &r.proxy_keys {
        g.proxy_keys = normalize_proxy_keys(s);
    }
    if let Some(s) = r.sort {
        g.sort = s;
    }
    if let Some(b) = r.model_redirect_strict {
        g.model_redirect_strict = b;
    }
    // `group_type` is accepted and never changed (as GPT-Load).
    if !aggregate {
        let referenced = || {
            v(
                "validation.sub_group_referenced_cannot_modify",
                &[("count", &member_of.to_string())],
            )
        };
        if let Some(ch) = &r.channel_type {
            let ch = ch.trim().to_owned();
            if ChannelType::parse(&ch).is_none() {
                return Err(invalid_channel());
            }
            if ch != g.channel_type && member_of > 0 {
                return Err(referenced());
            }
            g.channel_type = ch;
        }
        if let Some(ep) = &r.validation_endpoint {
            let ep = validate_test_path(ep)?;
            if ep != g.validation_endpoint && member_of > 0 {
                return Err(referenced());
            }
            g.validation_endpoint = ep;
        }
        if let Some(tm) = r.test_model.as_deref().filter(|tm| !tm.is_empty()) {
            let tm = tm.trim();
            if tm.is_empty() {
                return Err(v("validation.test_model_empty", &[]));
            }
            g.test_model = tm.to_owned();
        }
        if let Some(u) = &r.upstreams {
            g.upstreams = Some(validate_upstreams(
                Some(u).filter(|v| !v.is_null()),
                policy,
            )?);
        }
    }
    apply_common(g, r, aggregate)
}

/// Splits, trims and re-joins a proxy-key list.
pub fn normalize_proxy_keys(s: &str) -> String {
    gpt_load_common::model::split_proxy_keys(s).join(",")
}

fn json_or_null(s: &Option<String>) -> Value {
    s.as_deref()
        .filter(|t| !t.trim().is_empty())
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null)
}

/// `endpoint` = `app_url` + `/proxy/{name}`.
pub fn endpoint(app_url: &str, name: &str) -> String {
    format!("{}/proxy/{name}", app_url.trim_end_matches('/'))
}

/// GPT-Load's `GroupResponse`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Group)]
pub struct GroupResponse {
    pub id: i64,
    /// Lowercase letters, digits, `_` and `-`; 1–100 characters.
    pub name: String,
    /// `app_url` + `/proxy/{name}` (empty inside sub-group listings).
    pub endpoint: String,
    pub display_name: String,
    pub description: String,
    #[schema(value_type = doc::GroupType)]
    pub group_type: String,
    #[schema(value_type = Option<Vec<doc::Upstream>>)]
    pub upstreams: Value,
    #[schema(value_type = doc::ChannelType)]
    pub channel_type: String,
    pub sort: i64,
    /// `-` for aggregates.
    pub test_model: String,
    /// Empty: the channel's default.
    pub validation_endpoint: String,
    #[schema(value_type = Option<std::collections::HashMap<String, serde_json::Value>>)]
    pub param_overrides: Value,
    #[schema(value_type = Option<std::collections::HashMap<String, String>>)]
    pub model_redirect_rules: Value,
    pub model_redirect_strict: bool,
    #[schema(value_type = Option<doc::GroupConfig>)]
    pub config: Value,
    #[schema(value_type = Option<Vec<doc::HeaderRule>>)]
    pub header_rules: Value,
    /// Comma-separated group proxy keys.
    pub proxy_keys: String,
    /// Models (names or glob patterns) served on the native routes; empty: reachable only
    /// through `/proxy/{name}`.
    pub models: Vec<String>,
    /// Routing tier on the native routes: lower is tried first.
    pub priority: i64,
    /// Share within the tier on the native routes.
    pub weight: i64,
    pub last_validated_at: Option<String>,
    /// RFC 3339 (local offset); `0001-01-01T00:00:00Z` when unknown.
    pub created_at: String,
    /// RFC 3339 (local offset); `0001-01-01T00:00:00Z` when unknown.
    pub updated_at: String,
}

/// GPT-Load's full `models.Group`, as `/groups/list` and sub-group listings show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupModel {
    #[serde(flatten)]
    pub group: GroupResponse,
    /// Always `null` (GPT-Load does not load the keys here).
    #[schema(value_type = Option<Vec<Object>>)]
    pub api_keys: Option<()>,
}

/// An item of `GET /api/groups/list`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupLite {
    pub id: i64,
    pub name: String,
    pub display_name: String,
}

/// The group as the API shows it.
pub fn response(g: &GroupRecord, app_url: &str) -> GroupResponse {
    GroupResponse {
        id: g.id,
        name: g.name.clone(),
        endpoint: endpoint(app_url, &g.name),
        display_name: g.display_name.clone(),
        description: g.description.clone(),
        group_type: if g.group_type.is_empty() {
            "standard".to_owned()
        } else {
            g.group_type.clone()
        },
        upstreams: json_or_null(&g.upstreams),
        channel_type: g.channel_type.clone(),
        sort: g.sort,
        test_model: g.test_model.clone(),
        validation_endpoint: g.validation_endpoint.clone(),
        param_overrides: json_or_null(&g.param_overrides),
        model_redirect_rules: json_or_null(&g.model_redirect_rules),
        model_redirect_strict: g.model_redirect_strict,
        config: json_or_null(&g.config),
        header_rules: json_or_null(&g.header_rules),
        proxy_keys: g.proxy_keys.clone(),
        models: stored_models(g.models.as_deref()),
        priority: g.priority,
        weight: g.weight,
        last_validated_at: go_time_opt(g.last_validated_at),
        created_at: go_time_or_zero(g.created_at),
        updated_at: go_time_or_zero(g.updated_at),
    }
}

/// The full model: no endpoint, `api_keys: null`.
pub fn full_model(g: &GroupRecord) -> GroupModel {
    let mut group = response(g, "");
    group.endpoint = String::new();
    GroupModel {
        group,
        api_keys: None,
    }
}

pub fn lite(g: &GroupRecord) -> GroupLite {
    GroupLite {
        id: g.id,
        name: g.name.clone(),
        display_name: g.display_name.clone(),
    }
}

/// The effective validation endpoint used to match aggregate members (Gemini has none).
pub fn effective_validation_endpoint(g: &GroupRecord) -> String {
    if !g.validation_endpoint.is_empty() {
        return g.validation_endpoint.clone();
    }
    match ChannelType::parse(&g.channel_type) {
        Some(ChannelType::Gemini) | None => String::new(),
        Some(c) => c.default_validation_endpoint().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The English text of a validation failure.
    fn invalid_text(e: ServiceError) -> String {
        match e {
            ServiceError::Invalid(m) => crate::api::response::render(crate::i18n::Lang::EnUs, &m),
            other => panic!("not a validation failure: {other:?}"),
        }
    }

    fn obj(v: Value) -> GroupRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn create_validates_every_rule() {
        let ok = obj(
            json!({"name":"g1","channel_type":"openai","test_model":"m","upstreams":[{"url":"https://a.example/v1 ","weight":1},{"url":"http://b","weight":0}],
            "header_rules":[{"key":"x-foo","value":"1","action":"set"},{"key":" ","value":"","action":"set"}],"model_redirect_rules":{"a":"b"},"config":{"max_retries":1}}),
        );
        let g = from_create(&ok, UpstreamPolicy::default()).unwrap();
        assert_eq!(
            g.upstreams.as_deref(),
            Some(r#"[{"url":"https://a.example/v1","weight":1},{"url":"http://b","weight":0}]"#)
        );
        assert_eq!(
            g.header_rules.as_deref(),
            Some(r#"[{"key":"X-Foo","value":"1","action":"set"}]"#)
        );
        assert_eq!(g.config.as_deref(), Some(r#"{"max_retries":1}"#));
        for (bad, needle) in [
            (json!({"name":"Bad","channel_type":"openai"}), "name"),
            (json!({"name":"g","channel_type":"azure"}), "openai"),
            (
                json!({"name":"g","channel_type":"openai","test_model":""}),
                "est",
            ),
            (
                json!({"name":"g","channel_type":"openai","test_model":"m","upstreams":[]}),
                "at least one upstream",
            ),
            (
                json!({"name":"g","channel_type":"openai","test_model":"m","upstreams":[{"url":"ftp://x","weight":1}]}),
                "invalid URL",
            ),
            (
                json!({"name":"g","channel_type":"openai","test_model":"m","upstreams":[{"url":"http://x","weight":0}]}),
                "greater than 0",
            ),
            (
                json!({"name":"g","channel_type":"openai","test_model":"m","upstreams":[{"url":"http://x","weight":-1}]}),
                "non-negative",
            ),
            (
                json!({"name":"g","channel_type":"openai","test_model":"m","upstreams":[{"url":"http://x","weight":1}],"header_rules":[{"key":"a","action":"set"},{"key":"A","action":"set"}]}),
                "A",
            ),
            (
                json!({"name":"g","channel_type":"openai","test_model":"m","upstreams":[{"url":"http://x","weight":1}],"config":{"nope":1}}),
                "nope",
            ),
            (
                json!({"name":"g","channel_type":"openai","test_model":"m","upstreams":[{"url":"http://x","weight":1}],"model_redirect_rules":{"a":""}}),
                "empty",
            ),
            (
                json!({"name":"g","channel_type":"openai","test_model":"m","upstreams":[{"url":"http://x","weight":1}],"validation_endpoint":"https://x"}),
                "",
            ),
            (
                json!({"name":"g","group_type":"aggregate","channel_type":"openai","model_redirect_rules":{"a":"b"}}),
                "",
            ),
        ] {
            let e = from_create(&obj(bad.clone()), UpstreamPolicy::default()).unwrap_err();
            let text = invalid_text(e);
            assert!(text.contains(needle), "{bad}: {text}");
        }
        let agg = from_create(&obj(json!({"name":"agg","group_type":"aggregate","channel_type":"openai","upstreams":"ignored"})), UpstreamPolicy::default()).unwrap();
        assert_eq!(
            (agg.test_model.as_str(), agg.upstreams.as_deref()),
            ("-", Some("[]"))
        );
    }

    #[test]
    fn routing_fields_default_validate_and_update() {
        let base = json!({"name":"g1","channel_type":"openai","test_model":"m","upstreams":[{"url":"http://a","weight":1}]});
        let g = from_create(&obj(base.clone()), UpstreamPolicy::default()).unwrap();
        assert_eq!(
            (g.models.as_deref(), g.priority, g.weight),
            (Some("[]"), 0, 1)
        );
        let mut body = base.clone();
        body["models"] = json!([" gpt-4o ", "gpt-4o", "claude-*"]);
        body["priority"] = json!(-2);
        body["weight"] = json!(5.0);
        let mut g = from_create(&obj(body), UpstreamPolicy::default()).unwrap();
        assert_eq!(g.models.as_deref(), Some(r#"["gpt-4o","claude-*"]"#));
        assert_eq!((g.priority, g.weight), (-2, 5));
        let r = response(&g, "");
        assert_eq!((r.models.len(), r.priority, r.weight), (2, -2, 5));
        apply_update(
            &mut g,
            &obj(json!({"weight": 0})),
            0,
            UpstreamPolicy::default(),
        )
        .unwrap();
        assert_eq!((g.weight, g.priority), (0, -2));
        for (field, value, needle) in [
            ("models", json!([""]), "models"),
            ("models", json!(["m".repeat(201)]), "models"),
            ("weight", json!(-1), "weight"),
            ("weight", json!(1001), "weight"),
        ] {
            let mut body = base.clone();
            body[field] = value;
            let text =
                invalid_text(from_create(&obj(body), UpstreamPolicy::default()).unwrap_err());
            assert!(text.contains(needle), "{text}");
        }
        assert!(stored_models(Some("not json")).is_empty());
        assert!(stored_models(None).is_empty());
    }

    #[test]
    fn update_is_partial_and_protects_members() {
        let mut g = from_create(&obj(json!({"name":"g1","channel_type":"openai","test_model":"m","upstreams":[{"url":"http://a","weight":1}]})), UpstreamPolicy::default()).unwrap();
        apply_update(
            &mut g,
            &obj(json!({"display_name":" D ","test_model":""})),
            0,
            UpstreamPolicy::default(),
        )
        .unwrap();
        assert_eq!((g.display_name.as_str(), g.test_model.as_str()), ("D", "m"));
        assert!(
            apply_update(
                &mut g,
                &obj(json!({"channel_type":"gemini"})),
                1,
                UpstreamPolicy::default()
            )
            .is_err()
        );
        assert!(
            apply_update(
                &mut g,
                &obj(json!({"upstreams":null})),
                0,
                UpstreamPolicy::default()
            )
            .is_err()
        );
        apply_update(
            &mut g,
            &obj(json!({"channel_type":"gemini"})),
            0,
            UpstreamPolicy::default(),
        )
        .unwrap();
        assert_eq!(g.channel_type, "gemini");
        assert!(
            apply_update(
                &mut g,
                &obj(json!({"test_model":"  "})),
                0,
                UpstreamPolicy::default()
            )
            .is_err()
        );
    }

    #[test]
    fn link_local_hosts_in_every_spelling() {
        for url in [
            "http://169.254.169.254/latest/meta-data",
            "https://169.254.0.1:8443",
            "http://169.254.169.254./",
            "http://2852039166/",
            "http://0xa9.0xfe.0xa9.0xfe/",
            "http://0251.0376.0251.0376/",
            "http://169.254.43518/",
            "http://169.16689662/",
            "http://[fe80::1]/v1",
            "http://[febf:ffff::1]:8080",
            "http://[::ffff:169.254.169.254]/",
            "http://[::ffff:a9fe:a9fe]/",
        ] {
            assert!(link_local_host(url).is_some(), "{url}");
        }
        for url in [
            "http://10.0.0.1/v1",
            "http://127.0.0.1:9",
            "http://169.253.255.255",
            "http://169.255.0.1",
            "http://[fec0::1]",
            "http://[::1]",
            "https://api.openai.com/v1",
            "http://169.254.169.254.example.com/",
            "http://0x/",
            "http://08.1.1.1/",
            "http://1.2.3.4.5/",
            "http://4294967296/",
            "http://256.1.1.1/",
        ] {
            assert_eq!(link_local_host(url), None, "{url}");
        }
        let body = obj(json!({"name":"g","channel_type":"openai","test_model":"m",
                "upstreams":[{"url":"http://a.example","weight":1},{"url":"http://169.254.169.254","weight":0}]}));
        let e = from_create(&body, UpstreamPolicy::default()).unwrap_err();
        let text = invalid_text(e);
        assert!(text.contains("link-local"), "{text}");
        assert!(text.contains("ALLOW_LINK_LOCAL_UPSTREAMS"), "{text}");
        // An operator who means it can allow them.
        let allow = UpstreamPolicy {
            allow_link_local: true,
        };
        assert!(from_create(&body, allow).is_ok());
    }

    #[test]
    fn canonical_headers() {
        assert_eq!(canonical_header("x-api-KEY"), "X-Api-Key");
        assert_eq!(canonical_header("authorization"), "Authorization");
    }
}
