//! The proxy's own answers — every request it refuses or cannot serve — as one error type with one
//! conversion to a response, in the calling protocol's error shape: GPT-Load's
//! `{"code": "...", "message": "..."}` on `/proxy/{group}/…` (as GPT-Load 1.x answers), the
//! vendors' own shapes for clients of their protocols. Messages never hold a secret.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode};

/// Why the proxy answers a request itself instead of relaying an upstream's answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("Not Found")]
    NotFound,
    #[error("Authentication failed")]
    Unauthorized,
    /// A known access key that may not be used now: disabled, expired, or from this address.
    #[error("Authentication failed: {0}")]
    KeyRefused(&'static str),
    /// The caller's access key filters exclude this request; the message says which filter.
    #[error("{0}")]
    Forbidden(String),
    /// No group serves the model the caller asked for on this route.
    #[error("{0}")]
    ModelNotFound(String),
    /// The address failed authentication too often.
    #[error("Too many failed authentication attempts, retry in {} seconds", secs(*.0))]
    Throttled(Duration),
    #[error("Group '{0}' not found")]
    GroupNotFound(String),
    /// `MAX_CONCURRENT_REQUESTS` requests are in flight.
    #[error("Too many concurrent requests")]
    Concurrency,
    #[error(
        "The request path has a '.' or '..' segment (possibly percent-encoded); such paths are refused"
    )]
    DotSegment,
    #[error("Request body too large (limit {0} bytes)")]
    BodyTooLarge(usize),
    #[error("Timed out reading the request body")]
    BodyTimeout,
    #[error("Failed to read request body: {0}")]
    BodyRead(String),
    /// A request the group's rules refuse (a strict model redirect, say).
    #[error("{0}")]
    BadRequest(String),
    /// The key store (Redis) cannot be reached.
    #[error("Key store unavailable, retry shortly")]
    StoreUnavailable,
    /// No key can serve: none active, or all cooling (then `retry_after`).
    #[error("{message}")]
    NoKeys {
        message: &'static str,
        retry_after: Option<Duration>,
    },
    /// The group's key pool is missing from Redis and being reloaded.
    #[error(
        "The key state of this group is missing from Redis (Redis lost its data, or the group was just created); it is being reloaded from the database, retry shortly"
    )]
    KeyStateMissing,
    /// The proxy cannot make or finish the upstream call (a configuration it cannot use, an
    /// upstream answer it cannot process).
    #[error("{0}")]
    BadGateway(String),
    /// Every attempt failed in transport (connect, reset, timeout): the last one's status (502 or
    /// 504) and message, redacted.
    #[error("{message}")]
    Upstream { status: StatusCode, message: String },
    /// `CONNECT`: nothing here tunnels, and a 2xx would say the tunnel is open.
    #[error("CONNECT is not supported: this server is not a tunnelling proxy")]
    Connect,
}

fn secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}

/// The error shape a client understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorShape {
    /// GPT-Load's `{"code", "message"}`: `/proxy/{group}/…` and everything of GPT-Load 1.x.
    GptLoad,
    /// `{"error": {"message", "type", "code"}}`.
    OpenAi,
    /// `{"type": "error", "error": {"type", "message"}}`.
    Anthropic,
    /// `{"error": {"code", "message", "status"}}`.
    Gemini,
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound | Self::GroupNotFound(_) | Self::ModelNotFound(_) => {
                StatusCode::NOT_FOUND
            }
            Self::Unauthorized | Self::KeyRefused(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Throttled(_) | Self::Concurrency => StatusCode::TOO_MANY_REQUESTS,
            Self::DotSegment | Self::BodyRead(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::StoreUnavailable | Self::NoKeys { .. } | Self::KeyStateMissing => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::Upstream { status, .. } => *status,
            Self::Connect => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// GPT-Load's error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound | Self::GroupNotFound(_) => "NOT_FOUND",
            Self::ModelNotFound(_) => "MODEL_NOT_FOUND",
            Self::Unauthorized | Self::KeyRefused(_) => "UNAUTHORIZED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::Throttled(_) | Self::Concurrency => "TOO_MANY_REQUESTS",
            Self::DotSegment | Self::BodyRead(_) | Self::BadRequest(_) => "BAD_REQUEST",
            Self::BodyTooLarge(_) => "REQUEST_TOO_LARGE",
            Self::BodyTimeout => "REQUEST_TIMEOUT",
            Self::StoreUnavailable => "STORE_UNAVAILABLE",
            Self::NoKeys { .. } => "NO_KEYS_AVAILABLE",
            Self::KeyStateMissing => "KEY_STATE_MISSING",
            Self::BadGateway(_) => "BAD_GATEWAY",
            Self::Upstream { .. } => "UPSTREAM_ERROR",
            Self::Connect => "METHOD_NOT_ALLOWED",
        }
    }

    /// When the client may try again, for `Retry-After`.
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled(d) => Some(*d),
            Self::Concurrency | Self::KeyStateMissing => Some(Duration::from_secs(1)),
            Self::NoKeys { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The answer in GPT-Load's shape (the `/proxy/{group}/…` routes).
    pub fn into_response(self) -> Response {
        self.render(ErrorShape::GptLoad)
    }

    /// The answer in `shape`, with the headers the error calls for (`Retry-After`; `Connection:
    /// close` after a refused upload; `Allow` for `CONNECT`).
    pub fn render(self, shape: ErrorShape) -> Response {
        let status = self.status();
        let message = self.to_string();
        let body = match shape {
            ErrorShape::GptLoad => serde_json::json!({ "code": self.code(), "message": message }),
            ErrorShape::OpenAi => serde_json::json!({ "error": {
                "message": message,
                "type": openai_type(status),
                "param": null,
                "code": self.code().to_ascii_lowercase(),
            }}),
            ErrorShape::Anthropic => serde_json::json!({
                "type": "error",
                "error": { "type": anthropic_type(status), "message": message },
            }),
            ErrorShape::Gemini => serde_json::json!({ "error": {
                "code": status.as_u16(),
                "message": message,
                "status": gemini_status(status),
            }}),
        };
        let mut r = json_response(status, body.to_string());
        if let Some(d) = self.retry_after()
            && let Ok(v) = HeaderValue::from_str(&secs(d).to_string())
        {
            r.headers_mut().insert(http::header::RETRY_AFTER, v);
        }
        match self {
            // What is left of the refused upload is not read.
            Self::BodyTooLarge(_) => {
                r.headers_mut()
                    .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            }
            Self::Connect => {
                r.headers_mut().insert(
                    http::header::ALLOW,
                    HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
                );
            }
            _ => {}
        }
        r
    }
}

fn openai_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    }
}

fn anthropic_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

fn gemini_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 413 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        405 => "UNIMPLEMENTED",
        408 | 504 => "DEADLINE_EXCEEDED",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    }
}

/// A JSON response with `body` as it is.
fn json_response(status: StatusCode, body: String) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

/// A JSON error response in GPT-Load's shape for answers outside [`ProxyError`] (the integration
/// endpoint's); `message` must already be free of secrets.
pub fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        serde_json::json!({ "code": code, "message": message }).to_string(),
    )
}

/// 429 for an address that failed authentication too often (also the admin API's).
pub fn throttled(wait: Duration) -> Response {
    ProxyError::Throttled(wait).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(r: Response) -> serde_json::Value {
        let b = r.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&b).unwrap()
    }

    #[tokio::test]
    async fn gpt_load_shape_with_its_codes_and_headers() {
        let r = ProxyError::NoKeys {
            message: "Every key of this group is cooling down after rate limiting",
            retry_after: Some(Duration::from_millis(2500)),
        }
        .into_response();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "2");
        assert_eq!(
            body(r).await,
            serde_json::json!({"code": "NO_KEYS_AVAILABLE",
                "message": "Every key of this group is cooling down after rate limiting"})
        );
        let r = ProxyError::BodyTooLarge(10).into_response();
        assert_eq!(r.status(), 413);
        assert_eq!(r.headers()["connection"], "close");
        let r = ProxyError::Connect.into_response();
        assert_eq!(r.status(), 405);
        assert!(r.headers()["allow"].to_str().unwrap().starts_with("GET"));
        let r = ProxyError::Throttled(Duration::from_secs(42)).into_response();
        assert_eq!(r.headers()["retry-after"], "42");
        assert_eq!(
            body(r).await["message"],
            "Too many failed authentication attempts, retry in 42 seconds"
        );
    }

    #[tokio::test]
    async fn vendor_shapes() {
        let e = ProxyError::Unauthorized;
        assert_eq!(
            body(e.clone().render(ErrorShape::OpenAi)).await,
            serde_json::json!({"error": {"message": "Authentication failed",
                "type": "authentication_error", "param": null, "code": "unauthorized"}})
        );
        assert_eq!(
            body(e.clone().render(ErrorShape::Anthropic)).await,
            serde_json::json!({"type": "error", "error": {"type": "authentication_error",
                "message": "Authentication failed"}})
        );
        assert_eq!(
            body(e.render(ErrorShape::Gemini)).await,
            serde_json::json!({"error": {"code": 401, "message": "Authentication failed",
                "status": "UNAUTHENTICATED"}})
        );
    }
}
