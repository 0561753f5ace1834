//! What the mock does with a request: [`Behavior`], its per-key scripts, and
//! constructors for each vendor's error bodies.

use std::collections::HashMap;
use std::time::Duration;

use super::fixtures::{self, Fill};

/// How the mock answers one request.
///
/// Set per API key (or as the default for every key) with
/// [`MockUpstream::set_behavior`](super::MockUpstream::set_behavior).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Behavior {
    /// Answer in the vendor's wire format for the endpoint (JSON, or a stream when the
    /// request asked for one). The default.
    #[default]
    Ok,
    /// Answer exactly this status, body and extra headers. `Content-Type` defaults to
    /// `application/json` when the body starts with `{` or `[`, else `text/plain`.
    Status {
        /// HTTP status code (an invalid code becomes 500).
        code: u16,
        /// Raw response body.
        body: String,
        /// Extra response headers (invalid names or values are skipped).
        headers: Vec<(String, String)>,
    },
    /// Answer `code` with an error body in the format of the vendor whose endpoint was
    /// called (OpenAI, Anthropic or Gemini), carrying `message`.
    Error {
        /// HTTP status code.
        code: u16,
        /// Human-readable message put in the vendor's error object.
        message: String,
    },
    /// Never answer. The request stays pending until the client goes away (its
    /// [`Recorded::cancelled`](super::Recorded::cancelled) flag is then set and
    /// [`MockUpstream::cancelled_count`](super::MockUpstream::cancelled_count) goes up)
    /// or the mock is dropped.
    Hang,
    /// Close the TCP connection with a RST and no response (`SO_LINGER` 0, then the
    /// socket is dropped). On HTTP/2 this kills every stream of the connection.
    Reset,
    /// Wait this long, then answer as [`Behavior::Ok`].
    Delay(Duration),
    /// Answer with the endpoint's streaming format (whatever the request's `stream`
    /// flag) whose reply text is split into `chunks` content deltas. The head events and
    /// the first delta go out at once, then one delta every `interval`, then the closing
    /// events right after the last delta.
    SlowStream {
        /// Number of content deltas (the reply text is split evenly; some may be empty).
        chunks: usize,
        /// Pause between two successive deltas.
        interval: Duration,
    },
    /// Answer with the endpoint's streaming format, padded with filler content deltas
    /// (about 1 KiB each) until at least `bytes` bytes of body were produced. Frames are
    /// generated lazily, so the mock itself holds no more than one frame.
    LargeStream {
        /// Minimum total body size in bytes.
        bytes: usize,
    },
    /// Start the endpoint's stream, send the head events and `after_chunks` content
    /// deltas, then abort the response body mid-stream (HTTP/1: the connection is closed
    /// without the terminating chunk).
    AbortStream {
        /// Content deltas sent before the abort.
        after_chunks: usize,
    },
    /// Apply these in order to successive requests (of that key, or of all keys without
    /// their own behavior when set as the default); the last one then repeats. Nested
    /// sequences are flattened; an empty sequence is [`Behavior::Ok`].
    Sequence(Vec<Behavior>),
}

impl Behavior {
    /// `code` with an empty body.
    pub fn status(code: u16) -> Self {
        Self::Status {
            code,
            body: String::new(),
            headers: Vec::new(),
        }
    }

    /// `code` with this body (see [`Behavior::Status`] for the content type).
    pub fn status_with_body(code: u16, body: impl Into<String>) -> Self {
        Self::Status {
            code,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a response header; only meaningful on [`Behavior::Status`] (other variants
    /// are returned unchanged).
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        if let Self::Status { headers, .. } = &mut self {
            headers.push((name.into(), value.into()));
        }
        self
    }

    /// A sequence of behaviors (see [`Behavior::Sequence`]).
    pub fn sequence(steps: impl IntoIterator<Item = Behavior>) -> Self {
        Self::Sequence(steps.into_iter().collect())
    }

    /// `code` with an OpenAI error body (see [`openai_error_body`]).
    pub fn openai_error(code: u16, message: &str, kind: &str, err_code: Option<&str>) -> Self {
        Self::status_with_body(code, openai_error_body(message, kind, err_code))
    }

    /// `code` with an Anthropic error body (see [`anthropic_error_body`]).
    pub fn anthropic_error(code: u16, kind: &str, message: &str) -> Self {
        Self::status_with_body(code, anthropic_error_body(kind, message))
    }

    /// `code` with a Gemini error body (see [`gemini_error_body`]).
    pub fn gemini_error(code: u16, message: &str, status: &str) -> Self {
        Self::status_with_body(code, gemini_error_body(code, message, status))
    }

    /// OpenAI's 401 for a wrong key; the message contains `key` as OpenAI's does
    /// (OpenAI masks the middle; the mock keeps it whole so tests can find it).
    pub fn openai_invalid_key(key: &str) -> Self {
        Self::openai_error(
            401,
            &format!(
                "Incorrect API key provided: {key}. You can find your API key at https://platform.openai.com/account/api-keys."
            ),
            "invalid_request_error",
            Some("invalid_api_key"),
        )
    }

    /// Anthropic's 401 for a wrong key.
    pub fn anthropic_invalid_key() -> Self {
        Self::anthropic_error(401, "authentication_error", "invalid x-api-key")
    }

    /// Gemini's answer to a wrong key: 400 `INVALID_ARGUMENT` with reason `API_KEY_INVALID`.
    pub fn gemini_invalid_key() -> Self {
        Self::status_with_body(400, fixtures::GEMINI_INVALID_KEY.string(&[]))
    }

    /// OpenAI-style 429 with a `Retry-After: <secs>` header.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self::openai_error(
            429,
            "Rate limit reached for requests. Please try again later.",
            "requests",
            Some("rate_limit_exceeded"),
        )
        .with_header("retry-after", retry_after_secs.to_string())
    }

    /// Flattens nested sequences into a list of plain steps.
    fn flatten_into(self, out: &mut Vec<Behavior>) {
        match self {
            Self::Sequence(steps) => {
                for step in steps {
                    step.flatten_into(out);
                }
            }
            other => out.push(other),
        }
    }
}

/// OpenAI's error body: `{"error":{"message","type","param":null,"code"}}`.
pub fn openai_error_body(message: &str, kind: &str, code: Option<&str>) -> String {
    fixtures::OPENAI_ERROR.string(&[
        ("message", Fill::Str(message)),
        ("type", Fill::Str(kind)),
        ("code", Fill::OptStr(code)),
    ])
}

/// Anthropic's error body: `{"type":"error","error":{"type","message"}}`.
pub fn anthropic_error_body(kind: &str, message: &str) -> String {
    fixtures::ANTHROPIC_ERROR.string(&[("type", Fill::Str(kind)), ("message", Fill::Str(message))])
}

/// Gemini's (Google RPC) error body: `{"error":{"code","message","status"}}`.
pub fn gemini_error_body(code: u16, message: &str, status: &str) -> String {
    fixtures::GEMINI_ERROR.string(&[
        ("code", Fill::Num(code.into())),
        ("message", Fill::Str(message)),
        ("status", Fill::Str(status)),
    ])
}

/// OpenAI's `error.type` for a status code.
pub(super) fn openai_error_type(code: u16) -> (&'static str, Option<&'static str>) {
    match code {
        401 => ("invalid_request_error", Some("invalid_api_key")),
        403 => (
            "invalid_request_error",
            Some("unsupported_country_region_territory"),
        ),
        404 => ("invalid_request_error", Some("model_not_found")),
        429 => ("requests", Some("rate_limit_exceeded")),
        c if (400..500).contains(&c) => ("invalid_request_error", None),
        _ => ("server_error", None),
    }
}

/// Anthropic's `error.type` for a status code.
pub(super) fn anthropic_error_type(code: u16) -> &'static str {
    match code {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        c if (400..500).contains(&c) => "invalid_request_error",
        _ => "api_error",
    }
}

/// Google RPC status name for an HTTP status code.
pub(super) fn gemini_status(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        c if (400..500).contains(&c) => "FAILED_PRECONDITION",
        _ => "INTERNAL",
    }
}

/// One script: flattened steps and the index of the next one.
#[derive(Debug, Default)]
struct Script {
    steps: Vec<Behavior>,
    next: usize,
}

impl Script {
    fn new(behavior: Behavior) -> Self {
        let mut steps = Vec::new();
        behavior.flatten_into(&mut steps);
        Self { steps, next: 0 }
    }

    /// The behavior for the next request; the last step repeats.
    fn advance(&mut self) -> Behavior {
        let Some(last) = self.steps.len().checked_sub(1) else {
            return Behavior::Ok;
        };
        let step = self.steps[self.next.min(last)].clone();
        self.next = self.next.saturating_add(1);
        step
    }
}

/// Every script: one per key plus the default (whose sequence advances across all keys
/// that have no script of their own).
#[derive(Debug, Default)]
pub(super) struct Scripts {
    default: Script,
    per_key: HashMap<String, Script>,
}

impl Scripts {
    pub(super) fn set(&mut self, key: Option<&str>, behavior: Behavior) {
        let script = Script::new(behavior);
        match key {
            Some(key) => {
                self.per_key.insert(key.to_owned(), script);
            }
            None => self.default = script,
        }
    }

    pub(super) fn next_for(&mut self, key: Option<&str>) -> Behavior {
        if let Some(script) = key.and_then(|k| self.per_key.get_mut(k)) {
            return script.advance();
        }
        self.default.advance()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_flattens_and_repeats_last() {
        let mut scripts = Scripts::default();
        scripts.set(
            Some("k"),
            Behavior::sequence([
                Behavior::status(500),
                Behavior::sequence([Behavior::status(429), Behavior::Ok]),
            ]),
        );
        assert_eq!(scripts.next_for(Some("k")), Behavior::status(500));
        assert_eq!(scripts.next_for(Some("k")), Behavior::status(429));
        assert_eq!(scripts.next_for(Some("k")), Behavior::Ok);
        assert_eq!(scripts.next_for(Some("k")), Behavior::Ok);
        assert_eq!(scripts.next_for(Some("other")), Behavior::Ok);
        assert_eq!(scripts.next_for(None), Behavior::Ok);
    }
}
