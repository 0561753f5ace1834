//! `ANY /proxy/{group}/{path…}` and the native routes (`/v1/…`, `/v1beta/…`, [`native`]): the
//! data plane's request path, one file per step of the architecture's hot path.
//!
//! | step | where |
//! |---|---|
//! | 1. resolve the group from the current snapshot (one `ArcSwap` load) | here, [`admission`] (`Group`) |
//! | 2. admission: throttle → path → credential → group → authorize → permit | [`admission`] |
//! | 3. read the body once, bounded | [`request_body`] |
//! | 4. pick an upstream (weighted) and a key from the key store | [`attempts`] |
//! | 5. prepare the upstream request: auth for the channel, rules, overrides, redirects | [`prepare`] (headers: [`hop_by_hop`]) |
//! | 6. send it through the group's client | [`send`] |
//! | 7. book a failure against the key, retry with the next one | [`outcome`], [`attempts`] |
//! | 8. stream the answer back as it arrives | [`respond`] |
//! | 9. hand a log record to the bounded queue | [`request`] (`RequestCtx::record`) |
//!
//! Errors the proxy answers itself are [`crate::error::ProxyError`]s, converted in one place;
//! spans and metrics are [`span`]'s.

mod admission;
mod attempts;
mod hop_by_hop;
mod native;
mod outcome;
mod prepare;
mod request;
mod request_body;
mod respond;
mod send;
mod span;

use std::time::Instant;

use axum::extract::Request;
use axum::response::Response;
use gpt_load_common::log_record::truncate_utf8;
use gpt_load_common::serving_thread::ServingThread;
use http::StatusCode;
use tracing::Instrument;

pub use crate::credential::extract_client_key;
pub use native::{Exclusion, channels_for, exclusion};
use tokio::sync::OwnedSemaphorePermit;

pub use crate::error::throttled;
use crate::error::{ErrorShape, ProxyError};
use crate::state::{Runtime, WorkerState};
use request::RequestCtx;
use span::RunStats;

/// The path of the integration-info endpoint under a group.
const INTEGRATION_INFO: &str = "/api/integration/info";

/// Splits `/proxy/{group}/{rest}`.
fn split_path(path: &str) -> Option<(&str, &str)> {
    let after = path.strip_prefix("/proxy/")?;
    match after.find('/') {
        Some(i) => Some((&after[..i], &after[i..])),
        None => Some((after, "")),
    }
}

/// Whether `path` is the data plane's: `/proxy/{group}/…` or a native route's prefix.
pub fn is_proxy_path(path: &str) -> bool {
    (path.len() > "/proxy/".len() && path.starts_with("/proxy/"))
        || path.starts_with("/v1/")
        || path.starts_with("/v1beta/")
}

/// The proxy handler, for a request on serving thread `thread`.
pub async fn proxy(state: WorkerState, thread: Option<ServingThread>, req: Request) -> Response {
    let start = Instant::now();
    let (parts, body) = req.into_parts();
    let Some((group_name, rest)) = split_path(parts.uri.path()) else {
        return Box::pin(native_request(state, thread, parts, body, start)).await;
    };
    let runtime = state.0.runtime.load_full();
    let client_ip = crate::client_ip::client_ip(&parts, &state.0.limits.trusted_proxies);

    if rest == INTEGRATION_INFO {
        if let Err(e) = admission::check_throttle(&state, &client_ip) {
            return e.into_response();
        }
        let resp = crate::integration::group_info(&runtime, group_name, parts.uri.query());
        if resp.status() == StatusCode::BAD_REQUEST {
            state.0.throttle.record_failure(&client_ip);
        }
        return resp;
    }

    let admitted = match admission::admit(&state, &runtime, &parts, group_name, rest, client_ip) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let body = match request_body::read(&state, &parts.headers, body).await {
        Ok(b) => b,
        Err(refused) => {
            // The concurrency slot is not held while a refused upload is thrown away.
            drop(admitted.permit);
            if let Some(unread) = refused.unread {
                unread.drain().await;
            }
            return refused.error.into_response();
        }
    };

    let original = admitted.group;
    let facts = crate::channel::request_facts(
        original.group.def.channel_type,
        rest,
        parts.uri.query(),
        &parts.headers,
        &body,
    );
    if let Some(k) = &admitted.access_key
        && !k.allows_model(&facts.model)
    {
        return ProxyError::Forbidden(format!(
            "this access key may not use model '{}'",
            facts.model
        ))
        .into_response();
    }
    let query = admitted.query;
    let mut request_path = String::with_capacity(
        7 + group_name.len() + rest.len() + query.as_ref().map_or(0, |q| q.len() + 1),
    );
    request_path.push_str("/proxy/");
    request_path.push_str(group_name);
    request_path.push_str(rest);
    push_query(&mut request_path, &query);
    let ctx = RequestCtx {
        start,
        method: parts.method.clone(),
        rest: rest.to_owned(),
        query,
        client_ip: admitted.client_ip,
        user_agent: user_agent(&parts.headers),
        headers: parts.headers,
        body,
        facts,
        request_path: truncate_utf8(&request_path, 500).to_owned(),
        original,
        routed: None,
        shape: ErrorShape::GptLoad,
        access_key: admitted.access_key,
        thread,
    };
    execute(&state, &runtime, ctx, admitted.permit, start).await
}

fn user_agent(headers: &http::HeaderMap) -> String {
    headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Appends `?query` to a logged path.
fn push_query(path: &mut String, query: &Option<String>) {
    if let Some(q) = query {
        path.push('?');
        path.push_str(q);
    }
}

/// Steps 4–9 for an admitted request with its body read.
async fn execute(
    state: &WorkerState,
    runtime: &Runtime,
    ctx: RequestCtx,
    permit: OwnedSemaphorePermit,
    start: Instant,
) -> Response {
    let mut stats = RunStats::default();
    let original_metrics = ctx.original.metrics.clone();
    let request_span = span::request(&ctx);
    // Boxed before it is wrapped: moving the attempt loop's future copies all of it.
    let resp = Box::pin(attempts::run(state, runtime, ctx, permit, &mut stats))
        .instrument(request_span.clone())
        .await;
    let metrics = stats.metrics.as_ref().unwrap_or(&original_metrics);
    span::request_done(&request_span, metrics, &stats, &resp, start.elapsed());
    resp
}

/// A native route's request: the caller and the model choose the groups ([`native`]).
async fn native_request(
    state: WorkerState,
    thread: Option<ServingThread>,
    parts: http::request::Parts,
    body: axum::body::Body,
    start: Instant,
) -> Response {
    let path = parts.uri.path();
    let Some(route) = native::route(&parts.method, path, &parts) else {
        return ProxyError::NotFound.render(native::shape_for_path(path));
    };
    let shape = route.shape;
    let runtime = state.0.runtime.load_full();
    let client_ip = crate::client_ip::client_ip(&parts, &state.0.limits.trusted_proxies);
    let (caller, query) = match native::identify(&state, &runtime, &parts, &route, &client_ip) {
        Ok(found) => found,
        Err(e) => return e.render(shape),
    };
    if route.kind != native::Kind::Model {
        return native::model_list(&runtime, &route, &caller);
    }
    let Ok(permit) = state.0.limiter.clone().try_acquire_owned() else {
        return ProxyError::Concurrency.render(shape);
    };
    let body = match request_body::read(&state, &parts.headers, body).await {
        Ok(b) => b,
        Err(refused) => {
            drop(permit);
            if let Some(unread) = refused.unread {
                unread.drain().await;
            }
            return refused.error.render(shape);
        }
    };
    let facts = crate::channel::request_facts(
        route.protocol,
        path,
        query.as_deref(),
        &parts.headers,
        &body,
    );
    let table = match native::candidates(&runtime, &route, &caller, &facts.model) {
        Ok(t) => t,
        Err(e) => return e.render(shape),
    };
    let first = table
        .tiers
        .first()
        .and_then(|t| t.items().first())
        .and_then(|id| runtime.group_by_id(*id))
        .cloned();
    let Some(original) = first else {
        return ProxyError::NotFound.render(shape);
    };
    let mut request_path = path.to_owned();
    push_query(&mut request_path, &query);
    let ctx = RequestCtx {
        start,
        method: parts.method.clone(),
        rest: path.to_owned(),
        query,
        client_ip,
        user_agent: user_agent(&parts.headers),
        headers: parts.headers,
        body,
        facts,
        request_path: truncate_utf8(&request_path, 500).to_owned(),
        original,
        routed: Some(table),
        shape,
        access_key: caller.access_key().cloned(),
        thread,
    };
    execute(&state, &runtime, ctx, permit, start).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_paths_split_group_and_rest() {
        assert_eq!(
            split_path("/proxy/g/v1/chat/completions"),
            Some(("g", "/v1/chat/completions"))
        );
        assert_eq!(split_path("/proxy/g"), Some(("g", "")));
        assert_eq!(split_path("/other"), None);
    }
}
