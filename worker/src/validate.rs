//! Key validation (spec §5): one small request per key against the group's upstream; valid ⇔ 2xx.

use std::time::Duration;

use bytes::Bytes;
use gpt_load_common::secret::redact;
use http_body_util::{BodyExt, Full};

use crate::channel;
use crate::failure::parse_upstream_error;
use crate::rules::{self, Vars};
use crate::state::GroupRuntime;

/// Validates `key` for the group; the error text (never containing the key) says why it failed.
pub async fn validate_key(rt: &GroupRuntime, key: &str) -> Result<(), String> {
    let g = &rt.group;
    let Some(upstream) = rt.upstreams.pick() else {
        return Err("no upstream with a weight above 0 is configured".into());
    };
    let vr = channel::validation_request(
        g.def.channel_type,
        &upstream.url(),
        g.validation_endpoint(),
        &g.def.test_model,
        key,
    );
    let mut headers = vr.headers;
    // The same Host as proxied requests carry (header rules may replace it).
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
    let uri: http::Uri = vr
        .url
        .parse()
        .map_err(|e| format!("invalid validation URL: {e}"))?;
    let mut req = http::Request::new(Full::new(vr.body));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    let timeout = Duration::from_secs(g.config.key_validation_timeout_s);
    let result = tokio::time::timeout(timeout, async {
        let resp = rt.client.request(None, req).await.map_err(|e| {
            let mut msg = format!("failed to send validation request: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                src = s.source();
            }
            msg
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let (parts, body) = resp.into_parts();
        let raw = http_body_util::Limited::new(body, 1024 * 1024)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_else(|_| Bytes::new());
        let body = crate::decompress::decompress(&parts.headers, raw);
        Err(format!(
            "[status {}] {}",
            status.as_u16(),
            parse_upstream_error(&body, key)
        ))
    })
    .await;
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(redact(&e, key)),
        Err(_) => Err(format!("validation timed out after {}s", timeout.as_secs())),
    }
}
