//! Group rules (spec §7): validating create/update input and shaping GPT-Load's group responses.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use axum::http::StatusCode;
use gpt_load_common::model::settings::parse_group_config;
use gpt_load_common::model::{
    ChannelType, GroupType, HeaderAction, HeaderRule, Upstream, is_valid_group_name,
};
use serde_json::{Map, Value};

use crate::api::response::{ApiError, go_time, go_time_opt};
use crate::db::repo::groups::GroupRecord;
use crate::i18n::Lang;

type Obj = Map<String, Value>;

fn field_type_error(field: &str, expected: &str) -> ApiError {
    ApiError::invalid_json(format!("field '{field}' must be {expected}"))
}

/// A string field: `Ok(None)` when absent or null.
pub fn opt_str(o: &Obj, k: &str) -> Result<Option<String>, ApiError> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(field_type_error(k, "a string")),
    }
}

pub fn opt_i64(o: &Obj, k: &str) -> Result<Option<i64>, ApiError> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                    .map(|f| f as i64)
            })
            .map(Some)
            .ok_or_else(|| field_type_error(k, "an integer")),
        Some(_) => Err(field_type_error(k, "an integer")),
    }
}

fn opt_bool(o: &Obj, k: &str) -> Result<Option<bool>, ApiError> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(field_type_error(k, "a boolean")),
    }
}

fn opt_obj<'a>(o: &'a Obj, k: &str) -> Result<Option<&'a Obj>, ApiError> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(field_type_error(k, "a JSON object")),
    }
}

fn v(lang: Lang, id: &str, vars: &[(&str, &str)]) -> ApiError {
    ApiError::i18n_vars(StatusCode::BAD_REQUEST, "VALIDATION_FAILED", lang, id, vars)
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
    lang: Lang,
    raw: Option<&Value>,
    policy: UpstreamPolicy,
) -> Result<String, ApiError> {
    let err = |m: &str| v(lang, "validation.invalid_upstreams", &[("error", m)]);
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
    serde_json::to_string(&out).map_err(|_| ApiError::internal())
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
pub fn validate_header_rules(lang: Lang, raw: &Value) -> Result<String, ApiError> {
    let Value::Array(arr) = raw else {
        return Err(field_type_error(
            "header_rules",
            "an array of {key, value, action}",
        ));
    };
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for item in arr {
        let Value::Object(o) = item else {
            return Err(field_type_error(
                "header_rules",
                "an array of {key, value, action}",
            ));
        };
        let key = opt_str(o, "key")?.unwrap_or_default();
        let key = key.trim();
        if key.is_empty() {
            continue;
        }
        if http::HeaderName::from_bytes(key.as_bytes()).is_err() {
            return Err(ApiError::validation(format!("Invalid header name: {key}")));
        }
        let canonical = canonical_header(key);
        if !seen.insert(canonical.to_ascii_lowercase()) {
            return Err(v(
                lang,
                "validation.duplicate_header",
                &[("key", &canonical)],
            ));
        }
        let action = match opt_str(o, "action")?.as_deref().map(str::trim) {
            Some("set") => HeaderAction::Set,
            Some("remove") => HeaderAction::Remove,
            other => {
                return Err(ApiError::validation(format!(
                    "Invalid header rule action {:?} for {canonical}: use \"set\" or \"remove\"",
                    other.unwrap_or("")
                )));
            }
        };
        let value = opt_str(o, "value")?.unwrap_or_default();
        if action == HeaderAction::Set && http::HeaderValue::from_str(&value).is_err() {
            return Err(ApiError::validation(format!(
                "Invalid header value for {canonical}"
            )));
        }
        out.push(HeaderRule {
            key: canonical,
            value,
            action,
        });
    }
    serde_json::to_string(&out).map_err(|_| ApiError::internal())
}

/// Model redirect rules: non-empty source and target names.
pub fn validate_redirect_rules(lang: Lang, raw: &Obj) -> Result<String, ApiError> {
    let mut out = BTreeMap::new();
    for (k, val) in raw {
        let Value::String(to) = val else {
            return Err(v(
                lang,
                "validation.invalid_model_redirect",
                &[("error", "target model must be a string")],
            ));
        };
        if k.trim().is_empty() || to.trim().is_empty() {
            return Err(v(
                lang,
                "validation.invalid_model_redirect",
                &[("error", "model name cannot be empty")],
            ));
        }
        out.insert(k.trim().to_owned(), Value::String(to.trim().to_owned()));
    }
    serde_json::to_string(&out).map_err(|_| ApiError::internal())
}

fn validate_config(lang: Lang, raw: &Value) -> Result<String, ApiError> {
    let parsed = parse_group_config(raw).map_err(|e| {
        ApiError::i18n_vars(
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
            lang,
            "error.invalid_config_format",
            &[("error", &e.to_string())],
        )
    })?;
    let obj: Map<String, Value> = parsed.into_iter().map(|(k, v)| (k, v.to_json())).collect();
    serde_json::to_string(&obj).map_err(|_| ApiError::internal())
}

fn validate_test_path(lang: Lang, p: &str) -> Result<String, ApiError> {
    let p = p.trim();
    if p.is_empty() {
        return Ok(String::new());
    }
    if !p.starts_with('/') || p.contains("://") {
        return Err(v(lang, "validation.invalid_test_path", &[]));
    }
    Ok(p.to_owned())
}

/// Builds a new group from a create request.
pub fn from_create(lang: Lang, o: &Obj, policy: UpstreamPolicy) -> Result<GroupRecord, ApiError> {
    let name = opt_str(o, "name")?.unwrap_or_default().trim().to_owned();
    if !is_valid_group_name(&name) {
        return Err(v(lang, "validation.invalid_group_name", &[]));
    }
    let channel = opt_str(o, "channel_type")?
        .unwrap_or_default()
        .trim()
        .to_owned();
    if ChannelType::parse(&channel).is_none() {
        let types = ChannelType::ALL
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(v(
            lang,
            "validation.invalid_channel_type",
            &[("types", &types)],
        ));
    }
    let group_type = GroupType::parse(opt_str(o, "group_type")?.unwrap_or_default().trim())
        .ok_or_else(|| v(lang, "validation.invalid_group_type", &[]))?;
    let mut g = GroupRecord {
        id: 0,
        name,
        display_name: opt_str(o, "display_name")?
            .unwrap_or_default()
            .trim()
            .to_owned(),
        proxy_keys: normalize_proxy_keys(&opt_str(o, "proxy_keys")?.unwrap_or_default()),
        description: opt_str(o, "description")?
            .unwrap_or_default()
            .trim()
            .to_owned(),
        group_type: group_type.as_str().to_owned(),
        upstreams: None,
        validation_endpoint: String::new(),
        channel_type: channel,
        sort: opt_i64(o, "sort")?.unwrap_or(0),
        test_model: String::new(),
        param_overrides: None,
        config: None,
        header_rules: Some("[]".into()),
        model_redirect_rules: Some("{}".into()),
        model_redirect_strict: opt_bool(o, "model_redirect_strict")?.unwrap_or(false),
        last_validated_at: None,
        created_at: None,
        updated_at: None,
    };
    if group_type == GroupType::Aggregate {
        g.upstreams = Some("[]".into());
        g.test_model = "-".into();
    } else {
        let test_model = opt_str(o, "test_model")?
            .unwrap_or_default()
            .trim()
            .to_owned();
        if test_model.is_empty() {
            return Err(v(lang, "validation.test_model_required", &[]));
        }
        g.test_model = test_model;
        g.upstreams = Some(validate_upstreams(
            lang,
            o.get("upstreams").filter(|v| !v.is_null()),
            policy,
        )?);
        g.validation_endpoint = validate_test_path(
            lang,
            &opt_str(o, "validation_endpoint")?.unwrap_or_default(),
        )?;
    }
    if let Some(c) = o.get("config").filter(|v| !v.is_null()) {
        g.config = Some(validate_config(lang, c)?);
    }
    if let Some(h) = o.get("header_rules").filter(|v| !v.is_null()) {
        g.header_rules = Some(validate_header_rules(lang, h)?);
    }
    if let Some(r) = opt_obj(o, "model_redirect_rules")? {
        if group_type == GroupType::Aggregate && !r.is_empty() {
            return Err(v(lang, "validation.aggregate_no_model_redirect", &[]));
        }
        g.model_redirect_rules = Some(validate_redirect_rules(lang, r)?);
    }
    if let Some(p) = opt_obj(o, "param_overrides")? {
        g.param_overrides = Some(Value::Object(p.clone()).to_string());
    }
    Ok(g)
}

/// Applies a partial update. `member_of` is how many aggregates use this group as a member.
pub fn apply_update(
    lang: Lang,
    g: &mut GroupRecord,
    o: &Obj,
    member_of: usize,
    policy: UpstreamPolicy,
) -> Result<(), ApiError> {
    let aggregate = g.group_type == "aggregate";
    if let Some(name) = opt_str(o, "name")? {
        let name = name.trim().to_owned();
        if !is_valid_group_name(&name) {
            return Err(v(lang, "validation.invalid_group_name", &[]));
        }
        g.name = name;
    }
    if let Some(s) = opt_str(o, "display_name")? {
        g.display_name = s.trim().to_owned();
    }
    if let Some(s) = opt_str(o, "description")? {
        g.description = s.trim().to_owned();
    }
    if let Some(s) = opt_str(o, "proxy_keys")? {
        g.proxy_keys = normalize_proxy_keys(&s);
    }
    if let Some(s) = opt_i64(o, "sort")? {
        g.sort = s;
    }
    if let Some(b) = opt_bool(o, "model_redirect_strict")? {
        g.model_redirect_strict = b;
    }
    let _ = opt_str(o, "group_type")?; // accepted, never changed (as GPT-Load)
    if !aggregate {
        if let Some(ch) = opt_str(o, "channel_type")? {
            let ch = ch.trim().to_owned();
            if ChannelType::parse(&ch).is_none() {
                let types = ChannelType::ALL
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(v(
                    lang,
                    "validation.invalid_channel_type",
                    &[("types", &types)],
                ));
            }
            if ch != g.channel_type && member_of > 0 {
                return Err(v(
                    lang,
                    "validation.sub_group_referenced_cannot_modify",
                    &[("count", &member_of.to_string())],
                ));
            }
            g.channel_type = ch;
        }
        if let Some(ep) = opt_str(o, "validation_endpoint")? {
            let ep = validate_test_path(lang, &ep)?;
            if ep != g.validation_endpoint && member_of > 0 {
                return Err(v(
                    lang,
                    "validation.sub_group_referenced_cannot_modify",
                    &[("count", &member_of.to_string())],
                ));
            }
            g.validation_endpoint = ep;
        }
        if let Some(tm) = opt_str(o, "test_model")?
            && !tm.is_empty()
        {
            let tm = tm.trim();
            if tm.is_empty() {
                return Err(v(lang, "validation.test_model_empty", &[]));
            }
            g.test_model = tm.to_owned();
        }
        if o.contains_key("upstreams") {
            g.upstreams = Some(validate_upstreams(
                lang,
                o.get("upstreams").filter(|v| !v.is_null()),
                policy,
            )?);
        }
    }
    if let Some(c) = o.get("config").filter(|v| !v.is_null()) {
        g.config = Some(validate_config(lang, c)?);
    }
    if let Some(h) = o.get("header_rules").filter(|v| !v.is_null()) {
        g.header_rules = Some(validate_header_rules(lang, h)?);
    }
    if let Some(r) = opt_obj(o, "model_redirect_rules")? {
        if aggregate && !r.is_empty() {
            return Err(v(lang, "validation.aggregate_no_model_redirect", &[]));
        }
        g.model_redirect_rules = Some(validate_redirect_rules(lang, r)?);
    }
    if let Some(p) = opt_obj(o, "param_overrides")? {
        g.param_overrides = Some(Value::Object(p.clone()).to_string());
    }
    Ok(())
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
pub fn response(g: &GroupRecord, app_url: &str) -> Value {
    serde_json::json!({
        "id": g.id,
        "name": g.name,
        "endpoint": endpoint(app_url, &g.name),
        "display_name": g.display_name,
        "description": g.description,
        "group_type": if g.group_type.is_empty() { "standard" } else { &g.group_type },
        "upstreams": json_or_null(&g.upstreams),
        "channel_type": g.channel_type,
        "sort": g.sort,
        "test_model": g.test_model,
        "validation_endpoint": g.validation_endpoint,
        "param_overrides": json_or_null(&g.param_overrides),
        "model_redirect_rules": json_or_null(&g.model_redirect_rules),
        "model_redirect_strict": g.model_redirect_strict,
        "config": json_or_null(&g.config),
        "header_rules": json_or_null(&g.header_rules),
        "proxy_keys": g.proxy_keys,
        "last_validated_at": go_time_opt(g.last_validated_at),
        "created_at": g.created_at.map(go_time).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
        "updated_at": g.updated_at.map(go_time).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
    })
}

/// The full `models.Group` JSON GPT-Load uses in `/groups/list` and sub-group listings.
pub fn full_model(g: &GroupRecord) -> Value {
    let mut v = response(g, "");
    if let Value::Object(o) = &mut v {
        o.insert("endpoint".into(), Value::String(String::new()));
        o.insert("api_keys".into(), Value::Null);
    }
    v
}

/// The lite item of `GET /api/groups/list`.
pub fn lite(g: &GroupRecord) -> Value {
    serde_json::json!({"id": g.id, "name": g.name, "display_name": g.display_name})
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

    fn obj(v: Value) -> Obj {
        match v {
            Value::Object(o) => o,
            _ => panic!("object"),
        }
    }

    #[test]
    fn create_validates_every_rule() {
        let ok = obj(
            json!({"name":"g1","channel_type":"openai","test_model":"m","upstreams":[{"url":"https://a.example/v1 ","weight":1},{"url":"http://b","weight":0}],
            "header_rules":[{"key":"x-foo","value":"1","action":"set"},{"key":" ","value":"","action":"set"}],"model_redirect_rules":{"a":"b"},"config":{"max_retries":1}}),
        );
        let g = from_create(Lang::EnUs, &ok, UpstreamPolicy::default()).unwrap();
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
            (json!({"name":5}), "name"),
        ] {
            let e =
                from_create(Lang::EnUs, &obj(bad.clone()), UpstreamPolicy::default()).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad}");
            assert!(e.message.contains(needle), "{bad}: {}", e.message);
        }
        let agg = from_create(Lang::EnUs, &obj(json!({"name":"agg","group_type":"aggregate","channel_type":"openai","upstreams":"ignored"})), UpstreamPolicy::default()).unwrap();
        assert_eq!(
            (agg.test_model.as_str(), agg.upstreams.as_deref()),
            ("-", Some("[]"))
        );
    }

    #[test]
    fn update_is_partial_and_protects_members() {
        let mut g = from_create(Lang::EnUs, &obj(json!({"name":"g1","channel_type":"openai","test_model":"m","upstreams":[{"url":"http://a","weight":1}]})), UpstreamPolicy::default()).unwrap();
        apply_update(
            Lang::EnUs,
            &mut g,
            &obj(json!({"display_name":" D ","test_model":""})),
            0,
            UpstreamPolicy::default(),
        )
        .unwrap();
        assert_eq!((g.display_name.as_str(), g.test_model.as_str()), ("D", "m"));
        assert!(
            apply_update(
                Lang::EnUs,
                &mut g,
                &obj(json!({"channel_type":"gemini"})),
                1,
                UpstreamPolicy::default()
            )
            .is_err()
        );
        assert!(
            apply_update(
                Lang::EnUs,
                &mut g,
                &obj(json!({"upstreams":null})),
                0,
                UpstreamPolicy::default()
            )
            .is_err()
        );
        apply_update(
            Lang::EnUs,
            &mut g,
            &obj(json!({"channel_type":"gemini"})),
            0,
            UpstreamPolicy::default(),
        )
        .unwrap();
        assert_eq!(g.channel_type, "gemini");
        assert!(
            apply_update(
                Lang::EnUs,
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
        let e = from_create(Lang::EnUs, &body, UpstreamPolicy::default()).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("link-local"), "{}", e.message);
        assert!(
            e.message.contains("ALLOW_LINK_LOCAL_UPSTREAMS"),
            "{}",
            e.message
        );
        // An operator who means it can allow them.
        let allow = UpstreamPolicy {
            allow_link_local: true,
        };
        assert!(from_create(Lang::EnUs, &body, allow).is_ok());
    }

    #[test]
    fn canonical_headers() {
        assert_eq!(canonical_header("x-api-KEY"), "X-Api-Key");
        assert_eq!(canonical_header("authorization"), "Authorization");
    }
}
