//! Step 3: the request body, read once into `Bytes` (bounded, with a deadline) so that every
//! attempt can send it again.

use axum::body::Body;
use bytes::Bytes;
use http::header::HeaderMap;

use crate::body::{BodyError, Declared, Unread, read_limited};
use crate::error::ProxyError;
use crate::state::WorkerState;

/// Why the body was not read; a refused upload comes with its unread rest, to drain once the
/// request's concurrency slot is released.
pub(super) struct Refused {
    pub error: ProxyError,
    pub unread: Option<Unread>,
}

/// Reads the body within `MAX_REQUEST_BODY_MB` and `SERVER_READ_TIMEOUT`.
pub(super) async fn read(
    state: &WorkerState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, Refused> {
    let declared = Declared {
        len: headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok()),
        expects_continue: headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue")),
    };
    let limits = &state.0.limits;
    read_limited(body, declared, limits.max_body_bytes, limits.read_timeout)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge(rest) => Refused {
                error: ProxyError::BodyTooLarge(limits.max_body_bytes),
                unread: Some(rest),
            },
            BodyError::Timeout => Refused {
                error: ProxyError::BodyTimeout,
                unread: None,
            },
            BodyError::Read(e) => Refused {
                error: ProxyError::BodyRead(e),
                unread: None,
            },
        })
}
