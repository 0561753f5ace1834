//! Where a client's credential comes from: `?key=`, then `Authorization: Bearer`, `x-api-key`,
//! `x-goog-api-key` (GPT-Load's order), and the query that goes upstream without it.

use http::header::{HeaderMap, HeaderName};

use crate::channel;

/// The client's proxy key, and the query string without any `key` parameter.
///
/// The key is taken from `key=` as GPT-Load reads it (`c.Query("key")`: that exact name); every
/// parameter whose decoded name is `key` in any case (`kEy=`, `%6Bey=`) is dropped from what goes
/// upstream too, so that none travels beside the vendor key the Gemini channel puts there.
pub fn extract_client_key(headers: &HeaderMap, query: Option<&str>) -> (String, Option<String>) {
    let mut key = String::new();
    let mut rest = query.map(str::to_owned);
    if let Some(q) = query
        && q.bytes().any(|b| matches!(b, b'k' | b'K' | b'%'))
    {
        if let Some(pair) = q.split('&').find(|p| p.starts_with("key=")) {
            key = gpt_load_common::urlenc::decode(&pair[4..], true);
        }
        if q.split('&').any(is_key_param) {
            let kept: Vec<&str> = q.split('&').filter(|p| !is_key_param(p)).collect();
            rest = if kept.is_empty() {
                None
            } else {
                Some(kept.join("&"))
            };
        }
    }
    if key.is_empty() {
        let h = |n: &HeaderName| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        key = h(&http::header::AUTHORIZATION)
            .and_then(|v| v.strip_prefix("Bearer ").map(str::trim))
            .filter(|v| !v.is_empty())
            .or_else(|| h(&channel::X_API_KEY))
            .or_else(|| h(&channel::X_GOOG_API_KEY))
            .unwrap_or_default()
            .to_owned();
    }
    (key, rest)
}

/// Whether a query pair's name decodes to `key` in any case.
fn is_key_param(pair: &str) -> bool {
    let name = pair.split('=').next().unwrap_or_default();
    if name.len() == 3 {
        return name.eq_ignore_ascii_case("key");
    }
    name.contains('%') && gpt_load_common::urlenc::decode(name, true).eq_ignore_ascii_case("key")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn client_key_sources_in_gpt_load_order() {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_static("Bearer from-bearer"),
        );
        h.insert("x-api-key", HeaderValue::from_static("from-x"));
        assert_eq!(
            extract_client_key(&h, Some("a=1&key=q%2Bk&b=2")),
            ("q+k".to_string(), Some("a=1&b=2".to_string()))
        );
        // An empty `key=` names no key, and goes nowhere either.
        assert_eq!(
            extract_client_key(&h, Some("key=")),
            ("from-bearer".to_string(), None)
        );
        h.remove("authorization");
        assert_eq!(extract_client_key(&h, None).0, "from-x");
        h.remove("x-api-key");
        h.insert("x-goog-api-key", HeaderValue::from_static("from-goog"));
        assert_eq!(extract_client_key(&h, Some("key=only")).1, None);
        assert_eq!(extract_client_key(&h, None).0, "from-goog");
        assert_eq!(extract_client_key(&HeaderMap::new(), None).0, "");
    }

    #[test]
    fn key_parameters_in_any_spelling_are_dropped() {
        let h = HeaderMap::new();
        let (key, rest) = extract_client_key(
            &h,
            Some("alt=sse&key=a%2Fb+c&kEy=x&%6Bey=y&KEY&%4b%45%59=z&keys=kept&monkey=kept"),
        );
        assert_eq!(key, "a/b c");
        assert_eq!(rest.as_deref(), Some("alt=sse&keys=kept&monkey=kept"));
        // Only `key=` itself is the client's key (as GPT-Load reads it).
        let (key, rest) = extract_client_key(&h, Some("KEY=x&a=1"));
        assert_eq!(key, "");
        assert_eq!(rest.as_deref(), Some("a=1"));
        assert_eq!(
            extract_client_key(&h, Some("a=1")).1.as_deref(),
            Some("a=1")
        );
    }
}
