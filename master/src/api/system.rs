//! Health, login, channel types, task status, integration info.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gpt_load_common::model::ChannelType;
use serde_json::json;

use super::response::{ApiResult, ReqLang, ok};
use crate::i18n;
use crate::state::AppState;

/// Go's `time.Duration.String()` for an uptime (`1h2m3.5s`).
pub fn go_duration(d: std::time::Duration) -> String {
    let total = d.as_secs_f64();
    let h = (total / 3600.0).floor() as u64;
    let m = ((total - h as f64 * 3600.0) / 60.0).floor() as u64;
    let s = total - h as f64 * 3600.0 - m as f64 * 60.0;
    let secs = format!("{s:.9}");
    let secs = secs.trim_end_matches('0').trim_end_matches('.');
    if h > 0 {
        format!("{h}h{m}m{secs}s")
    } else if m > 0 {
        format!("{m}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

pub async fn health(State(state): State<AppState>) -> Response {
    axum::Json(json!({
        "status": "healthy",
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "uptime": go_duration(state.started.elapsed()),
    }))
    .into_response()
}

/// `POST /api/auth/login` `{auth_key}` → `{success, message}`; failures throttled per address.
pub async fn login(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let ip = super::peer(&state, &parts);
    if let Some(wait) = state.login_throttle.blocked_for(&ip) {
        let mut r = (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(json!({"success": false, "message": i18n::tf(lang, "auth.too_many_attempts", &[("seconds", &wait.as_secs().max(1).to_string())])})),
        )
            .into_response();
        if let Ok(v) = axum::http::HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
        }
        return r;
    }
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let key = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| {
            v.get("auth_key")
                .and_then(|k| k.as_str())
                .map(str::to_owned)
        })
        .filter(|k| !k.is_empty());
    let Some(key) = key else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"message": i18n::t(lang, "auth.invalid_request"), "success": false})),
        )
            .into_response();
    };
    if state.cfg.auth_key.matches(&key) {
        state.login_throttle.record_success(&ip);
        axum::Json(
            json!({"success": true, "message": i18n::t(lang, "auth.authentication_successful")}),
        )
        .into_response()
    } else {
        state.login_throttle.record_failure(&ip);
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(
                json!({"success": false, "message": i18n::t(lang, "auth.authentication_failed")}),
            ),
        )
            .into_response()
    }
}

/// Channel types in a stable order (GPT-Load's order was random).
pub async fn channel_types(ReqLang(lang): ReqLang) -> ApiResult {
    ok(
        lang,
        ChannelType::ALL
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>(),
    )
}

pub async fn task_status(State(state): State<AppState>, ReqLang(lang): ReqLang) -> ApiResult {
    ok(lang, state.tasks.status())
}

/// `GET /api/integration/info?key=`: the groups a proxy key may use. Throttled like logins so it is
/// no oracle for guessing proxy keys.
pub async fn integration_info(State(state): State<AppState>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let ip = super::peer(&state, &parts);
    if let Some(wait) = state.worker.0.throttle.blocked_for(&ip) {
        return gpt_load_worker::proxy::throttled(wait);
    }
    let Some(key) = gpt_load_worker::integration::query_key(parts.uri.query()) else {
        return gpt_load_worker::error::json_error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
            "Proxy key is required",
        );
    };
    let snap = state.worker.snapshot();
    let groups = gpt_load_worker::integration::groups_for_key(&snap, &key);
    if groups.is_empty() {
        state.worker.0.throttle.record_failure(&ip);
        return gpt_load_worker::error::json_error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
            "Invalid or unauthorized proxy key",
        );
    }
    gpt_load_worker::integration::success(groups)
}

/// The OpenAPI document of the admin API (the UI's types are generated from it).
pub async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        include_str!("../../openapi.json"),
    )
        .into_response()
}

/// The master's gauges: the data plane's plus, in a cluster, workers and the record stream.
pub async fn master_gauges(state: &AppState) -> gpt_load_common::metrics::Gauges {
    let mut g = gpt_load_worker::metrics_endpoint::gauges(&state.worker, "master", false).await;
    if let Some(r) = &state.redis {
        use fred::prelude::StreamsInterface;
        g.workers_connected = Some(
            state
                .workers
                .list()
                .iter()
                .filter(|w| w.streams > 0)
                .count() as u64,
        );
        let pending: Result<u64, _> = r.client.xlen(r.keys.records()).await;
        g.records_stream_pending = pending.ok();
    }
    g
}

/// `GET /metrics` (with `METRICS_ENABLED=true`; admin key required).
pub async fn metrics(State(state): State<AppState>) -> Response {
    if !state.cfg.metrics_enabled {
        return super::not_found().await;
    }
    let g = master_gauges(&state).await;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        gpt_load_worker::metrics_endpoint::render(&g),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn uptime_formats_like_go() {
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(3723)), "1h2m3s");
        assert_eq!(go_duration(Duration::from_secs(120)), "2m0s");
    }
}
