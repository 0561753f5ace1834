//! Health, login, channel types, task status, integration info.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gpt_load_common::model::ChannelType;
use serde::Serialize;
use utoipa::ToSchema;

use super::response::{ApiResult, LoginReply, Msg, ok};
use super::schema::{ChannelType as ChannelTypeDoc, Envelope, ErrorResponse};
use crate::service::tasks::TaskStatus;
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

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `healthy`.
    pub status: &'static str,
    /// RFC 3339, UTC.
    pub timestamp: String,
    /// Go's duration format, e.g. `1h2m3.5s`.
    pub uptime: String,
}

#[utoipa::path(get, path = "/health", tag = "system", operation_id = "health",
    summary = "Liveness", security(()), responses((status = 200, body = Health)))]
pub async fn health(State(state): State<AppState>) -> axum::Json<Health> {
    axum::Json(Health {
        status: "healthy",
        timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        uptime: go_duration(state.started.elapsed()),
    })
}

#[derive(Debug, serde::Deserialize, ToSchema)]
pub struct LoginRequest {
    pub auth_key: String,
}

/// The login answer (not the envelope).
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    pub success: bool,
    /// Localised.
    pub message: String,
}

/// `POST /api/auth/login` `{auth_key}` → `{success, message}`; failures throttled per address.
#[utoipa::path(post, path = "/api/auth/login", tag = "system", operation_id = "login",
    summary = "Check the admin key", security(()), request_body = LoginRequest,
    responses((status = 200, description = "The key is right", body = LoginResponse),
        (status = 400, description = "No `auth_key` in the body", body = LoginResponse),
        (status = 401, description = "The key is wrong", body = LoginResponse),
        (status = 429, description = "Too many failures from this address; see `Retry-After`",
            body = LoginResponse)))]
pub async fn login(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let ip = super::peer(&state, &parts);
    if let Some(wait) = state.login_throttle.blocked_for(&ip) {
        let secs = wait.as_secs().max(1).to_string();
        let mut r = LoginReply {
            status: StatusCode::TOO_MANY_REQUESTS,
            success: false,
            message: Msg::with("auth.too_many_attempts", &[("seconds", &secs)]),
        }
        .into_response();
        if let Ok(v) = axum::http::HeaderValue::from_str(&secs) {
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
        }
        return r;
    }
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    // Any malformed body is the same "invalid request" (GPT-Load's answer), not a JSON error.
    let key = serde_json::from_slice::<LoginRequest>(&bytes)
        .ok()
        .map(|r| r.auth_key)
        .filter(|k| !k.is_empty());
    let reply = |status, success, id| LoginReply {
        status,
        success,
        message: Msg::id(id),
    };
    let Some(key) = key else {
        return reply(StatusCode::BAD_REQUEST, false, "auth.invalid_request").into_response();
    };
    if state.cfg.auth_key.matches(&key) {
        state.login_throttle.record_success(&ip);
        reply(StatusCode::OK, true, "auth.authentication_successful").into_response()
    } else {
        state.login_throttle.record_failure(&ip);
        reply(
            StatusCode::UNAUTHORIZED,
            false,
            "auth.authentication_failed",
        )
        .into_response()
    }
}

/// Channel types in a stable order (GPT-Load's order was random).
#[utoipa::path(get, path = "/api/channel-types", tag = "system", operation_id = "channelTypes",
    summary = "The channel types a group may have",
    responses((status = 200, body = Envelope<Vec<ChannelTypeDoc>>)))]
pub async fn channel_types() -> ApiResult<Vec<&'static str>> {
    ok(ChannelType::ALL.iter().map(|c| c.as_str()).collect())
}

#[utoipa::path(get, path = "/api/tasks/status", tag = "keys", operation_id = "taskStatus",
    summary = "The current or last task", responses((status = 200, body = Envelope<TaskStatus>)))]
pub async fn task_status(State(state): State<AppState>) -> ApiResult<TaskStatus> {
    ok(state.tasks.status())
}

/// A group a proxy key may use, and its proxy path.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntegrationGroup {
    pub name: String,
    pub display_name: String,
    #[schema(value_type = ChannelTypeDoc)]
    pub channel_type: String,
    /// `/proxy/{name}`.
    pub path: String,
}

/// `GET /api/integration/info?key=`: the groups a proxy key may use. Throttled like logins so it is
/// no oracle for guessing proxy keys.
#[utoipa::path(get, path = "/api/integration/info", tag = "system", operation_id = "integrationInfo",
    summary = "The groups a proxy key may use", security(()),
    params(("key" = String, Query, description = "A proxy key")),
    responses((status = 200, body = Envelope<Vec<IntegrationGroup>>), (status = 400, body = ErrorResponse),
        (status = 429, body = ErrorResponse)))]
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
