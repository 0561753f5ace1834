//! Channel adapters (spec §5): how each API format carries the upstream key, marks a streaming
//! request, names its model, redirects models, lists models and validates a key.

use std::borrow::Cow;
use std::collections::BTreeMap;

use bytes::Bytes;
use gpt_load_common::model::ChannelType;
use http::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value, json};

pub static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
pub static X_GOOG_API_KEY: HeaderName = HeaderName::from_static("x-goog-api-key");
static ANTHROPIC_VERSION: HeaderName = HeaderName::from_static("anthropic-version");

/// What the proxy needs from a request body: its `model` and `stream` fields.
#[derive(Debug, Default, Deserialize)]
struct BodyFacts<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    stream: Option<Value>,
}

/// Parsed once per request.
#[derive(Debug, Default, Clone)]
pub struct RequestFacts {
    pub model: String,
    pub stream: bool,
}

fn body_facts(body: &[u8]) -> (Option<String>, bool) {
    let trimmed = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| &body[i..])
        .unwrap_or(&[]);
    if trimmed.first() != Some(&b'{') {
        return (None, false);
    }
    match serde_json::from_slice::<BodyFacts>(body) {
        Ok(f) => (
            f.model.map(Cow::into_owned),
            matches!(f.stream, Some(Value::Bool(true))),
        ),
        Err(_) => (None, false),
    }
}

fn is_gemini_openai_path(path: &str) -> bool {
    path.contains("v1beta/openai")
}

/// The model segment of a Gemini native path (`…/models/{model}:{method}`).
pub fn gemini_path_model(path: &str) -> Option<&str> {
    let mut parts = path.split('/');
    while let Some(p) = parts.next() {
        if p == "models" {
            let next = parts.next()?;
            return Some(next.split(':').next().unwrap_or(next));
        }
    }
    None
}

fn query_has_stream_true(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|p| p == "stream=true"))
}

/// Model and streaming, per channel (stream detection uses the client's original body).
pub fn request_facts(
    channel: ChannelType,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> RequestFacts {
    let (body_model, body_stream) = body_facts(body);
    let accept_sse = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    let mut stream = accept_sse || query_has_stream_true(query) || body_stream;
    let mut model = body_model.unwrap_or_default();
    if channel == ChannelType::Gemini {
        if path.ends_with(":streamGenerateContent") {
            stream = true;
        }
        if let Some(m) = gemini_path_model(path) {
            model = m.to_owned();
        }
    }
    RequestFacts { model, stream }
}

/// The upstream request being assembled for one attempt.
#[derive(Debug, Clone)]
pub struct UpstreamTarget {
    /// `scheme://authority` of the upstream.
    pub origin: String,
    /// Full path (upstream base path + client path).
    pub path: String,
    /// Raw query without the leading `?`.
    pub query: Option<String>,
}

impl UpstreamTarget {
    pub fn url(&self) -> String {
        let mut s = String::with_capacity(
            self.origin.len()
                + self.path.len()
                + 1
                + self.query.as_ref().map_or(0, |q| q.len() + 1),
        );
        s.push_str(&self.origin);
        s.push_str(&self.path);
        if let Some(q) = &self.query
            && !q.is_empty()
        {
            s.push('?');
            s.push_str(q);
        }
        s
    }

    /// Sets (replacing) a query parameter.
    pub fn set_query_param(&mut self, name: &str, value: &str) {
        let encoded = gpt_load_common::urlenc::encode_component(value);
        let mut parts: Vec<String> = self
            .query
            .as_deref()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty() && p.split('=').next() != Some(name))
            .map(str::to_owned)
            .collect();
        parts.push(format!("{name}={encoded}"));
        self.query = Some(parts.join("&"));
    }
}

/// Puts the upstream key where the channel expects it.
/// A header value carrying a key: taken over without a copy, and marked sensitive (kept out of
/// `Debug` output and of HTTP/2 header compression).
fn key_value(b: bytes::Bytes) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_maybe_shared(b).ok()?;
    v.set_sensitive(true);
    Some(v)
}

pub fn inject_key(
    channel: ChannelType,
    target: &mut UpstreamTarget,
    headers: &mut HeaderMap,
    key: &str,
) {
    let bearer = || {
        let mut v = String::with_capacity(7 + key.len());
        v.push_str("Bearer ");
        v.push_str(key);
        key_value(bytes::Bytes::from(v))
    };
    match channel {
        ChannelType::OpenAi | ChannelType::OpenAiResponse => {
            if let Some(v) = bearer() {
                headers.insert(AUTHORIZATION, v);
            }
        }
        ChannelType::Anthropic => {
            if let Some(v) = key_value(bytes::Bytes::copy_from_slice(key.as_bytes())) {
                headers.insert(X_API_KEY.clone(), v);
            }
            headers.insert(
                ANTHROPIC_VERSION.clone(),
                HeaderValue::from_static("2023-06-01"),
            );
        }
        ChannelType::Gemini => {
            if is_gemini_openai_path(&target.path) {
                if let Some(v) = bearer() {
                    headers.insert(AUTHORIZATION, v);
                }
            } else {
                target.set_query_param("key", key);
            }
        }
    }
}

/// A strict model redirect refused the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("model '{0}' is not configured in redirect rules")]
pub struct RedirectRefused(pub String);

/// Applies model redirect rules; returns the body to send (unchanged when nothing applies).
pub fn apply_model_redirect(
    channel: ChannelType,
    rules: &BTreeMap<String, String>,
    strict: bool,
    target: &mut UpstreamTarget,
    body: &Bytes,
) -> Result<Bytes, RedirectRefused> {
    if rules.is_empty() {
        return Ok(body.clone());
    }
    if channel == ChannelType::Gemini && !is_gemini_openai_path(&target.path) {
        let Some(idx) = target.path.find("/models/") else {
            return Ok(body.clone());
        };
        let start = idx + "/models/".len();
        let end = target.path[start..]
            .find('/')
            .map_or(target.path.len(), |e| start + e);
        let segment = &target.path[start..end];
        let (model, suffix) = match segment.find(':') {
            Some(c) => (&segment[..c], &segment[c..]),
            None => (segment, ""),
        };
        return match rules.get(model) {
            Some(to) => {
                let new_path = format!(
                    "{}{}{}{}",
                    &target.path[..start],
                    to,
                    suffix,
                    &target.path[end..]
                );
                target.path = new_path;
                Ok(body.clone())
            }
            None if strict => Err(RedirectRefused(model.to_owned())),
            None => Ok(body.clone()),
        };
    }
    let Ok(Value::Object(mut obj)) = serde_json::from_slice::<Value>(body) else {
        return Ok(body.clone());
    };
    let Some(Value::String(model)) = obj.get("model") else {
        return Ok(body.clone());
    };
    match rules.get(model) {
        Some(to) => {
            obj.insert("model".into(), Value::String(to.clone()));
            Ok(serde_json::to_vec(&Value::Object(obj))
                .map(Bytes::from)
                .unwrap_or_else(|_| body.clone()))
        }
        None if strict => Err(RedirectRefused(model.clone())),
        None => Ok(body.clone()),
    }
}

/// Whether a request is a model listing the proxy rewrites (spec §4.2).
pub fn is_model_list(method: &http::Method, client_path: &str) -> bool {
    method == http::Method::GET
        && (client_path.ends_with("/v1/models")
            || client_path.ends_with("/v1beta/models")
            || client_path.contains("/v1beta/openai/v1/models"))
}

/// Rewrites a model list per the redirect rules: strict lists only the configured source models;
/// otherwise they are merged in (Gemini native: first page only).
pub fn transform_model_list(
    rules: &BTreeMap<String, String>,
    strict: bool,
    client_query: Option<&str>,
    body: &[u8],
) -> Option<Value> {
    let Ok(Value::Object(mut resp)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    if let Some(Value::Array(upstream)) = resp.get("models").cloned() {
        let configured: Vec<Value> = rules
            .keys()
            .map(|src| {
                let name = if src.starts_with("models/") { src.clone() } else { format!("models/{src}") };
                json!({"name": name, "displayName": src, "supportedGenerationMethods": ["generateContent"]})
            })
            .collect();
        if strict {
            resp.insert("models".into(), Value::Array(configured));
            resp.remove("nextPageToken");
        } else {
            let first_page = !client_query.is_some_and(|q| {
                q.split('&')
                    .any(|p| p.starts_with("pageToken=") && p.len() > 10)
            });
            if first_page {
                let mut names = std::collections::HashSet::new();
                for m in &upstream {
                    if let Some(n) = m.get("name").and_then(Value::as_str) {
                        names.insert(n.to_owned());
                        names.insert(n.trim_start_matches("models/").to_owned());
                    }
                }
                let mut merged = upstream;
                for c in configured {
                    let n = c
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    if !names.contains(&n) && !names.contains(n.trim_start_matches("models/")) {
                        merged.push(c);
                    }
                }
                resp.insert("models".into(), Value::Array(merged));
            }
        }
        return Some(Value::Object(resp));
    }
    if let Some(Value::Array(upstream)) = resp.get("data").cloned() {
        let configured: Vec<Value> = rules
            .keys()
            .map(|src| json!({"id": src, "object": "model", "created": 0, "owned_by": "system"}))
            .collect();
        let data = if strict {
            configured
        } else {
            let ids: std::collections::HashSet<String> = upstream
                .iter()
                .filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_owned))
                .collect();
            let mut merged = upstream;
            merged.extend(configured.into_iter().filter(|c| {
                !c.get("id")
                    .and_then(Value::as_str)
                    .is_some_and(|id| ids.contains(id))
            }));
            merged
        };
        resp.insert("data".into(), Value::Array(data));
    }
    Some(Value::Object(resp))
}

/// Applies `param_overrides` to a JSON-object body (top-level keys replaced); other bodies pass.
pub fn apply_param_overrides(overrides: &Map<String, Value>, body: Bytes) -> Bytes {
    if overrides.is_empty() || body.is_empty() {
        return body;
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(mut obj)) => {
            for (k, v) in overrides {
                obj.insert(k.clone(), v.clone());
            }
            serde_json::to_vec(&Value::Object(obj))
                .map(Bytes::from)
                .unwrap_or(body)
        }
        _ => body,
    }
}

/// A key-validation request (spec §5).
#[derive(Debug, Clone)]
pub struct ValidationRequest {
    pub url: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Builds the validation request of a channel for `key` against upstream `base` (no trailing `/`).
pub fn validation_request(
    channel: ChannelType,
    base: &str,
    endpoint: &str,
    test_model: &str,
    key: &str,
) -> ValidationRequest {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let base = base.trim_end_matches('/');
    let (url, body) = match channel {
        ChannelType::OpenAi => (
            format!("{base}{endpoint}"),
            json!({"model": test_model, "messages": [{"role": "user", "content": "hi"}]}),
        ),
        ChannelType::OpenAiResponse => (
            format!("{base}{endpoint}"),
            json!({"model": test_model, "input": "hi"}),
        ),
        ChannelType::Anthropic => (
            format!("{base}{endpoint}"),
            json!({"model": test_model, "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}),
        ),
        ChannelType::Gemini => (
            format!(
                "{base}/v1beta/models/{}:generateContent?key={}",
                gpt_load_common::urlenc::encode_component(test_model),
                gpt_load_common::urlenc::encode_component(key)
            ),
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
        ),
    };
    match channel {
        ChannelType::OpenAi | ChannelType::OpenAiResponse => {
            if let Ok(v) = HeaderValue::from_str(&format!("Bearer {key}")) {
                headers.insert(AUTHORIZATION, v);
            }
        }
        ChannelType::Anthropic => {
            if let Some(v) = key_value(bytes::Bytes::copy_from_slice(key.as_bytes())) {
                headers.insert(X_API_KEY.clone(), v);
            }
            headers.insert(
                ANTHROPIC_VERSION.clone(),
                HeaderValue::from_static("2023-06-01"),
            );
        }
        ChannelType::Gemini => {}
    }
    ValidationRequest {
        url,
        headers,
        body: Bytes::from(body.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(path: &str, query: Option<&str>) -> UpstreamTarget {
        UpstreamTarget {
            origin: "https://up.example".into(),
            path: path.into(),
            query: query.map(str::to_owned),
        }
    }

    #[test]
    fn stream_and_model_detection_per_channel() {
        let h = HeaderMap::new();
        let f = request_facts(
            ChannelType::OpenAi,
            "/v1/chat/completions",
            None,
            &h,
            br#"{"model":"gpt-4o","stream":true}"#,
        );
        assert_eq!((f.model.as_str(), f.stream), ("gpt-4o", true));
        let f = request_facts(
            ChannelType::OpenAi,
            "/v1/chat/completions",
            Some("stream=true"),
            &h,
            b"{}",
        );
        assert!(f.stream);
        let f = request_facts(
            ChannelType::OpenAi,
            "/v1/x",
            None,
            &h,
            br#"{"stream":"true"}"#,
        );
        assert!(!f.stream);
        let mut sse = HeaderMap::new();
        sse.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        assert!(request_facts(ChannelType::Anthropic, "/v1/messages", None, &sse, b"").stream);
        let f = request_facts(
            ChannelType::Gemini,
            "/v1beta/models/gemini-2.0-flash:streamGenerateContent",
            Some("alt=sse"),
            &h,
            b"{}",
        );
        assert_eq!((f.model.as_str(), f.stream), ("gemini-2.0-flash", true));
        let f = request_facts(
            ChannelType::Gemini,
            "/v1beta/openai/chat/completions",
            None,
            &h,
            br#"{"model":"gemini-pro"}"#,
        );
        assert_eq!(f.model, "gemini-pro");
        assert_eq!(
            request_facts(ChannelType::OpenAi, "/", None, &h, b"not json").model,
            ""
        );
    }

    #[test]
    fn key_injection_per_channel() {
        let mut h = HeaderMap::new();
        let mut t = target("/v1/chat/completions", None);
        inject_key(ChannelType::OpenAi, &mut t, &mut h, "sk-1");
        assert_eq!(h[AUTHORIZATION], "Bearer sk-1");
        // Marked sensitive: a debug print of the headers does not show the key.
        assert!(h[AUTHORIZATION].is_sensitive());
        assert!(!format!("{h:?}").contains("sk-1"), "{h:?}");

        let mut h = HeaderMap::new();
        h.insert(
            ANTHROPIC_VERSION.clone(),
            HeaderValue::from_static("2099-01-01"),
        );
        inject_key(ChannelType::Anthropic, &mut t, &mut h, "ak");
        assert_eq!(h[&X_API_KEY], "ak");
        assert!(h[&X_API_KEY].is_sensitive());
        assert_eq!(h[&ANTHROPIC_VERSION], "2023-06-01");

        let mut h = HeaderMap::new();
        let mut g = target(
            "/v1beta/models/m:generateContent",
            Some("alt=sse&key=client"),
        );
        inject_key(ChannelType::Gemini, &mut g, &mut h, "AIza/+x");
        assert_eq!(
            g.url(),
            "https://up.example/v1beta/models/m:generateContent?alt=sse&key=AIza%2F%2Bx"
        );
        assert!(h.is_empty());
        let mut g = target("/v1beta/openai/chat/completions", None);
        inject_key(ChannelType::Gemini, &mut g, &mut h, "AIza");
        assert_eq!(h[AUTHORIZATION], "Bearer AIza");
        assert_eq!(g.query, None);
    }

    #[test]
    fn model_redirects_json_and_gemini_native() {
        let rules = BTreeMap::from([
            ("gpt-4".to_string(), "gpt-4o".to_string()),
            ("g1".to_string(), "gemini-2.0".to_string()),
        ]);
        let mut t = target("/v1/chat/completions", None);
        let out = apply_model_redirect(
            ChannelType::OpenAi,
            &rules,
            false,
            &mut t,
            &Bytes::from_static(br#"{"model":"gpt-4","x":1}"#),
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["model"], "gpt-4o");
        assert_eq!(v["x"], 1);
        let body = Bytes::from_static(br#"{"model":"other"}"#);
        assert_eq!(
            apply_model_redirect(ChannelType::OpenAi, &rules, false, &mut t, &body).unwrap(),
            body
        );
        assert_eq!(
            apply_model_redirect(ChannelType::OpenAi, &rules, true, &mut t, &body)
                .unwrap_err()
                .to_string(),
            "model 'other' is not configured in redirect rules"
        );
        let mut g = target("/v1beta/models/g1:streamGenerateContent", Some("alt=sse"));
        apply_model_redirect(ChannelType::Gemini, &rules, true, &mut g, &Bytes::new()).unwrap();
        assert_eq!(g.path, "/v1beta/models/gemini-2.0:streamGenerateContent");
        let mut g = target("/v1beta/models/zz:generateContent", None);
        assert!(
            apply_model_redirect(ChannelType::Gemini, &rules, true, &mut g, &Bytes::new()).is_err()
        );
    }

    #[test]
    fn model_lists_merge_or_replace() {
        let rules = BTreeMap::from([
            ("alias".to_string(), "real".to_string()),
            ("real".to_string(), "real".to_string()),
        ]);
        let body = br#"{"object":"list","data":[{"id":"real","object":"model"}]}"#;
        let v = transform_model_list(&rules, false, None, body).unwrap();
        let ids: Vec<_> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids, ["real", "alias"]);
        let v = transform_model_list(&rules, true, None, body).unwrap();
        assert_eq!(v["data"].as_array().unwrap().len(), 2);
        assert_eq!(v["object"], "list");
        let gem = br#"{"models":[{"name":"models/real"}],"nextPageToken":"t"}"#;
        let v = transform_model_list(&rules, true, None, gem).unwrap();
        assert!(v.get("nextPageToken").is_none());
        assert_eq!(v["models"][0]["name"], "models/alias");
        let v = transform_model_list(&rules, false, Some("pageToken=abcdefgh"), gem).unwrap();
        assert_eq!(v["models"].as_array().unwrap().len(), 1);
        assert!(transform_model_list(&rules, false, None, b"[]").is_none());
    }

    #[test]
    fn param_overrides_replace_top_level_keys() {
        let o: Map<String, Value> =
            serde_json::from_str(r#"{"temperature":0.1,"max_tokens":5}"#).unwrap();
        let out =
            apply_param_overrides(&o, Bytes::from_static(br#"{"model":"m","temperature":1}"#));
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v, json!({"model":"m","temperature":0.1,"max_tokens":5}));
        assert_eq!(
            apply_param_overrides(&o, Bytes::from_static(b"null")),
            Bytes::from_static(b"null")
        );
        assert_eq!(
            apply_param_overrides(&o, Bytes::from_static(b"[1]")),
            Bytes::from_static(b"[1]")
        );
    }

    #[test]
    fn validation_requests_per_channel() {
        let r = validation_request(
            ChannelType::Gemini,
            "https://g.example/",
            "",
            "gemini-2.0-flash-lite",
            "k",
        );
        assert_eq!(
            r.url,
            "https://g.example/v1beta/models/gemini-2.0-flash-lite:generateContent?key=k"
        );
        let r = validation_request(
            ChannelType::Anthropic,
            "https://a.example",
            "/v1/messages",
            "claude",
            "k",
        );
        assert_eq!(r.url, "https://a.example/v1/messages");
        assert_eq!(r.headers[&X_API_KEY], "k");
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["max_tokens"], 100);
    }
}
