//! Step 8: an upstream's answer on its way back — hop-by-hop headers removed, streams marked
//! unbuffered, the body relayed frame by frame as it arrives (its log record finished when the
//! last byte went out or the client left, which also cancels the upstream call). A model list
//! under model redirects is the one answer read whole, to rewrite it.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use gpt_load_common::log_record::RequestLogRecord;
use http::StatusCode;
use http::header::HeaderValue;
use http_body_util::BodyExt;
use tokio::sync::OwnedSemaphorePermit;

use super::hop_by_hop::strip_response;
use super::prepare::X_ACCEL_BUFFERING;
use super::request::RequestCtx;
use crate::body::{BodyTap, LoggedBody};
use crate::channel;
use crate::decompress::decompress;
use crate::error::ProxyError;
use crate::state::{GroupRuntime, WorkerState};

/// Whether the answer is a model list to rewrite by the group's model redirects (the one answer
/// read whole: [`model_list`]); every other answer is [`relay`]ed.
pub(super) fn is_rewritten_model_list(ctx: &RequestCtx, member: &GroupRuntime) -> bool {
    channel::is_model_list(&ctx.method, &ctx.rest)
        && !member.group.def.model_redirect_rules.is_empty()
}

/// The upstream's answer with its hop-by-hop headers removed and streams marked unbuffered.
fn client_head(ctx: &RequestCtx, resp: Response) -> (http::response::Parts, Body) {
    let (mut parts, incoming) = resp.into_parts();
    strip_response(&mut parts.headers);
    if ctx.facts.stream {
        parts
            .headers
            .insert(X_ACCEL_BUFFERING.clone(), HeaderValue::from_static("no"));
        parts
            .headers
            .entry(http::header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-cache"));
    }
    (parts, incoming)
}

/// The client's answer from a successful attempt's `resp`, relayed as it arrives, logging `rec`
/// when it is complete. Not async: nothing here waits, so the attempt loop's future does not
/// grow by it.
pub(super) fn relay(
    state: &WorkerState,
    ctx: &RequestCtx,
    member: &GroupRuntime,
    resp: Response,
    rec: RequestLogRecord,
    attempt_start: Instant,
    permit: Option<OwnedSemaphorePermit>,
) -> Response {
    let (parts, incoming) = client_head(ctx, resp);
    let deadline = (!ctx.facts.stream).then(|| {
        tokio::time::Instant::from_std(ctx.start)
            + Duration::from_secs(member.group.config.request_timeout_s)
    });
    let tap = BodyTap {
        metrics: member.metrics.clone(),
        attempt_start,
        scan_tokens: gpt_load_common::metrics::metrics().tokens_enabled(),
    };
    let body = LoggedBody::new(
        incoming,
        rec,
        state.0.records.clone(),
        ctx.start,
        deadline,
        permit,
        Some(tap),
    );
    Response::from_parts(parts, Body::new(body))
}

/// A model list rewritten by the group's model redirects (aliases added, or only they kept).
pub(super) async fn model_list(
    state: &WorkerState,
    ctx: &RequestCtx,
    member: &GroupRuntime,
    resp: Response,
    mut rec: RequestLogRecord,
) -> Response {
    let (parts, incoming) = client_head(ctx, resp);
    let client_query = ctx.query.as_deref();
    let raw = match http_body_util::Limited::new(incoming, 32 * 1024 * 1024)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            rec.is_success = false;
            rec.error_message = "failed to read the model list".into();
            state.0.records.log(rec);
            return ProxyError::BadGateway("Failed to read the upstream model list".into())
                .into_response();
        }
    };
    let body = decompress(&parts.headers, raw);
    let def = &member.group.def;
    state.0.records.log(rec);
    match channel::transform_model_list(
        &def.model_redirect_rules,
        def.model_redirect_strict,
        client_query,
        &body,
    ) {
        Some(v) => (StatusCode::OK, axum::Json(v)).into_response(),
        None => ProxyError::BadGateway("Failed to process the upstream model list".into())
            .into_response(),
    }
}
