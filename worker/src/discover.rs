//! Model discovery: the model list a group's upstream offers, fetched with one of its keys — what
//! the admin's "discover models" action fills a group's `models` from.

use std::time::Duration;

use bytes::Bytes;
use gpt_load_common::model::ChannelType;
use gpt_load_common::secret::redact;
use http::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use http_body_util::{BodyExt, Full};
use serde_json::Value;

use crate::failure::parse_upstream_error;
use crate::rules::{self, Vars};
use crate::state::GroupRuntime;

/// Most pages followed (Gemini and Anthropic page their lists).
const MAX_PAGES: usize = 20;

/// The ids of the models the group's upstream lists, sorted; the error (never containing the key)
/// says why there are none.
pub async fn discover_models(rt: &GroupRuntime, key: &str) -> Result<Vec<String>, String> {
    let g = &rt.group;
    let Some(upstream) = rt.upstreams.pick() else {
        return Err("no upstream with a weight above 0 is configured".into());
    };
    let channel = g.def.channel_type;
    let base = upstream.url();
    let base = base.trim_end_matches('/');
    let timeout = Duration::from_secs(g.config.key_validation_timeout_s);
    let mut models = Vec::new();
    let mut page: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let url = list_url(channel, base, key, page.as_deref());
        let mut headers = auth_headers(channel, key);
        headers.insert(http::header::HOST, upstream.host.clone());
        rules::apply(
            &rt.rules,
            &mut headers,
            &Vars {
                client_ip: "127.0.0.1",
                group_name: g.name(),
                api_key: key,
            },
        );
        let uri: http::Uri = url
            .parse()
            .map_err(|_| "the upstream URL does not make a valid model-list URL".to_owned())?;
        let mut req = http::Request::new(Full::new(Bytes::new()));
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        let body = tokio::time::timeout(timeout, fetch(rt, req, key))
            .await
            .map_err(|_| format!("the model list timed out after {}s", timeout.as_secs()))?
            .map_err(|e| redact(&e, key))?;
        let v: Value = serde_json::from_slice(&body)
            .map_err(|_| "the upstream's model list is not JSON".to_owned())?;
        let (ids, next) = parse_page(channel, &v);
        models.extend(ids);
        match next {
            Some(n) if !n.is_empty() => page = Some(n),
            _ => break,
        }
    }
    models.sort();
    models.dedup();
    Ok(models)
}

async fn fetch(
    rt: &GroupRuntime,
    req: http::Request<Full<Bytes>>,
    key: &str,
) -> Result<Bytes, String> {
    let resp = rt
        .client
        .request(None, req)
        .await
        .map_err(|e| format!("the model list request failed: {e}"))?;
    let status = resp.status();
    let (parts, body) = resp.into_parts();
    let raw = http_body_util::Limited::new(body, 16 * 1024 * 1024)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|_| "the model list could not be read".to_owned())?;
    let body = crate::decompress::decompress(&parts.headers, raw);
    if !status.is_success() {
        return Err(format!(
            "[status {}] {}",
            status.as_u16(),
            parse_upstream_error(&body, key)
        ));
    }
    Ok(body)
}

fn list_url(channel: ChannelType, base: &str, key: &str, page: Option<&str>) -> String {
    let enc = gpt_load_common::urlenc::encode_component;
    match channel {
        ChannelType::Gemini => {
            let mut url = format!("{base}/v1beta/models?pageSize=1000&key={}", enc(key));
            if let Some(p) = page {
                url.push_str("&pageToken=");
                url.push_str(&enc(p));
            }
            url
        }
        ChannelType::Anthropic => match page {
            Some(after) => format!("{base}/v1/models?limit=1000&after_id={}", enc(after)),
            None => format!("{base}/v1/models?limit=1000"),
        },
        ChannelType::OpenAi | ChannelType::OpenAiResponse => format!("{base}/v1/models"),
    }
}

fn auth_headers(channel: ChannelType, key: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    match channel {
        ChannelType::OpenAi | ChannelType::OpenAiResponse => {
            if let Ok(v) = HeaderValue::from_str(&format!("Bearer {key}")) {
                h.insert(AUTHORIZATION, v);
            }
        }
        ChannelType::Anthropic => {
            if let Ok(v) = HeaderValue::from_str(key) {
                h.insert(crate::channel::X_API_KEY.clone(), v);
            }
            h.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        }
        ChannelType::Gemini => {}
    }
    h
}

/// The model ids of one page and where the next page starts, if it does.
fn parse_page(channel: ChannelType, v: &Value) -> (Vec<String>, Option<String>) {
    let ids = |list: &Value, field: &str, strip: &str| -> Vec<String> {
        list.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m[field].as_str())
                    .map(|s| s.strip_prefix(strip).unwrap_or(s).to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    match channel {
        ChannelType::Gemini => (
            ids(&v["models"], "name", "models/"),
            v["nextPageToken"].as_str().map(str::to_owned),
        ),
        ChannelType::Anthropic => (
            ids(&v["data"], "id", ""),
            v["has_more"]
                .as_bool()
                .unwrap_or(false)
                .then(|| v["last_id"].as_str().map(str::to_owned))
                .flatten(),
        ),
        ChannelType::OpenAi | ChannelType::OpenAiResponse => (ids(&v["data"], "id", ""), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pages_of_every_vendor() {
        let (ids, next) = parse_page(
            ChannelType::OpenAi,
            &json!({"object": "list", "data": [{"id": "gpt-4o"}, {"id": "o3"}]}),
        );
        assert_eq!((ids, next), (vec!["gpt-4o".into(), "o3".into()], None));
        let (ids, next) = parse_page(
            ChannelType::Anthropic,
            &json!({"data": [{"id": "claude-a"}], "has_more": true, "last_id": "claude-a"}),
        );
        assert_eq!(
            (ids, next.as_deref()),
            (vec!["claude-a".into()], Some("claude-a"))
        );
        let (ids, next) = parse_page(
            ChannelType::Gemini,
            &json!({"models": [{"name": "models/gemini-2.5-flash"}], "nextPageToken": "p2"}),
        );
        assert_eq!(
            (ids, next.as_deref()),
            (vec!["gemini-2.5-flash".into()], Some("p2"))
        );
        assert!(
            parse_page(ChannelType::OpenAi, &json!({"error": {}}))
                .0
                .is_empty()
        );
        assert!(
            list_url(ChannelType::Gemini, "https://g", "k&1", Some("t"))
                .ends_with("key=k%261&pageToken=t")
        );
    }
}
