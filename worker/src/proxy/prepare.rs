//! Step 5: the upstream request of one attempt, in one call — the upstream's URL joined with the
//! client's path, the client's headers less the hop-by-hop and credential ones, the upstream's
//! own `Host`, parameter overrides and model redirects applied to the body, the key where the
//! channel expects it, the group's header rules — and the address the log shows for it.

use bytes::Bytes;
use gpt_load_common::keystore::KeyMaterial;
use gpt_load_common::log_record::truncate_utf8;
use gpt_load_common::secret::{redact, strip_userinfo};
use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::hop_by_hop::forward_headers;
use super::request::RequestCtx;
use crate::channel;
use crate::error::ProxyError;
use crate::rules::{self, Vars};
use crate::state::GroupRuntime;
use crate::upstream_base::UpstreamBase;

pub(super) static X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

/// An upstream request ready to send.
pub(super) struct Prepared {
    pub url: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The URL for the log: without credentials, the key masked (then cut to 500 bytes, after
    /// the masking, so that no part of a key is left).
    pub upstream_addr: String,
}

/// A request the group's rules refuse, with the address it would have gone to (for its log).
pub(super) struct NotPrepared {
    pub error: ProxyError,
    pub upstream_addr: String,
}

/// Builds the request of one attempt to `upstream` with `key`.
pub(super) fn prepare(
    ctx: &RequestCtx,
    member: &GroupRuntime,
    upstream: &UpstreamBase,
    key: &KeyMaterial,
) -> Result<Prepared, NotPrepared> {
    let mut target = upstream.target(&ctx.rest, ctx.query.as_deref());
    let mut headers = forward_headers(&ctx.headers);
    // The upstream's own Host (the client's is not forwarded); header rules may replace it.
    headers.insert(http::header::HOST, upstream.host.clone());
    let def = &member.group.def;
    let body = if def.param_overrides.is_empty() {
        ctx.body.clone()
    } else {
        channel::apply_param_overrides(&def.param_overrides, ctx.body.clone())
    };
    let body = channel::apply_model_redirect(
        def.channel_type,
        &def.model_redirect_rules,
        def.model_redirect_strict,
        &mut target,
        &body,
    )
    .map_err(|refused| NotPrepared {
        error: ProxyError::BadRequest(refused.to_string()),
        upstream_addr: log_address(&target.url(), &key.value),
    })?;
    channel::inject_key(def.channel_type, &mut target, &mut headers, &key.value);
    if !member.rules.is_empty() {
        rules::apply(
            &member.rules,
            &mut headers,
            &Vars {
                client_ip: &ctx.client_ip,
                group_name: member.group.name(),
                api_key: &key.value,
            },
        );
    }
    if ctx.facts.stream {
        headers.insert(X_ACCEL_BUFFERING.clone(), HeaderValue::from_static("no"));
    }
    let url = target.url();
    Ok(Prepared {
        upstream_addr: log_address(&url, &key.value),
        url,
        headers,
        body,
    })
}

/// The upstream URL as logs show it.
fn log_address(url: &str, key: &str) -> String {
    let mut addr = redact(&strip_userinfo(url), key);
    let keep = truncate_utf8(&addr, 500).len();
    addr.truncate(keep);
    addr
}
