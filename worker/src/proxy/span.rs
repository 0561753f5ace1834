//! The request's and each attempt's spans (exported only with OTLP tracing on; otherwise disabled
//! spans that cost nothing) and the request's metrics once its answer is known.

use std::sync::Arc;

use axum::response::Response;
use gpt_load_common::metrics::{GroupMetrics, Outcome};
use tracing::field::Empty;

use super::request::RequestCtx;
use super::send::AttemptOutcome;
use crate::state::GroupRuntime;

/// The request's span, a child of the client's W3C trace context when it sent one.
pub(super) fn request(ctx: &RequestCtx) -> tracing::Span {
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
pub(super) fn attempt(
    member: &GroupRuntime,
    model: &str,
    attempt: u32,
    key_id: i64,
) -> tracing::Span {
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

/// Records an attempt's outcome on its span.
pub(super) fn attempt_done(span: &tracing::Span, outcome: &AttemptOutcome) {
    if span.is_disabled() {
        return;
    }
    match outcome {
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

/// What the attempt loop tells the request's metrics.
#[derive(Default)]
pub(super) struct RunStats {
    pub attempts: u32,
    /// The metrics of the group the last attempt ran in.
    pub metrics: Option<Arc<GroupMetrics>>,
}

/// Records the request's answer on its span and in its group's metrics.
pub(super) fn request_done(
    span: &tracing::Span,
    metrics: &GroupMetrics,
    stats: &RunStats,
    resp: &Response,
    elapsed: std::time::Duration,
) {
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
    metrics.request(status, outcome);
    metrics.observe_request(elapsed);
}
