//! `ANY /proxy/{group}/{path…}`: authenticate, pick a key, forward, retry on failure, stream back.
//!
//! One request reads the runtime once (an `ArcSwap` load), reads the body once (bounded) and then
//! runs attempts until one succeeds or `max_retries` is spent. Aggregate groups balance over their
//! members by weight; when a member has no usable key the request moves to another member.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use gpt_load_common::keystore::{KeyEvent, KeyMaterial, KeyStore, Selection};
use gpt_load_common::log_record::{RequestLogRecord, RequestType, truncate_utf8};
use gpt_load_common::metrics::{GroupMetrics, KeyEventKind, Outcome, RetryReason};
use gpt_load_common::model::KeyStatus;
use gpt_load_common::secret::redact;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use tracing::Instrument;
use tracing::field::Empty;

use crate::body::{BodyError, BodyTap, Declared, LoggedBody, read_limited};
use crate::channel::{self, RequestFacts, UpstreamTarget};
use crate::error;
use crate::failure::{self, Verdict};
use crate::rules::{self, Vars};
use crate::state::{GroupRuntime, Runtime, WorkerState};

static X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

/// Hop-by-hop headers (RFC 9110 §7.6.1): never passed on, in either direction. `HeaderName`s,
/// not strings: comparing a standard header is comparing a tag, and removing one needs no parse.
static HOP_BY_HOP: [HeaderName; 7] = [
    http::header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::TE,
    http::header::TRAILER,
    http::header::TRANSFER_ENCODING,
    http::header::UPGRADE,
];

/// Request headers never forwarded upstream: the hop-by-hop ones, the client's credentials, and
/// those the upstream request gets its own of.
fn strip_request(name: &HeaderName) -> bool {
    use http::header::{AUTHORIZATION, CONTENT_LENGTH, HOST, PROXY_AUTHORIZATION};
    HOP_BY_HOP.contains(name)
        || [
            &AUTHORIZATION,
            &PROXY_AUTHORIZATION,
            &channel::X_API_KEY,
            &channel::X_GOOG_API_KEY,
            &HOST,
            &CONTENT_LENGTH,
        ]
        .contains(&name)
}

/// Removes the hop-by-hop headers of an upstream response before it goes back to the client,
/// with those its `Connection` header names.
fn strip_response(headers: &mut HeaderMap) {
    // A response has a handful of headers and usually none of these: one pass comparing names
    // costs less than a hashed lookup per name.
    if headers.keys().any(|k| HOP_BY_HOP.contains(k)) {
        // Usually empty (`Connection: keep-alive` names nothing else): no allocation then.
        let listed: Vec<HeaderName> = connection_listed(headers).collect();
        for name in listed {
            headers.remove(name);
        }
        for h in &HOP_BY_HOP {
            headers.remove(h);
        }
    }
}

/// The fields a `Connection` header names (RFC 9110 §7.6.1): hop-by-hop as well, so a proxy
/// removes them. The options most clients and servers send (`keep-alive`, `close`) and the
/// names [`HOP_BY_HOP`] removes anyway are skipped without a parse, as are tokens that are not
/// header names.
fn connection_listed(headers: &HeaderMap) -> impl Iterator<Item = HeaderName> + '_ {
    headers
        .get_all(http::header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| {
            !t.is_empty()
                && !t.eq_ignore_ascii_case(b"close")
                && !HOP_BY_HOP
                    .iter()
                    .any(|h| t.eq_ignore_ascii_case(h.as_str().as_bytes()))
        })
        .filter_map(|t| HeaderName::from_bytes(t).ok())
}

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

/// Whether a client path has a segment that is `.` or `..` once decoded (`%2e`, and `%2f` or
/// a backslash as separators): upstreams resolve those, so the request would leave the
/// upstream's base path with the group's key attached.
fn has_dot_segment(path: &str) -> bool {
    if !path.contains('.') && !path.contains('%') {
        return false;
    }
    gpt_load_common::urlenc::decode(path, false)
        .split(['/', '\\'])
        .any(|seg| seg == "." || seg == "..")
}

/// Splits `/proxy/{group}/{rest}`.
fn split_path(path: &str) -> Option<(&str, &str)> {
    let after = path.strip_prefix("/proxy/")?;
    match after.find('/') {
        Some(i) => Some((&after[..i], &after[i..])),
        None => Some((after, "")),
    }
}

/// What stays the same across attempts.
struct Ctx {
    start: Instant,
    method: Method,
    /// Path after `/proxy/{group}`.
    rest: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
    facts: RequestFacts,
    client_ip: String,
    request_path: String,
    user_agent: String,
    original: Arc<GroupRuntime>,
}

/// A failed attempt, kept so the last one can be answered to the client.
struct Failed {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    transport: bool,
}

impl Failed {
    fn into_response(self) -> Response {
        if self.transport {
            return error::json_error(
                self.status,
                "UPSTREAM_ERROR",
                &String::from_utf8_lossy(&self.body),
            );
        }
        let is_json_object =
            serde_json::from_slice::<serde_json::Value>(&self.body).is_ok_and(|v| v.is_object());
        if is_json_object {
            let mut r = Response::new(Body::from(self.body));
            *r.status_mut() = self.status;
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if let Some(ra) = self.headers.get(http::header::RETRY_AFTER) {
                r.headers_mut()
                    .insert(http::header::RETRY_AFTER, ra.clone());
            }
            r
        } else {
            error::json_error(
                self.status,
                "UPSTREAM_ERROR",
                &String::from_utf8_lossy(&self.body),
            )
        }
    }
}

enum AttemptOutcome {
    Success(Response),
    Failure {
        failed: Failed,
        verdict: Verdict,
        message: String,
    },
}

/// The proxy handler.
pub async fn proxy(State(state): State<WorkerState>, req: Request) -> Response {
    let start = Instant::now();
    let (parts, body) = req.into_parts();
    let Some((group_name, rest)) = split_path(parts.uri.path()) else {
        return error::json_error(StatusCode::NOT_FOUND, "NOT_FOUND", "Not Found");
    };
    let runtime = state.0.runtime.load_full();
    let client_ip = crate::client_ip::client_ip(&parts, &state.0.limits.trusted_proxies);
    if let Some(wait) = state.0.throttle.blocked_for(&client_ip) {
        return throttled(wait);
    }

    if rest == "/api/integration/info" {
        let resp = crate::integration::group_info(&runtime, group_name, parts.uri.query());
        if resp.status() == StatusCode::BAD_REQUEST {
            state.0.throttle.record_failure(&client_ip);
        }
        return resp;
    }

    if has_dot_segment(rest) {
        return error::json_error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "The request path has a '.' or '..' segment (possibly percent-encoded); such paths are refused",
        );
    }
    let (client_key, query) = extract_client_key(&parts.headers, parts.uri.query());
    if client_key.is_empty() {
        return error::unauthorized();
    }
    let Some(original) = runtime.group(group_name).cloned() else {
        return error::group_not_found(group_name);
    };
    if !runtime.snapshot.authorizes(&original.group, &client_key) {
        state.0.throttle.record_failure(&client_ip);
        return error::unauthorized();
    }
    let Ok(permit) = state.0.limiter.clone().try_acquire_owned() else {
        return error::too_many_requests();
    };

    let declared = Declared {
        len: parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok()),
        expects_continue: parts
            .headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue")),
    };
    let body = match read_limited(
        body,
        declared,
        state.0.limits.max_body_bytes,
        state.0.limits.read_timeout,
    )
    .await
    {
        Ok(b) => b,
        Err(BodyError::TooLarge(rest)) => {
            // The concurrency slot is not held while the refused upload is thrown away.
            drop(permit);
            rest.drain().await;
            return error::body_too_large(state.0.limits.max_body_bytes);
        }
        Err(BodyError::Timeout) => {
            return error::json_error(
                StatusCode::REQUEST_TIMEOUT,
                "REQUEST_TIMEOUT",
                "Timed out reading the request body",
            );
        }
        Err(BodyError::Read(e)) => {
            return error::json_error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                &format!("Failed to read request body: {e}"),
            );
        }
    };

    let facts = channel::request_facts(
        original.group.def.channel_type,
        rest,
        parts.uri.query(),
        &parts.headers,
        &body,
    );
    let mut request_path = String::with_capacity(
        7 + group_name.len() + rest.len() + query.as_ref().map_or(0, |q| q.len() + 1),
    );
    request_path.push_str("/proxy/");
    request_path.push_str(group_name);
    request_path.push_str(rest);
    if let Some(q) = &query {
        request_path.push('?');
        request_path.push_str(q);
    }
    let ctx = Ctx {
        start,
        method: parts.method.clone(),
        rest: rest.to_owned(),
        query,
        client_ip,
        user_agent: parts
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        headers: parts.headers,
        body,
        facts,
        request_path: truncate_utf8(&request_path, 500).to_owned(),
        original,
    };
    let mut stats = RunStats::default();
    let original_metrics = ctx.original.metrics.clone();
    let span = request_span(&ctx);
    // Boxed before it is wrapped: moving the attempt loop's future copies all of it.
    let resp = Box::pin(run(&state, &runtime, ctx, permit, &mut stats))
        .instrument(span.clone())
        .await;
    let m = stats.metrics.as_ref().unwrap_or(&original_metrics);
    let status = resp.status().as_u16();
    let outcome = if status >= 400 {
        Outcome::Failed
    } else if stats.attempts > 1 {
        Outcome::Retried
    } else {
        Outcome::Success
    };
    if !span.is_disabled() {
        span.record("http.response.status_code", status);
        span.record("gpt_load.attempts", stats.attempts);
        span.record("gpt_load.outcome", outcome.as_str());
        if status >= 500 {
            span.record("otel.status_code", "ERROR");
        }
    }
    m.request(status, outcome);
    m.observe_request(start.elapsed());
    resp
}

/// The request's span (exported only with OTLP on; otherwise a disabled span that costs nothing),
/// a child of the client's W3C trace context when it sent one.
fn request_span(ctx: &Ctx) -> tracing::Span {
    if !gpt_load_common::telemetry::sample(&ctx.headers) {
        return tracing::Span::none();
    }
    let group = &ctx.original.group;
    let span = tracing::info_span!(
        target: "gpt_load::proxy",
        "proxy",
        otel.name = %format_args!("{} /proxy/{}", ctx.method, group.name()),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %ctx.method,
        gpt_load.group = group.name(),
        gpt_load.channel = group.def.channel_type.as_str(),
        gen_ai.request.model = ctx.facts.model.as_str(),
        gpt_load.stream = ctx.facts.stream,
        http.response.status_code = Empty,
        gpt_load.attempts = Empty,
        gpt_load.outcome = Empty,
    );
    gpt_load_common::telemetry::set_remote_parent(&span, &ctx.headers);
    span
}

/// One upstream attempt's span, a child of the request span.
fn attempt_span(member: &GroupRuntime, model: &str, attempt: u32, key_id: i64) -> tracing::Span {
    if !gpt_load_common::telemetry::tracing_enabled() || tracing::Span::current().is_none() {
        return tracing::Span::none();
    }
    tracing::info_span!(
        target: "gpt_load::proxy",
        "upstream_attempt",
        otel.kind = "client",
        otel.status_code = Empty,
        gpt_load.group = member.group.name(),
        gpt_load.channel = member.group.def.channel_type.as_str(),
        gen_ai.request.model = model,
        gpt_load.attempt = attempt + 1,
        gpt_load.key_id = key_id,
        http.response.status_code = Empty,
        error.type = Empty,
    )
}

/// 429 for an address that failed authentication too often.
pub fn throttled(wait: Duration) -> Response {
    let mut r = error::json_error(
        StatusCode::TOO_MANY_REQUESTS,
        "TOO_MANY_REQUESTS",
        &format!(
            "Too many failed authentication attempts, retry in {} seconds",
            wait.as_secs().max(1)
        ),
    );
    if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
        r.headers_mut().insert(http::header::RETRY_AFTER, v);
    }
    r
}

/// The client's headers that go upstream: all but [`strip_request`]'s and those the client's
/// `Connection` header names.
fn forward_headers(src: &HeaderMap) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(src.len());
    let mut connection = false;
    for (k, v) in src {
        if !strip_request(k) {
            h.append(k.clone(), v.clone());
        } else if k == http::header::CONNECTION {
            connection = true;
        }
    }
    // Only then a second look (many clients send `Connection: keep-alive`, which names nothing
    // more and costs no allocation).
    if connection {
        for name in connection_listed(src) {
            h.remove(name);
        }
    }
    h
}

/// Picks the member an attempt runs in: the group itself, or an aggregate member with weight,
/// skipping `exhausted` members.
fn pick_member<'a>(
    runtime: &'a Runtime,
    original: &'a Arc<GroupRuntime>,
    exhausted: &[i64],
) -> Option<&'a Arc<GroupRuntime>> {
    if !original.group.is_aggregate() {
        return (!exhausted.contains(&original.group.id())).then_some(original);
    }
    let id = original
        .members
        .pick_where(|id| !exhausted.contains(id) && runtime.group_by_id(*id).is_some())?;
    runtime.group_by_id(*id)
}

/// What the attempt loop tells the caller for metrics.
#[derive(Default)]
struct RunStats {
    attempts: u32,
    metrics: Option<Arc<GroupMetrics>>,
}

async fn run(
    state: &WorkerState,
    runtime: &Runtime,
    mut ctx: Ctx,
    permit: tokio::sync::OwnedSemaphorePermit,
    stats: &mut RunStats,
) -> Response {
    let store = &state.0.store;
    let mut exhausted: Vec<i64> = Vec::new();
    let mut last_failure: Option<Failed> = None;
    let mut attempt: u32 = 0;
    let mut permit = Some(permit);
    loop {
        let Some(member) = pick_member(runtime, &ctx.original, &exhausted) else {
            return match last_failure {
                Some(f) => f.into_response(),
                None if ctx.original.group.is_aggregate() => {
                    error::no_keys("No available sub-groups", None)
                }
                None => error::no_keys("No active API keys available for this group", None),
            };
        };
        let member = member.clone();
        let group_id = member.group.id();
        let selection = match store.select(group_id).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(group = member.group.name(), error = %e, "key store unavailable");
                state.0.records.log(record(
                    &mut ctx,
                    &member,
                    None,
                    503,
                    "key store unavailable",
                    RequestType::Final,
                    String::new(),
                ));
                return error::json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "STORE_UNAVAILABLE",
                    "Key store unavailable, retry shortly",
                );
            }
        };
        let key = match selection {
            Selection::Key(k) => k,
            Selection::NoActiveKeys | Selection::AllCooling { .. } | Selection::PoolMissing => {
                let missing = matches!(selection, Selection::PoolMissing);
                let retry_after = match selection {
                    Selection::AllCooling { retry_after } => Some(retry_after),
                    Selection::PoolMissing => Some(Duration::from_secs(1)),
                    _ => None,
                };
                exhausted.push(group_id);
                if ctx.original.group.is_aggregate()
                    && pick_member(runtime, &ctx.original, &exhausted).is_some()
                {
                    continue;
                }
                if let Some(f) = last_failure {
                    return f.into_response();
                }
                let msg = if missing {
                    "The key state of this group is missing from Redis (Redis lost its data, or \
                     the group was just created); it is being reloaded from the database, retry \
                     shortly"
                } else if retry_after.is_some() {
                    "Every key of this group is cooling down after rate limiting"
                } else {
                    "No active API keys available for this group"
                };
                state.0.records.log(record(
                    &mut ctx,
                    &member,
                    None,
                    503,
                    msg,
                    RequestType::Final,
                    String::new(),
                ));
                if missing {
                    return error::key_state_missing(msg);
                }
                return error::no_keys(msg, retry_after);
            }
        };
        member.metrics.key_selected();
        stats.attempts = attempt + 1;
        stats.metrics = Some(member.metrics.clone());
        let max_retries = member.group.config.max_retries;
        let is_last = attempt >= max_retries;
        let Some(upstream) = member.upstreams.pick() else {
            exhausted.push(group_id);
            if ctx.original.group.is_aggregate()
                && pick_member(runtime, &ctx.original, &exhausted).is_some()
            {
                continue;
            }
            return error::json_error(
                StatusCode::BAD_GATEWAY,
                "BAD_GATEWAY",
                "No upstream with a weight above 0 is configured for this group",
            );
        };
        let mut target = UpstreamTarget {
            origin: upstream.origin.clone(),
            path: {
                let mut p = String::with_capacity(upstream.path.len() + ctx.rest.len());
                p.push_str(&upstream.path);
                p.push_str(&ctx.rest);
                p
            },
            query: ctx.query.clone(),
        };
        let mut headers = forward_headers(&ctx.headers);
        // The upstream's own Host (the client's is not forwarded); header rules may replace it.
        headers.insert(http::header::HOST, upstream.host.clone());
        let def = &member.group.def;
        let body = if def.param_overrides.is_empty() {
            ctx.body.clone()
        } else {
            channel::apply_param_overrides(&def.param_overrides, ctx.body.clone())
        };
        let body = match channel::apply_model_redirect(
            def.channel_type,
            &def.model_redirect_rules,
            def.model_redirect_strict,
            &mut target,
            &body,
        ) {
            Ok(b) => b,
            Err(refused) => {
                let msg = refused.to_string();
                state.0.records.log(record(
                    &mut ctx,
                    &member,
                    Some(&key.key),
                    400,
                    &msg,
                    RequestType::Final,
                    target.url(),
                ));
                return error::json_error(StatusCode::BAD_REQUEST, "BAD_REQUEST", &msg);
            }
        };
        channel::inject_key(def.channel_type, &mut target, &mut headers, &key.key.value);
        if !member.rules.is_empty() {
            rules::apply(
                &member.rules,
                &mut headers,
                &Vars {
                    client_ip: &ctx.client_ip,
                    group_name: member.group.name(),
                    api_key: &key.key.value,
                },
            );
        }
        if ctx.facts.stream {
            headers.insert(X_ACCEL_BUFFERING.clone(), HeaderValue::from_static("no"));
        }
        let url = target.url();
        // Redacted before it is cut (a cut copy of the key is no longer found), without the
        // credentials an upstream URL may carry.
        let upstream_addr = truncate_utf8(
            &redact(
                &gpt_load_common::secret::strip_userinfo(&url),
                &key.key.value,
            ),
            500,
        )
        .to_owned();

        let attempt_start = Instant::now();
        let span = attempt_span(&member, &ctx.facts.model, attempt, key.key.id);
        let outcome = Box::pin(attempt_once(
            &ctx,
            &member,
            url,
            headers,
            body,
            &key.key.value,
        ))
        .instrument(span.clone())
        .await;
        if !span.is_disabled() {
            match &outcome {
                AttemptOutcome::Success(r) => {
                    span.record("http.response.status_code", r.status().as_u16());
                }
                AttemptOutcome::Failure { failed, .. } => {
                    span.record("http.response.status_code", failed.status.as_u16());
                    span.record("otel.status_code", "ERROR");
                    span.record(
                        "error.type",
                        if failed.transport {
                            "transport"
                        } else {
                            "status"
                        },
                    );
                }
            }
        }
        match outcome {
            AttemptOutcome::Success(resp) => {
                if key.failures > 0 {
                    reset_failures(state, group_id, key.key.id);
                }
                let (mut parts, incoming) = resp.into_parts();
                let status = parts.status.as_u16();
                let rec = record(
                    &mut ctx,
                    &member,
                    Some(&key.key),
                    status,
                    "",
                    RequestType::Final,
                    upstream_addr,
                );
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
                if channel::is_model_list(&ctx.method, &ctx.rest)
                    && !def.model_redirect_rules.is_empty()
                {
                    // Boxed: a rare path kept out of every request's future.
                    return Box::pin(model_list_response(
                        state,
                        rec,
                        parts,
                        incoming,
                        &member,
                        ctx.query.as_deref(),
                    ))
                    .await;
                }
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
                    permit.take(),
                    Some(tap),
                );
                return Response::from_parts(parts, Body::new(body));
            }
            AttemptOutcome::Failure {
                failed,
                verdict,
                message,
            } => {
                let message = redact(&message, &key.key.value);
                if let Some(d) = verdict.cool_down {
                    member.metrics.key_event(KeyEventKind::Cooldown, 1);
                    let _ = store.cool_down(group_id, key.key.id, d).await;
                }
                if verdict.counts_against_key {
                    match store
                        .record_failure(
                            group_id,
                            key.key.id,
                            member.group.config.blacklist_threshold,
                        )
                        .await
                    {
                        Ok(outcome) => {
                            member.metrics.key_event(KeyEventKind::Failure, 1);
                            if outcome.blacklisted {
                                member.metrics.key_event(KeyEventKind::Blacklisted, 1);
                                tracing::info!(
                                    group = member.group.name(),
                                    key_id = key.key.id,
                                    failures = outcome.failure_count,
                                    "key blacklisted"
                                );
                            }
                            state.0.records.key_event(KeyEvent {
                                group_id,
                                key_id: key.key.id,
                                failure_count: outcome.failure_count,
                                status: if outcome.invalid {
                                    KeyStatus::Invalid
                                } else {
                                    KeyStatus::Active
                                },
                            });
                        }
                        Err(e) => tracing::warn!(error = %e, "could not record a key failure"),
                    }
                }
                let last = is_last || !verdict.retry_with_next_key;
                let kind = if last {
                    RequestType::Final
                } else {
                    RequestType::Retry
                };
                state.0.records.log(record(
                    &mut ctx,
                    &member,
                    Some(&key.key),
                    failed.status.as_u16(),
                    &message,
                    kind,
                    upstream_addr,
                ));
                let failed = Failed {
                    body: Bytes::from(redact(
                        &String::from_utf8_lossy(&failed.body),
                        &key.key.value,
                    )),
                    ..failed
                };
                if last {
                    return failed.into_response();
                }
                member.metrics.retry(if failed.transport {
                    RetryReason::Transport
                } else if verdict.cool_down.is_some() {
                    RetryReason::RateLimited
                } else {
                    RetryReason::Status
                });
                last_failure = Some(failed);
                attempt += 1;
            }
        }
    }
}

fn reset_failures(state: &WorkerState, group_id: i64, key_id: i64) {
    let state = state.clone();
    crate::serve::spawn_detached(async move {
        if let Ok(true) = state.0.store.record_success(group_id, key_id).await {
            state.0.records.key_event(KeyEvent {
                group_id,
                key_id,
                failure_count: 0,
                status: KeyStatus::Active,
            });
        }
    });
}

async fn attempt_once(
    ctx: &Ctx,
    member: &GroupRuntime,
    url: String,
    headers: HeaderMap,
    body: Bytes,
    key: &str,
) -> AttemptOutcome {
    let transport_failure = |status: StatusCode, msg: String| AttemptOutcome::Failure {
        failed: Failed {
            status,
            headers: HeaderMap::new(),
            body: Bytes::from(msg.clone()),
            transport: true,
        },
        verdict: failure::classify_transport(),
        message: msg,
    };
    // From the `String` itself: its buffer becomes the `Uri`'s, not a copy of it.
    let uri = match http::Uri::try_from(url) {
        Ok(u) => u,
        Err(e) => {
            return transport_failure(
                StatusCode::BAD_GATEWAY,
                format!("invalid upstream URL: {e}"),
            );
        }
    };
    let mut req = http::Request::new(Full::new(body));
    *req.method_mut() = ctx.method.clone();
    let via_proxy = member.client.sends_to_proxy(&uri);
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    if gpt_load_common::telemetry::tracing_enabled() && !tracing::Span::current().is_none() {
        gpt_load_common::telemetry::inject_current(req.headers_mut());
    }
    let cfg = &member.group.config;
    let header_timeout = if ctx.facts.stream {
        Duration::from_secs(cfg.response_header_timeout_s)
    } else {
        Duration::from_secs(cfg.response_header_timeout_s.min(cfg.request_timeout_s))
    };
    let sent = Instant::now();
    // Boxed before it is wrapped, as the attempt's future.
    let resp = tokio::time::timeout(header_timeout, Box::pin(member.client.request(req))).await;
    member.metrics.observe_upstream(sent.elapsed());
    let resp = match resp {
        Err(_) => {
            return transport_failure(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "upstream did not answer within {}s",
                    header_timeout.as_secs()
                ),
            );
        }
        Ok(Err(e)) => {
            let mut msg = format!("upstream request failed: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                src = s.source();
            }
            return transport_failure(StatusCode::BAD_GATEWAY, msg);
        }
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    if status == StatusCode::PROXY_AUTHENTICATION_REQUIRED && via_proxy {
        // The forward proxy's own refusal: answered like a refused CONNECT tunnel.
        return transport_failure(
            StatusCode::BAD_GATEWAY,
            "upstream request failed: the forward proxy refused the request (407 Proxy Authentication Required)".to_owned(),
        );
    }
    if !cfg.failover_matcher.matches(status.as_u16()) {
        return AttemptOutcome::Success(resp.map(Body::new));
    }
    // Boxed: the failure path's futures (a timer, a body collector) would otherwise enlarge
    // every request's future, which is moved — copied — whole.
    Box::pin(read_failure(
        resp,
        Duration::from_secs(cfg.request_timeout_s),
        key,
    ))
    .await
}

/// A failover status: the upstream's error body (bounded), and what it means for the key.
async fn read_failure(
    resp: http::Response<crate::client::UpstreamBody>,
    timeout: Duration,
    key: &str,
) -> AttemptOutcome {
    let status = resp.status();
    let (parts, incoming) = resp.into_parts();
    let raw = match tokio::time::timeout(
        timeout,
        http_body_util::Limited::new(incoming, 4 * 1024 * 1024).collect(),
    )
    .await
    {
        Ok(Ok(c)) => c.to_bytes(),
        _ => Bytes::from_static(b"Failed to read error body"),
    };
    let body = decompress(&parts.headers, raw);
    let message = failure::parse_upstream_error(&body, key);
    let verdict = failure::classify_status(status.as_u16(), &parts.headers, &message);
    AttemptOutcome::Failure {
        failed: Failed {
            status,
            headers: parts.headers,
            body,
            transport: false,
        },
        verdict,
        message,
    }
}

/// Decodes a body per `Content-Encoding` (gzip, deflate, br, zstd); undecodable bodies stay as they are.
pub fn decompress(headers: &HeaderMap, body: Bytes) -> Bytes {
    use std::io::Read;
    let enc = headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let mut out = Vec::new();
    let ok = match enc.as_str() {
        "gzip" | "x-gzip" => flate2::read::MultiGzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .is_ok(),
        "deflate" => {
            flate2::read::ZlibDecoder::new(&body[..])
                .read_to_end(&mut out)
                .is_ok()
                || {
                    out.clear();
                    flate2::read::DeflateDecoder::new(&body[..])
                        .read_to_end(&mut out)
                        .is_ok()
                }
        }
        "br" => brotli::Decompressor::new(&body[..], 4096)
            .read_to_end(&mut out)
            .is_ok(),
        "zstd" => zstd::stream::read::Decoder::new(&body[..])
            .and_then(|mut d| d.read_to_end(&mut out))
            .is_ok(),
        _ => return body,
    };
    if ok { Bytes::from(out) } else { body }
}

async fn model_list_response(
    state: &WorkerState,
    mut rec: RequestLogRecord,
    parts: http::response::Parts,
    incoming: Body,
    member: &GroupRuntime,
    client_query: Option<&str>,
) -> Response {
    let raw = match http_body_util::Limited::new(incoming, 32 * 1024 * 1024)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            rec.is_success = false;
            rec.error_message = "failed to read the model list".into();
            state.0.records.log(rec);
            return error::json_error(
                StatusCode::BAD_GATEWAY,
                "BAD_GATEWAY",
                "Failed to read the upstream model list",
            );
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
        None => error::json_error(
            StatusCode::BAD_GATEWAY,
            "BAD_GATEWAY",
            "Failed to process the upstream model list",
        ),
    }
}

thread_local! {
    /// Each serving thread's UUIDv7 clock: `Uuid::now_v7` shares one behind a mutex that the
    /// threads would contend for on every request.
    static LOG_ID_CLOCK: uuid::ContextV7 = const { uuid::ContextV7::new() };
}

/// A log id: a UUIDv7, time-ordered (monotonic within a thread), so the primary-key index of
/// `request_logs` grows at its end.
fn log_id() -> String {
    let id = LOG_ID_CLOCK.with(|clock| uuid::Uuid::new_v7(uuid::Timestamp::now(clock)));
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    id.hyphenated().encode_lower(&mut buf).to_owned()
}

/// The log record of one attempt. The request's last record (`kind` final) takes the request's
/// own strings out of `ctx` instead of copying them: nothing reads them afterwards.
fn record(
    ctx: &mut Ctx,
    member: &GroupRuntime,
    key: Option<&KeyMaterial>,
    status: u16,
    error: &str,
    kind: RequestType,
    upstream_addr: String,
) -> RequestLogRecord {
    let take = |s: &mut String| {
        if kind == RequestType::Final {
            std::mem::take(s)
        } else {
            s.clone()
        }
    };
    let g = &member.group;
    let parent = (ctx.original.group.is_aggregate() && ctx.original.group.id() != g.id())
        .then_some(&ctx.original.group);
    let body_logging = g.config.enable_request_body_logging;
    RequestLogRecord {
        id: log_id(),
        timestamp: chrono::Utc::now(),
        group_id: g.id(),
        group_name: g.def.name.clone(),
        parent_group_id: parent.map(|p| p.id()),
        parent_group_name: parent.map(|p| p.def.name.clone()).unwrap_or_default(),
        key_value: key.map(|k| k.stored.clone()).unwrap_or_default(),
        key_hash: key.map(|k| k.hash.clone()).unwrap_or_default(),
        model: take(&mut ctx.facts.model),
        is_success: error.is_empty() && status < 400,
        source_ip: take(&mut ctx.client_ip),
        status_code: i64::from(status),
        request_path: take(&mut ctx.request_path),
        duration_ms: ctx.start.elapsed().as_millis() as i64,
        error_message: error.to_owned(),
        user_agent: take(&mut ctx.user_agent),
        request_type: kind,
        upstream_addr,
        is_stream: ctx.facts.stream,
        request_body: if body_logging {
            truncate_utf8(&String::from_utf8_lossy(&ctx.body), 65_000).to_owned()
        } else {
            String::new()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ids_are_v7_and_ordered_within_a_thread() {
        let ids: Vec<String> = (0..1000).map(|_| log_id()).collect();
        for id in &ids {
            let u = uuid::Uuid::parse_str(id).expect("a UUID");
            assert_eq!(u.get_version_num(), 7, "{id}");
            assert_eq!(id.len(), 36);
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "not increasing");
    }

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
    fn proxy_paths_split_group_and_rest() {
        assert_eq!(
            split_path("/proxy/g/v1/chat/completions"),
            Some(("g", "/v1/chat/completions"))
        );
        assert_eq!(split_path("/proxy/g"), Some(("g", "")));
        assert_eq!(split_path("/other"), None);
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

    #[test]
    fn dot_segments_are_found_in_any_encoding() {
        for p in [
            "/..",
            "/v1/../x",
            "/./x",
            "/%2e%2e/x",
            "/%2E./x",
            "/..%2fx",
            "/a%2f%2e%2e%2fb",
            "/a/..%5cb",
            "/a/.",
        ] {
            assert!(has_dot_segment(p), "{p}");
        }
        for p in [
            "",
            "/v1/models/gpt-4.1",
            "/a/...",
            "/a/.b/c",
            "/a%2fb",
            "/x..y/",
        ] {
            assert!(!has_dot_segment(p), "{p}");
        }
    }

    #[test]
    fn hop_by_hop_and_credentials_are_not_forwarded() {
        let mut h = HeaderMap::new();
        for n in [
            "authorization",
            "x-api-key",
            "x-goog-api-key",
            "host",
            "connection",
            "content-length",
            "keep-alive",
            "proxy-connection",
            "proxy-authorization",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "x-keep",
            "accept",
        ] {
            h.insert(HeaderName::from_static(n), HeaderValue::from_static("v"));
        }
        let f = forward_headers(&h);
        let names: Vec<_> = f.keys().map(|k| k.as_str().to_owned()).collect();
        assert_eq!(names.len(), 2);
        assert!(f.contains_key("x-keep") && f.contains_key("accept"));
    }

    #[test]
    fn hop_by_hop_response_headers_are_not_copied_back() {
        let mut h = HeaderMap::new();
        for n in [
            "connection",
            "keep-alive",
            "proxy-connection",
            "transfer-encoding",
            "upgrade",
            "trailer",
            "te",
            "content-type",
            "x-request-id",
        ] {
            h.insert(HeaderName::from_static(n), HeaderValue::from_static("v"));
        }
        strip_response(&mut h);
        let mut names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-type", "x-request-id"]);
    }

    #[test]
    fn headers_a_connection_header_lists_are_hop_by_hop_too() {
        // RFC 9110 §7.6.1: a proxy removes the fields a `Connection` header names, in either
        // direction; names in any case, over several header lines, malformed tokens ignored.
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Trace-Hop ,,x-other, not a name"),
        );
        h.append(
            http::header::CONNECTION,
            HeaderValue::from_static("x-second-line"),
        );
        // A line with a byte that is not visible ASCII still names its valid tokens.
        h.append(
            http::header::CONNECTION,
            HeaderValue::from_bytes(b"x-obs-line, \x80bad").expect("obs-text is a valid value"),
        );
        for n in [
            "x-trace-hop",
            "x-other",
            "x-second-line",
            "x-obs-line",
            "accept",
        ] {
            h.insert(HeaderName::from_static(n), HeaderValue::from_static("v"));
        }
        let f = forward_headers(&h);
        let names: Vec<_> = f.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["accept"]);
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
        strip_response(&mut h);
        let mut names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["accept", "content-type"]);
    }

    #[test]
    fn bodies_decompress_per_content_encoding() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"{\"error\":\"x\"}").unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONTENT_ENCODING,
            HeaderValue::from_static("gzip"),
        );
        assert_eq!(
            decompress(&h, Bytes::from(gz.finish().unwrap())),
            Bytes::from_static(b"{\"error\":\"x\"}")
        );
        assert_eq!(
            decompress(&h, Bytes::from_static(b"not gzip")),
            Bytes::from_static(b"not gzip")
        );
        assert_eq!(
            decompress(&HeaderMap::new(), Bytes::from_static(b"plain")),
            Bytes::from_static(b"plain")
        );
    }
}
