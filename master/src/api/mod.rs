//! The admin REST API (`/api/*`, `/health`): GPT-Load's paths, JSON shapes and error envelope.
//!
//! Layers, outer → inner: request body limit → (per route group) admin authentication (constant-time
//! `AUTH_KEY` compare, failures throttled per address) → handlers. Handlers are thin: they parse and
//! validate input, call services and repositories, and shape GPT-Load's responses. Every request
//! and response body is a type (serde), and `doc` generates the OpenAPI document from them.

pub mod access_keys;
pub mod dashboard;
pub mod doc;
pub mod groups;
pub mod keys;
pub mod logs;
pub mod response;
pub mod route;
pub mod schema;
pub mod settings;
pub mod system;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use gpt_load_worker::proxy::{extract_client_key, throttled};

use crate::state::AppState;

/// Largest admin request body (key imports can be large).
pub const MAX_ADMIN_BODY: usize = 64 * 1024 * 1024;

/// `404 {"error":"Not Found"}` for unknown `/api` and `/proxy` paths.
pub async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({"error": "Not Found"})),
    )
        .into_response()
}

async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        axum::Json(serde_json::json!({"error": "Method not allowed"})),
    )
        .into_response()
}

/// Client address for throttling (peer address; forwarded headers only from trusted proxies).
pub fn peer(state: &AppState, parts: &axum::http::request::Parts) -> String {
    let trusted = &state.worker.0.limits.trusted_proxies;
    gpt_load_worker::client_ip::client_ip(parts, trusted)
}

/// Admin authentication: `AUTH_KEY` as Bearer, `X-Api-Key`, `X-Goog-Api-Key` or `?key=`.
async fn require_admin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let ip = peer(&state, &parts);
    if let Some(wait) = state.login_throttle.blocked_for(&ip) {
        return throttled(wait);
    }
    let (key, _) = extract_client_key(&parts.headers, parts.uri.query());
    if key.is_empty() || !state.cfg.auth_key.matches(&key) {
        state.login_throttle.record_failure(&ip);
        return response::ApiError::unauthorized().into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}

/// A span per admin request when OTLP export is on, named by route template (never the raw path)
/// and parented on the caller's W3C trace context.
pub async fn trace_span(req: Request, next: Next) -> Response {
    use tracing::Instrument;
    if !gpt_load_common::telemetry::sample(req.headers()) {
        return next.run(req).await;
    }
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!(
        target: "gpt_load::api",
        "admin",
        otel.name = %format_args!("{} {}", req.method(), route),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %req.method(),
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
    );
    gpt_load_common::telemetry::set_remote_parent(&span, req.headers());
    let resp = next.run(req).instrument(span.clone()).await;
    span.record("http.response.status_code", resp.status().as_u16());
    if resp.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    resp
}

/// Security headers on every response (GPT-Load's set).
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.entry("x-content-type-options")
        .or_insert(HeaderValue::from_static("nosniff"));
    h.entry("referrer-policy")
        .or_insert(HeaderValue::from_static("strict-origin-when-cross-origin"));
    h.entry("permissions-policy")
        .or_insert(HeaderValue::from_static(
            "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
        ));
    h.entry("x-frame-options")
        .or_insert(HeaderValue::from_static("SAMEORIGIN"));
    resp
}

/// All admin routes.
pub fn router(state: AppState) -> Router {
    let protected = Router::new()
        .route("/channel-types", get(system::channel_types))
        .route("/groups", post(groups::create).get(groups::list))
        .route("/groups/list", get(groups::list_lite))
        .route("/groups/config-options", get(groups::config_options))
        .route("/groups/reorder", put(groups::reorder))
        .route("/groups/{id}", put(groups::update).delete(groups::delete))
        .route("/groups/{id}/stats", get(groups::stats))
        .route("/groups/{id}/copy", post(groups::copy))
        .route(
            "/groups/{id}/models/discover",
            post(groups::discover_models),
        )
        .route(
            "/groups/{id}/sub-groups",
            get(groups::sub_groups).post(groups::add_sub_groups),
        )
        .route(
            "/groups/{id}/sub-groups/{sub}/weight",
            put(groups::update_sub_group_weight),
        )
        .route(
            "/groups/{id}/sub-groups/{sub}",
            axum::routing::delete(groups::delete_sub_group),
        )
        .route(
            "/groups/{id}/parent-aggregate-groups",
            get(groups::parent_aggregates),
        )
        .route("/keys", get(keys::list))
        .route("/keys/export", get(keys::export))
        .route("/keys/add-multiple", post(keys::add_multiple))
        .route("/keys/add-async", post(keys::add_async))
        .route("/keys/delete-multiple", post(keys::delete_multiple))
        .route("/keys/delete-async", post(keys::delete_async))
        .route("/keys/restore-multiple", post(keys::restore_multiple))
        .route("/keys/restore-all-invalid", post(keys::restore_all_invalid))
        .route("/keys/clear-all-invalid", post(keys::clear_all_invalid))
        .route("/keys/clear-all", post(keys::clear_all))
        .route("/keys/validate-group", post(keys::validate_group))
        .route("/keys/test-multiple", post(keys::test_multiple))
        .route("/keys/{id}/notes", put(keys::update_notes))
        .route("/tasks/status", get(system::task_status))
        .route("/dashboard/stats", get(dashboard::stats))
        .route("/dashboard/chart", get(dashboard::chart))
        .route(
            "/dashboard/encryption-status",
            get(dashboard::encryption_status),
        )
        .route("/logs", get(logs::list))
        .route("/logs/export", get(logs::export))
        .route("/settings", get(settings::get).put(settings::update))
        .route(
            "/access-keys",
            get(access_keys::list).post(access_keys::create),
        )
        .route(
            "/access-keys/{id}",
            put(access_keys::update).delete(access_keys::delete),
        )
        .route("/route/inspect", post(route::inspect))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin));
    let api = Router::new()
        .route("/auth/login", post(system::login))
        .route("/integration/info", get(system::integration_info))
        .route("/openapi.json", get(doc::serve))
        .merge(protected)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_ADMIN_BODY))
        .layer(middleware::from_fn(response::localise));
    let metrics = Router::new()
        .route("/metrics", get(system::metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin));
    Router::new()
        .route("/health", get(system::health))
        .merge(metrics)
        .nest("/api", api)
        .with_state(state)
}
