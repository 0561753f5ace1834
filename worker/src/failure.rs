//! Classifying a failed upstream attempt before acting on it.
//!
//! The retry loop reads only a [`Verdict`]: whether to try another key, whether the failure counts
//! against the key (toward the blacklist), and whether the key should cool down instead.
//!
//! Semantics (documented in the README):
//! - A status in `failover_status_codes` is a failure: retried with another key and counted against
//!   the key, except that a **429** puts the key in a cool-down (its `Retry-After`, else
//!   [`DEFAULT_COOL_DOWN`]) and is not counted, and GPT-Load's "uncounted" messages
//!   (`resource has been exhausted`, `please reduce the length of the messages`) are not counted.
//! - A transport failure (connect refused, reset, timeout) is retried but not counted: it says the
//!   upstream is unwell, not that the key is bad.
//! - Any other status passes through to the client as the upstream sent it.

use std::time::Duration;

use http::HeaderMap;

/// Cool-down for a 429 without a usable `Retry-After`.
pub const DEFAULT_COOL_DOWN: Duration = Duration::from_secs(30);
/// Longest cool-down we honour from `Retry-After`.
pub const MAX_COOL_DOWN: Duration = Duration::from_secs(3600);

const UNCOUNTED: &[&str] = &[
    "resource has been exhausted",
    "please reduce the length of the messages",
];

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub retry_with_next_key: bool,
    pub counts_against_key: bool,
    pub cool_down: Option<Duration>,
}

/// Verdict for an upstream status matched by the failover matcher.
pub fn classify_status(status: u16, headers: &HeaderMap, parsed_message: &str) -> Verdict {
    if status == 429 {
        return Verdict {
            retry_with_next_key: true,
            counts_against_key: false,
            cool_down: Some(retry_after(headers).unwrap_or(DEFAULT_COOL_DOWN)),
        };
    }
    let lower = parsed_message.to_ascii_lowercase();
    let uncounted = UNCOUNTED.iter().any(|p| lower.contains(p));
    Verdict {
        retry_with_next_key: true,
        counts_against_key: !uncounted,
        cool_down: None,
    }
}

/// Verdict for a transport failure.
pub fn classify_transport() -> Verdict {
    Verdict {
        retry_with_next_key: true,
        counts_against_key: false,
        cool_down: None,
    }
}

/// `Retry-After` as seconds or an HTTP date, capped at [`MAX_COOL_DOWN`].
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let d = if let Ok(secs) = v.parse::<f64>() {
        if !secs.is_finite() || secs < 0.0 {
            return None;
        }
        Duration::from_secs_f64(secs)
    } else {
        let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
        let delta = when.signed_duration_since(chrono::Utc::now());
        delta.to_std().ok()?
    };
    Some(d.clamp(Duration::from_secs(1), MAX_COOL_DOWN))
}

const MAX_ERROR_LEN: usize = 2048;

/// GPT-Load's upstream error parsing (spec §4.3): `error.message`, `error_msg`, `error` (string),
/// top-level `message`, else the raw body — trimmed and truncated to 2048 bytes on a char boundary.
pub fn parse_upstream_error(body: &[u8], key: &str) -> String {
    let text = if let Ok(serde_json::Value::Object(o)) =
        serde_json::from_slice::<serde_json::Value>(body)
    {
        let get = |k: &str| {
            o.iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(k))
                .map(|(_, v)| v)
        };
        let from_error_obj = get("error").and_then(|e| e.as_object()).and_then(|e| {
            e.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("message"))
                .and_then(|(_, v)| v.as_str())
        });
        [
            from_error_obj,
            get("error_msg").and_then(|v| v.as_str()),
            get("error").and_then(|v| v.as_str()),
            get("message").and_then(|v| v.as_str()),
        ]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|s| !s.is_empty())
        .map(str::to_owned)
    } else {
        None
    };
    let text = text.unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    // Redacted before it is cut: a cut copy of the key is no longer found.
    let text = gpt_load_common::secret::redact(&text, key);
    gpt_load_common::log_record::truncate_utf8(&text, MAX_ERROR_LEN).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn parses_vendor_error_shapes() {
        assert_eq!(
            parse_upstream_error(br#"{"error":{"message":" bad key ","type":"x"}}"#, ""),
            "bad key"
        );
        assert_eq!(
            parse_upstream_error(br#"{"error_msg":"quota"}"#, ""),
            "quota"
        );
        assert_eq!(parse_upstream_error(br#"{"error":"plain"}"#, ""), "plain");
        assert_eq!(parse_upstream_error(br#"{"message":"root"}"#, ""), "root");
        assert_eq!(
            parse_upstream_error(br#"{"Error":{"Message":"case"}}"#, ""),
            "case"
        );
        assert_eq!(
            parse_upstream_error(br#"[{"error":{"message":"arr"}}]"#, ""),
            r#"[{"error":{"message":"arr"}}]"#
        );
        assert_eq!(parse_upstream_error(b"  Bad Gateway  ", ""), "Bad Gateway");
        let long = "é".repeat(2000);
        let out = parse_upstream_error(long.as_bytes(), "");
        assert!(out.len() <= 2048 && out.chars().all(|c| c == 'é'));
    }

    #[test]
    fn a_key_past_the_length_limit_is_redacted_before_the_cut() {
        let key = "sk-proj-0123456789abcdefSECRET";
        // The key straddles the 2048-byte cut: cut first, its head would stay readable.
        let body = format!("{}{key} rejected", "x".repeat(2030));
        let out = parse_upstream_error(body.as_bytes(), key);
        assert!(out.len() <= 2048);
        assert!(!out.contains("sk-proj-0123456789a"), "{out}");
        assert!(out.contains("sk-p****CRET"), "{out}");
    }

    #[test]
    fn rate_limits_cool_down_instead_of_counting() {
        let mut h = HeaderMap::new();
        h.insert(http::header::RETRY_AFTER, HeaderValue::from_static("7"));
        let v = classify_status(429, &h, "slow down");
        assert_eq!(
            v,
            Verdict {
                retry_with_next_key: true,
                counts_against_key: false,
                cool_down: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            classify_status(429, &HeaderMap::new(), "").cool_down,
            Some(DEFAULT_COOL_DOWN)
        );
        h.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from_static("999999"),
        );
        assert_eq!(retry_after(&h), Some(MAX_COOL_DOWN));
        h.insert(http::header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn uncounted_messages_and_transport_errors_do_not_count() {
        assert!(classify_status(401, &HeaderMap::new(), "Invalid key").counts_against_key);
        assert!(
            !classify_status(
                400,
                &HeaderMap::new(),
                "Resource has been exhausted (e.g. check quota)."
            )
            .counts_against_key
        );
        assert!(
            !classify_status(
                400,
                &HeaderMap::new(),
                "Please reduce the length of the messages"
            )
            .counts_against_key
        );
        assert!(!classify_transport().counts_against_key);
        assert!(classify_transport().retry_with_next_key);
    }
}
