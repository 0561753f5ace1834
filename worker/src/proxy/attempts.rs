//! Steps 4–7, the attempt loop: pick the group an attempt runs in (an aggregate's member by
//! weight), a key from the key store and an upstream by weight; prepare and send the request; on
//! a failure that allows it, book it against the key and go again with the next key, up to
//! `max_retries` — moving to another member when one has no usable key.

use std::sync::Arc;
use std::time::Instant;

use axum::response::Response;
use gpt_load_common::keystore::{KeyStore, Selection};
use gpt_load_common::log_record::RequestType;
use gpt_load_common::metrics::RetryReason;
use gpt_load_common::secret::redact;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

use super::prepare::{NotPrepared, prepare};
use super::request::{Attempted, RequestCtx};
use super::send::{AttemptOutcome, Failed, send};
use super::span::RunStats;
use super::{outcome, respond, span};
use crate::error::ProxyError;
use crate::state::{GroupRuntime, Runtime, WorkerState};

/// Picks the group an attempt runs in: a native route's next candidate, the group itself, or an
/// aggregate member by weight, skipping `exhausted` ones.
fn pick_member<'a>(
    runtime: &'a Runtime,
    ctx: &'a RequestCtx,
    exhausted: &[i64],
) -> Option<&'a Arc<GroupRuntime>> {
    let original = &ctx.original;
    if let Some(table) = &ctx.routed {
        let id = table.pick(|id| !exhausted.contains(&id) && runtime.group_by_id(id).is_some())?;
        return runtime.group_by_id(id);
    }
    if !original.group.is_aggregate() {
        return (!exhausted.contains(&original.group.id())).then_some(original);
    }
    let id = original
        .members
        .pick_where(|id| !exhausted.contains(id) && runtime.group_by_id(*id).is_some())?;
    runtime.group_by_id(*id)
}

/// Runs attempts until one succeeds or none is left; the client's answer.
pub(super) async fn run(
    state: &WorkerState,
    runtime: &Runtime,
    mut ctx: RequestCtx,
    permit: OwnedSemaphorePermit,
    stats: &mut RunStats,
) -> Response {
    let store = &state.0.store;
    let mut exhausted: Vec<i64> = Vec::new();
    let mut last_failure: Option<Failed> = None;
    let mut attempt: u32 = 0;
    let mut permit = Some(permit);
    loop {
        let Some(member) = pick_member(runtime, &ctx, &exhausted) else {
            return match last_failure {
                Some(f) => f.render(ctx.shape),
                None => ProxyError::NoKeys {
                    message: if ctx.routed.is_some() {
                        "No group serving this model has an available key"
                    } else if ctx.original.group.is_aggregate() {
                        "No available sub-groups"
                    } else {
                        "No active API keys available for this group"
                    },
                    retry_after: None,
                }
                .render(ctx.shape),
            };
        };
        // Aggregates and native routes have other groups to move to.
        let has_alternatives = ctx.routed.is_some() || ctx.original.group.is_aggregate();
        let member = member.clone();
        let group_id = member.group.id();
        let unserved = |ctx: &mut RequestCtx, error: &ProxyError| {
            let at = Attempted {
                member: &member,
                key: None,
                upstream_addr: String::new(),
            };
            state
                .0
                .records
                .log(ctx.record(at, 503, &error.to_string(), RequestType::Final));
        };
        let key = match store.select(group_id, ctx.thread).await {
            Ok(Selection::Key(k)) => k,
            Err(e) => {
                tracing::warn!(group = member.group.name(), error = %e, "key store unavailable");
                let error = ProxyError::StoreUnavailable;
                unserved(&mut ctx, &error);
                return error.render(ctx.shape);
            }
            Ok(other) => {
                exhausted.push(group_id);
                if has_alternatives && pick_member(runtime, &ctx, &exhausted).is_some() {
                    continue;
                }
                if let Some(f) = last_failure {
                    return f.render(ctx.shape);
                }
                let error = match other {
                    Selection::PoolMissing => ProxyError::KeyStateMissing,
                    Selection::AllCooling { retry_after } => ProxyError::NoKeys {
                        message: "Every key of this group is cooling down after rate limiting",
                        retry_after: Some(retry_after),
                    },
                    _ => ProxyError::NoKeys {
                        message: "No active API keys available for this group",
                        retry_after: None,
                    },
                };
                unserved(&mut ctx, &error);
                return error.render(ctx.shape);
            }
        };
        member.metrics.key_selected();
        stats.attempts = attempt + 1;
        stats.metrics = Some(member.metrics.clone());
        let is_last = attempt >= member.group.config.max_retries;
        let Some(upstream) = member.upstreams.pick() else {
            exhausted.push(group_id);
            if has_alternatives && pick_member(runtime, &ctx, &exhausted).is_some() {
                continue;
            }
            return ProxyError::BadGateway(
                "No upstream with a weight above 0 is configured for this group".into(),
            )
            .render(ctx.shape);
        };
        let mut prepared = match prepare(&ctx, &member, upstream, &key.key) {
            Ok(p) => p,
            Err(NotPrepared {
                error,
                upstream_addr,
            }) => {
                let at = Attempted {
                    member: &member,
                    key: Some(&key.key),
                    upstream_addr,
                };
                let rec = ctx.record(at, 400, &error.to_string(), RequestType::Final);
                state.0.records.log(rec);
                return error.render(ctx.shape);
            }
        };
        let upstream_addr = std::mem::take(&mut prepared.upstream_addr);
        let attempt_start = Instant::now();
        let attempt_span = span::attempt(&member, &ctx.facts.model, attempt, key.key.id);
        let result = Box::pin(send(&ctx, &member, prepared, &key.key.value))
            .instrument(attempt_span.clone())
            .await;
        span::attempt_done(&attempt_span, &result);
        match result {
            AttemptOutcome::Success(resp) => {
                outcome::succeeded(state, group_id, &key);
                let at = Attempted {
                    member: &member,
                    key: Some(&key.key),
                    upstream_addr,
                };
                let rec = ctx.record(at, resp.status().as_u16(), "", RequestType::Final);
                if respond::is_rewritten_model_list(&ctx, &member) {
                    // Boxed: a rare path kept out of every request's future.
                    return Box::pin(respond::model_list(state, &ctx, &member, resp, rec)).await;
                }
                return respond::relay(
                    state,
                    &ctx,
                    &member,
                    resp,
                    rec,
                    attempt_start,
                    permit.take(),
                );
            }
            AttemptOutcome::Failure {
                failed,
                verdict,
                message,
            } => {
                let message = redact(&message, &key.key.value);
                outcome::failed(state, &member, &key, &verdict, ctx.thread).await;
                // A native route moves on to its next group when this one's retries are spent.
                let next_group =
                    is_last && verdict.retry_with_next_key && ctx.routed.is_some() && {
                        exhausted.push(group_id);
                        pick_member(runtime, &ctx, &exhausted).is_some()
                    };
                let last = (is_last || !verdict.retry_with_next_key) && !next_group;
                let kind = if last {
                    RequestType::Final
                } else {
                    RequestType::Retry
                };
                let at = Attempted {
                    member: &member,
                    key: Some(&key.key),
                    upstream_addr,
                };
                let rec = ctx.record(at, failed.status.as_u16(), &message, kind);
                state.0.records.log(rec);
                let failed = failed.redacted(&key.key.value);
                if last {
                    return failed.render(ctx.shape);
                }
                member.metrics.retry(if failed.transport {
                    RetryReason::Transport
                } else if verdict.cool_down.is_some() {
                    RetryReason::RateLimited
                } else {
                    RetryReason::Status
                });
                last_failure = Some(failed);
                attempt = if next_group { 0 } else { attempt + 1 };
            }
        }
    }
}
