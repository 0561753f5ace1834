//! Streaming answers: each vendor's event framing ([`StreamFormat`]) and a driver that
//! paces the frames ([`stream_body`]).
//!
//! Every stream is *head* frames (sent at once), *content deltas* (whose texts
//! concatenate to the reply, plus filler for large streams) and *tail* frames (finish
//! reason, usage, terminator).

use std::collections::VecDeque;
use std::sync::LazyLock;
use std::time::Duration;

use axum::body::Body;
use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Value, json};

use super::CancelGuard;
use super::wire::{self, Prompt};

/// The streaming wire format of one endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StreamKind {
    /// OpenAI chat: `data: <chat.completion.chunk>` lines, then `data: [DONE]`.
    Chat,
    /// OpenAI Responses: `event: response.*` + `data:` lines.
    Responses,
    /// Anthropic Messages: `event: message_start` … `message_stop`.
    Anthropic,
    /// Gemini `streamGenerateContent?alt=sse`: `data: <GenerateContentResponse>`.
    GeminiSse,
    /// Gemini `streamGenerateContent` without `alt=sse`: one JSON array, streamed.
    GeminiArray,
}

impl StreamKind {
    pub(super) fn content_type(self) -> &'static str {
        match self {
            Self::GeminiArray => "application/json; charset=UTF-8",
            _ => "text/event-stream; charset=utf-8",
        }
    }
}

/// Renders one stream's frames.
pub(super) struct StreamFormat {
    kind: StreamKind,
    id: String,
    msg_id: String,
    model: String,
    created: u64,
    prompt_tokens: u64,
    include_usage: bool,
    /// Responses API `sequence_number`.
    event_seq: u64,
    /// Gemini array: nothing written yet (the next element opens the array).
    first: bool,
}

fn sse_data(v: &Value) -> Bytes {
    let mut buf = BytesMut::with_capacity(256).writer();
    buf.get_mut().put_slice(b"data: ");
    let _ = serde_json::to_writer(&mut buf, v);
    let mut buf = buf.into_inner();
    buf.put_slice(b"\n\n");
    buf.freeze()
}

fn sse_event(name: &str, v: &Value) -> Bytes {
    let mut buf = BytesMut::with_capacity(256).writer();
    buf.get_mut().put_slice(b"event: ");
    buf.get_mut().put_slice(name.as_bytes());
    buf.get_mut().put_slice(b"\ndata: ");
    let _ = serde_json::to_writer(&mut buf, v);
    let mut buf = buf.into_inner();
    buf.put_slice(b"\n\n");
    buf.freeze()
}

impl StreamFormat {
    pub(super) fn new(kind: StreamKind, seq: u64, created: u64, prompt: &Prompt<'_>) -> Self {
        let id = match kind {
            StreamKind::Chat => wire::make_id("chatcmpl-mock", seq),
            StreamKind::Responses => wire::make_id("resp_mock", seq),
            StreamKind::Anthropic => wire::make_id("msg_mock", seq),
            StreamKind::GeminiSse | StreamKind::GeminiArray => wire::make_id("mock-resp-", seq),
        };
        Self {
            kind,
            id,
            msg_id: wire::make_id("msg_mock", seq),
            model: prompt.model.clone().into_owned(),
            created,
            prompt_tokens: prompt.prompt_tokens,
            include_usage: prompt.include_usage,
            event_seq: 0,
            first: true,
        }
    }

    pub(super) fn content_type(&self) -> &'static str {
        self.kind.content_type()
    }

    fn chat_chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "service_tier": "default",
            "system_fingerprint": "fp_mock",
            "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }]
        });
        if self.include_usage
            && let Some(obj) = chunk.as_object_mut()
        {
            obj.insert("usage".to_owned(), Value::Null);
        }
        chunk
    }

    /// A Responses API event: adds `type` and `sequence_number`.
    fn responses_event(&mut self, name: &str, mut payload: Value) -> Bytes {
        if let Some(obj) = payload.as_object_mut() {
            obj.insert("type".to_owned(), json!(name));
            obj.insert("sequence_number".to_owned(), json!(self.event_seq));
        }
        self.event_seq += 1;
        sse_event(name, &payload)
    }

    fn responses_object(&self, text: Option<&str>) -> Value {
        let prompt = self.prompt();
        wire::responses_object(&self.id, &self.msg_id, self.created, &prompt, text)
    }

    /// A stand-in prompt for the shared object builders.
    fn prompt(&self) -> Prompt<'_> {
        let mut p = Prompt::empty(self.model.as_str().into());
        p.prompt_tokens = self.prompt_tokens;
        p
    }

    /// One Gemini chunk (already JSON) framed for the stream's kind.
    fn gemini_frame(&mut self, chunk: &[u8], last: bool) -> Bytes {
        let mut buf = BytesMut::with_capacity(chunk.len() + 16);
        match self.kind {
            StreamKind::GeminiArray => {
                let sep: &[u8] = if self.first { b"[" } else { b",\r\n" };
                self.first = false;
                buf.put_slice(sep);
                buf.put_slice(chunk);
                if last {
                    buf.put_slice(b"]");
                }
            }
            _ => {
                buf.put_slice(b"data: ");
                buf.put_slice(chunk);
                buf.put_slice(b"\r\n\r\n");
            }
        }
        buf.freeze()
    }

    /// Frames sent before any content.
    pub(super) fn head(&mut self) -> Vec<Bytes> {
        match self.kind {
            StreamKind::Chat => vec![sse_data(&self.chat_chunk(
                json!({ "role": "assistant", "content": "", "refusal": null }),
                None,
            ))],
            StreamKind::Responses => {
                let created = json!({ "response": self.responses_object(None) });
                let in_progress = created.clone();
                let item = json!({
                    "output_index": 0,
                    "item": wire::responses_message_item(&self.msg_id, "in_progress", None)
                });
                let part = json!({
                    "item_id": self.msg_id,
                    "output_index": 0,
                    "content_index": 0,
                    "part": { "type": "output_text", "text": "", "annotations": [], "logprobs": [] }
                });
                vec![
                    self.responses_event("response.created", created),
                    self.responses_event("response.in_progress", in_progress),
                    self.responses_event("response.output_item.added", item),
                    self.responses_event("response.content_part.added", part),
                ]
            }
            StreamKind::Anthropic => {
                let message = wire::anthropic_message(&self.id, &self.prompt(), None);
                vec![
                    sse_event(
                        "message_start",
                        &json!({ "type": "message_start", "message": message }),
                    ),
                    sse_event(
                        "content_block_start",
                        &json!({
                            "type": "content_block_start",
                            "index": 0,
                            "content_block": { "type": "text", "text": "" }
                        }),
                    ),
                    sse_event("ping", &json!({ "type": "ping" })),
                ]
            }
            StreamKind::GeminiSse | StreamKind::GeminiArray => Vec::new(),
        }
    }

    /// One content delta.
    pub(super) fn delta(&mut self, text: &str) -> Bytes {
        match self.kind {
            StreamKind::Chat => sse_data(&self.chat_chunk(json!({ "content": text }), None)),
            StreamKind::Responses => {
                let payload = json!({
                    "item_id": self.msg_id,
                    "output_index": 0,
                    "content_index": 0,
                    "delta": text,
                    "logprobs": []
                });
                self.responses_event("response.output_text.delta", payload)
            }
            StreamKind::Anthropic => sse_event(
                "content_block_delta",
                &json!({
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": { "type": "text_delta", "text": text }
                }),
            ),
            StreamKind::GeminiSse | StreamKind::GeminiArray => {
                let chunk =
                    wire::gemini_response(&self.model, &self.id, text, self.prompt_tokens, None);
                self.gemini_frame(&chunk, false)
            }
        }
    }

    /// Frames after the content: finish reason, usage, terminator. `full_text` is the
    /// text the `*.done` events repeat.
    pub(super) fn tail(&mut self, full_text: &str) -> Vec<Bytes> {
        let out_tokens = wire::tokens(full_text);
        match self.kind {
            StreamKind::Chat => {
                let mut frames = vec![sse_data(&self.chat_chunk(json!({}), Some("stop")))];
                if self.include_usage {
                    frames.push(sse_data(&json!({
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "service_tier": "default",
                        "system_fingerprint": "fp_mock",
                        "choices": [],
                        "usage": {
                            "prompt_tokens": self.prompt_tokens,
                            "completion_tokens": out_tokens,
                            "total_tokens": self.prompt_tokens + out_tokens,
                            "prompt_tokens_details": { "cached_tokens": 0, "audio_tokens": 0 },
                            "completion_tokens_details": {
                                "reasoning_tokens": 0,
                                "audio_tokens": 0,
                                "accepted_prediction_tokens": 0,
                                "rejected_prediction_tokens": 0
                            }
                        }
                    })));
                }
                frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
                frames
            }
            StreamKind::Responses => {
                let text_done = json!({
                    "item_id": self.msg_id,
                    "output_index": 0,
                    "content_index": 0,
                    "text": full_text,
                    "logprobs": []
                });
                let part_done = json!({
                    "item_id": self.msg_id,
                    "output_index": 0,
                    "content_index": 0,
                    "part": { "type": "output_text", "text": full_text, "annotations": [], "logprobs": [] }
                });
                let item_done = json!({
                    "output_index": 0,
                    "item": wire::responses_message_item(&self.msg_id, "completed", Some(full_text))
                });
                let completed = json!({ "response": self.responses_object(Some(full_text)) });
                vec![
                    self.responses_event("response.output_text.done", text_done),
                    self.responses_event("response.content_part.done", part_done),
                    self.responses_event("response.output_item.done", item_done),
                    self.responses_event("response.completed", completed),
                ]
            }
            StreamKind::Anthropic => vec![
                sse_event(
                    "content_block_stop",
                    &json!({ "type": "content_block_stop", "index": 0 }),
                ),
                sse_event(
                    "message_delta",
                    &json!({
                        "type": "message_delta",
                        "delta": { "stop_reason": "end_turn", "stop_sequence": null },
                        "usage": {
                            "input_tokens": self.prompt_tokens,
                            "cache_creation_input_tokens": 0,
                            "cache_read_input_tokens": 0,
                            "output_tokens": out_tokens
                        }
                    }),
                ),
                sse_event("message_stop", &json!({ "type": "message_stop" })),
            ],
            StreamKind::GeminiSse | StreamKind::GeminiArray => {
                let chunk = wire::gemini_response(
                    &self.model,
                    &self.id,
                    "",
                    self.prompt_tokens,
                    Some(out_tokens),
                );
                vec![self.gemini_frame(&chunk, true)]
            }
        }
    }
}

/// Splits `text` into `n` (at least 1) pieces of about equal length in characters.
pub(super) fn split_even(text: &str, n: usize) -> Vec<String> {
    let n = n.max(1);
    let bounds: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(text.len()))
        .collect();
    let chars = bounds.len() - 1;
    (0..n)
        .map(|i| text[bounds[i * chars / n]..bounds[(i + 1) * chars / n]].to_owned())
        .collect()
}

/// Filler for [`Deltas::Fill`]: about 1 KiB of plain ASCII (no JSON escapes).
static FILLER: LazyLock<String> =
    LazyLock::new(|| "The quick brown fox jumps over the lazy dog. ".repeat(23));

/// Pause before an aborted stream's error, so the frames before it reach the client.
const ABORT_FLUSH_PAUSE: Duration = Duration::from_millis(20);

/// Where content deltas come from.
pub(super) enum Deltas {
    /// These texts, in order.
    Parts(std::vec::IntoIter<String>),
    /// `first`, then filler until the body reached `min_bytes`.
    Fill {
        first: Option<String>,
        min_bytes: usize,
    },
}

/// Everything a streamed answer needs.
pub(super) struct StreamPlan {
    pub(super) format: StreamFormat,
    pub(super) deltas: Deltas,
    /// Pause between two successive deltas.
    pub(super) interval: Duration,
    /// Abort the body (an error frame) after this many deltas.
    pub(super) abort_after: Option<usize>,
    /// The text the tail repeats.
    pub(super) full_text: String,
}

struct Driver {
    plan: StreamPlan,
    pending: VecDeque<Bytes>,
    sent_bytes: usize,
    deltas_sent: usize,
    done: bool,
    guard: CancelGuard,
}

impl Driver {
    fn next_delta(&mut self) -> Option<String> {
        match &mut self.plan.deltas {
            Deltas::Parts(parts) => parts.next(),
            Deltas::Fill { first, min_bytes } => first
                .take()
                .or_else(|| (self.sent_bytes < *min_bytes).then(|| FILLER.clone())),
        }
    }

    async fn next_frame(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        loop {
            if let Some(frame) = self.pending.pop_front() {
                self.sent_bytes += frame.len();
                return Some(Ok(frame));
            }
            if self.done {
                self.guard.disarm();
                return None;
            }
            if self
                .plan
                .abort_after
                .is_some_and(|after| self.deltas_sent >= after)
            {
                self.done = true;
                self.guard.disarm();
                // Let hyper flush what was sent so far (it flushes when the body is
                // pending); an error right behind ready frames would drop them unsent.
                tokio::time::sleep(ABORT_FLUSH_PAUSE).await;
                return Some(Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "mock upstream: stream aborted on purpose",
                )));
            }
            match self.next_delta() {
                Some(text) => {
                    if self.deltas_sent > 0 && !self.plan.interval.is_zero() {
                        tokio::time::sleep(self.plan.interval).await;
                    }
                    let frame = self.plan.format.delta(&text);
                    self.deltas_sent += 1;
                    self.pending.push_back(frame);
                }
                None => {
                    let tail = self.plan.format.tail(&self.plan.full_text);
                    self.pending.extend(tail);
                    self.done = true;
                }
            }
        }
    }
}

/// The response body of a streamed answer. `guard` stays armed until the last frame was
/// produced, so a client that goes away mid-stream counts as a cancellation.
pub(super) fn stream_body(mut plan: StreamPlan, guard: CancelGuard) -> Body {
    let pending: VecDeque<Bytes> = plan.format.head().into();
    let driver = Driver {
        plan,
        pending,
        sent_bytes: 0,
        deltas_sent: 0,
        done: false,
        guard,
    };
    Body::from_stream(futures::stream::unfold(driver, |mut d| async move {
        let frame = d.next_frame().await?;
        Some((frame, d))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_even_keeps_all_text() {
        let parts = split_even("echo: héllo", 4);
        assert_eq!(parts.len(), 4);
        assert_eq!(parts.concat(), "echo: héllo");
        assert_eq!(split_even("ab", 3).concat(), "ab");
        assert_eq!(split_even("", 0), vec![String::new()]);
    }
}
