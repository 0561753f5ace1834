//! Request bodies read once (bounded), and the response body wrapper that finishes the request's
//! log record when the last byte has gone to the client — or when the client went away.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use bytes::Bytes;
use gpt_load_common::log_record::{RecordSender, RequestLogRecord};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::OwnedSemaphorePermit;

/// Why a request body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Over the limit; what is left of the upload, to [`Unread::drain`] once the request's
    /// resources are released.
    TooLarge(Unread),
    Timeout,
    Read(String),
}

/// The unread rest of a refused request body.
pub struct Unread(Option<Body>);

impl std::fmt::Debug for Unread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Unread")
    }
}

impl Unread {
    /// Reads and discards the rest of the body, up to [`DRAIN_MAX_BYTES`] and
    /// [`DRAIN_MAX_TIME`], so a client still uploading reads the refusal rather than a reset.
    pub async fn drain(self) {
        let Some(mut body) = self.0 else {
            return;
        };
        let mut left = DRAIN_MAX_BYTES;
        let _ = tokio::time::timeout(DRAIN_MAX_TIME, async {
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(d) = frame.data_ref() {
                    left = left.saturating_sub(d.len() as u64);
                    if left == 0 {
                        return;
                    }
                }
            }
        })
        .await;
    }
}

/// How much of an oversized body is read and thrown away before the 413 goes out, and for how
/// long: a client still uploading then reads the answer instead of a reset connection (nginx's
/// lingering close does the same). Past these bounds the connection is closed regardless.
const DRAIN_MAX_BYTES: u64 = 64 * 1024 * 1024;
const DRAIN_MAX_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// The request facts [`read_limited`] goes by.
#[derive(Debug, Clone, Copy)]
pub struct Declared {
    /// `Content-Length`, when sent.
    pub len: Option<u64>,
    /// `Expect: 100-continue`: the client waits for a go-ahead before sending the body.
    pub expects_continue: bool,
}

/// Reads the whole body, refusing more than `limit` bytes. A refused body comes back as
/// [`BodyError::TooLarge`] with the rest to drain; answer it with `Connection: close`.
pub async fn read_limited(
    mut body: Body,
    declared: Declared,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, BodyError> {
    if let Some(n) = declared.len.filter(|n| *n > limit as u64) {
        // Reading would send `100 Continue` and invite the upload; past the drain bound the
        // connection is closed anyway.
        let rest = (!declared.expects_continue && n <= DRAIN_MAX_BYTES).then_some(body);
        return Err(BodyError::TooLarge(Unread(rest)));
    }
    // Borrowed, so that a refused body is still here to drain.
    let read = http_body_util::Limited::new(&mut body, limit).collect();
    match tokio::time::timeout(timeout, read).await {
        Err(_) => Err(BodyError::Timeout),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(BodyError::TooLarge(Unread(Some(body))))
        }
        Ok(Err(e)) => Err(BodyError::Read(e.to_string())),
    }
}

/// Passes an upstream body through frame by frame (no buffering, no copying) and sends the log
/// record when the body ends, fails, or is dropped because the client disconnected. Dropping it
/// also drops the upstream body, which cancels the upstream request.
/// Per-response metric work: time to first byte and token usage.
pub struct BodyTap {
    pub metrics: std::sync::Arc<gpt_load_common::metrics::GroupMetrics>,
    pub attempt_start: Instant,
    pub scan_tokens: bool,
}

pub struct LoggedBody<B: HttpBody> {
    inner: B,
    tap: Option<BodyTap>,
    first_byte: bool,
    tokens: gpt_load_common::metrics::TokenScan,
    record: Option<RequestLogRecord>,
    records: RecordSender,
    start: Instant,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl<B: HttpBody> LoggedBody<B> {
    pub fn new(
        inner: B,
        record: RequestLogRecord,
        records: RecordSender,
        start: Instant,
        deadline: Option<tokio::time::Instant>,
        permit: Option<OwnedSemaphorePermit>,
        tap: Option<BodyTap>,
    ) -> Self {
        Self {
            inner,
            tap,
            first_byte: false,
            tokens: Default::default(),
            record: Some(record),
            records,
            start,
            deadline: deadline.map(|d| Box::pin(tokio::time::sleep_until(d))),
            _permit: permit,
        }
    }

    fn finish(&mut self, error: Option<String>) {
        if let Some(tap) = &self.tap
            && (self.tokens.prompt > 0 || self.tokens.completion > 0)
        {
            tap.metrics
                .tokens(self.tokens.prompt, self.tokens.completion);
            self.tokens = Default::default();
        }
        if let Some(mut rec) = self.record.take() {
            rec.duration_ms = self.start.elapsed().as_millis() as i64;
            rec.timestamp = chrono::Utc::now();
            if let Some(e) = error {
                rec.is_success = false;
                rec.error_message = e;
            }
            self.records.log(rec);
        }
    }
}

impl<B: HttpBody> Drop for LoggedBody<B> {
    fn drop(&mut self) {
        if self.record.is_some() {
            if self.inner.is_end_stream() {
                self.finish(None);
            } else {
                self.finish(Some(
                    "client disconnected before the response completed".into(),
                ));
            }
        }
    }
}

impl<B> HttpBody for LoggedBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Some(d) = this.deadline.as_mut()
            && d.as_mut().poll(cx).is_ready()
        {
            this.finish(Some(
                "request timeout while reading the upstream response".into(),
            ));
            return Poll::Ready(Some(Err(axum::Error::new("upstream response timed out"))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.finish(None);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                let msg = format!("upstream stream error: {e}");
                this.finish(Some(msg.clone()));
                Poll::Ready(Some(Err(axum::Error::new(msg))))
            }
            Poll::Ready(Some(Ok(f))) => {
                if let (Some(tap), Some(data)) = (&this.tap, f.data_ref()) {
                    if !this.first_byte {
                        this.first_byte = true;
                        tap.metrics.observe_ttfb(tap.attempt_start.elapsed());
                    }
                    if tap.scan_tokens {
                        this.tokens.feed(data);
                    }
                }
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

use std::future::Future as _;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn chunks(parts: &[&'static str]) -> Body {
        let frames: Vec<Result<Bytes, std::io::Error>> = parts
            .iter()
            .map(|p| Ok(Bytes::from_static(p.as_bytes())))
            .collect();
        Body::from_stream(futures::stream::iter(frames))
    }

    #[tokio::test]
    async fn bodies_are_joined_and_bounded() {
        let t = Duration::from_secs(5);
        let none = Declared {
            len: None,
            expects_continue: false,
        };
        let one = read_limited(chunks(&["abc"]), none, 10, t).await.unwrap();
        assert_eq!(one, "abc");
        let many = read_limited(chunks(&["ab", "cd", "e"]), none, 10, t)
            .await
            .unwrap();
        assert_eq!(many, "abcde");
        let empty = read_limited(chunks(&[]), none, 10, t).await.unwrap();
        assert!(empty.is_empty());
        assert!(matches!(
            read_limited(chunks(&["abcdef", "ghijk"]), none, 10, t).await,
            Err(BodyError::TooLarge(Unread(Some(_))))
        ));
        let declared = Declared {
            len: Some(11),
            expects_continue: false,
        };
        assert!(matches!(
            read_limited(chunks(&["ab"]), declared, 10, t).await,
            Err(BodyError::TooLarge(Unread(Some(_))))
        ));
        let waiting = Declared {
            expects_continue: true,
            ..declared
        };
        assert!(
            matches!(
                read_limited(chunks(&["ab"]), waiting, 10, t).await,
                Err(BodyError::TooLarge(Unread(None)))
            ),
            "a client waiting for 100 Continue is not invited to upload"
        );
    }
}
