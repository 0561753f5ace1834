//! Error responses of the proxy, in GPT-Load's shape `{"code": "...", "message": "..."}`.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode};

/// A JSON error response; `message` must already be free of secrets.
pub fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

pub fn unauthorized() -> Response {
    json_error(
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        "Authentication failed",
    )
}

pub fn group_not_found(name: &str) -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        &format!("Group '{name}' not found"),
    )
}

pub fn too_many_requests() -> Response {
    let mut r = json_error(
        StatusCode::TOO_MANY_REQUESTS,
        "TOO_MANY_REQUESTS",
        "Too many concurrent requests",
    );
    r.headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// 413, closing the connection: what is left of the refused body is not read.
pub fn body_too_large(limit: usize) -> Response {
    let mut r = json_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "REQUEST_TOO_LARGE",
        &format!("Request body too large (limit {limit} bytes)"),
    );
    r.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// 503 while a group's key pool is missing from Redis and being reloaded (`Retry-After: 1`).
pub fn key_state_missing(message: &str) -> Response {
    let mut r = json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "KEY_STATE_MISSING",
        message,
    );
    r.headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

pub fn no_keys(message: &str, retry_after: Option<std::time::Duration>) -> Response {
    let mut r = json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "NO_KEYS_AVAILABLE",
        message,
    );
    if let Some(d) = retry_after
        && let Ok(v) = HeaderValue::from_str(&d.as_secs().max(1).to_string())
    {
        r.headers_mut().insert(http::header::RETRY_AFTER, v);
    }
    r
}
