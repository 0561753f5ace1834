//! Step 6: one upstream call through the group's client, bounded by the response-header timeout,
//! and what came of it — a response to stream back, or a failure classified for the key (the
//! upstream's error body read, bounded, only on a failover status).

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use gpt_load_common::secret::redact;
use http::StatusCode;
use http::header::{HeaderMap, HeaderValue};
use http_body_util::{BodyExt, Full};

use super::prepare::Prepared;
use super::request::RequestCtx;
use crate::decompress::decompress;
use crate::error::{ErrorShape, ProxyError};
use crate::failure::{self, Verdict};
use crate::state::GroupRuntime;

/// A failed attempt, kept so the last one can be answered to the client.
pub(super) struct Failed {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// No upstream answer: connect, reset or timeout.
    pub transport: bool,
}

impl Failed {
    /// The same failure with every copy of `key` masked.
    pub fn redacted(self, key: &str) -> Self {
        Self {
            body: Bytes::from(redact(&String::from_utf8_lossy(&self.body), key)),
            ..self
        }
    }

    /// The answer to the client: the upstream's own JSON error as sent, else the proxy's error
    /// in `shape`.
    pub fn render(self, shape: ErrorShape) -> Response {
        let text = || String::from_utf8_lossy(&self.body).into_owned();
        if self.transport {
            return ProxyError::Upstream {
                status: self.status,
                message: text(),
            }
            .render(shape);
        }
        let is_json_object =
            serde_json::from_slice::<serde_json::Value>(&self.body).is_ok_and(|v| v.is_object());
        if !is_json_object {
            return ProxyError::Upstream {
                status: self.status,
                message: text(),
            }
            .render(shape);
        }
        let retry_after = self.headers.get(http::header::RETRY_AFTER).cloned();
        let mut r = Response::new(Body::from(self.body));
        *r.status_mut() = self.status;
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(ra) = retry_after {
            r.headers_mut().insert(http::header::RETRY_AFTER, ra);
        }
        r
    }
}

/// What one attempt came to.
pub(super) enum AttemptOutcome {
    Success(Response),
    Failure {
        failed: Failed,
        verdict: Verdict,
        /// The upstream's error message (redacted, cut), for the log.
        message: String,
    },
}

/// Sends `req` for `ctx` through `member`'s client.
pub(super) async fn send(
    ctx: &RequestCtx,
    member: &GroupRuntime,
    req: Prepared,
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
    let uri = match http::Uri::try_from(req.url) {
        Ok(u) => u,
        Err(e) => {
            return transport_failure(
                StatusCode::BAD_GATEWAY,
                format!("invalid upstream URL: {e}"),
            );
        }
    };
    let mut upstream_req = http::Request::new(Full::new(req.body));
    *upstream_req.method_mut() = ctx.method.clone();
    let via_proxy = member.client.sends_to_proxy(&uri);
    *upstream_req.uri_mut() = uri;
    *upstream_req.headers_mut() = req.headers;
    if gpt_load_common::telemetry::tracing_enabled() && !tracing::Span::current().is_none() {
        gpt_load_common::telemetry::inject_current(upstream_req.headers_mut());
    }
    let cfg = &member.group.config;
    let header_timeout = if ctx.facts.stream {
        Duration::from_secs(cfg.response_header_timeout_s)
    } else {
        Duration::from_secs(cfg.response_header_timeout_s.min(cfg.request_timeout_s))
    };
    let sent = Instant::now();
    // Boxed before it is wrapped, as the attempt's future.
    let resp = tokio::time::timeout(
        header_timeout,
        Box::pin(member.client.request(ctx.thread, upstream_req)),
    )
    .await;
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
