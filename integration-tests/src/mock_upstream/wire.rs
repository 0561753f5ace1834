//! The vendors' wire formats: which endpoint a request hit, what it asked for, and the
//! JSON bodies the real APIs answer with (streams are in `stream.rs`).
//!
//! Bodies follow the public API references closely enough for the official SDKs
//! (`openai`, `anthropic`, `google-genai`) to parse them; field names are exact.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write as _;

use base64::Engine as _;
use http::{HeaderMap, Method};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use serde_json::{Value, json};

/// An API vendor whose wire format the mock speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Vendor {
    /// OpenAI (and OpenAI-compatible surfaces such as Gemini's `/v1beta/openai/`).
    OpenAi,
    /// Anthropic Messages API.
    Anthropic,
    /// Google Gemini (Generative Language API).
    Gemini,
}

/// A Gemini model action (`/models/{model}:{action}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum GeminiAction {
    Generate,
    Stream,
    CountTokens,
    Embed,
    BatchEmbed,
}

/// The endpoint a request hit. Matching is by path suffix so any base-path prefix works
/// (`/v1/chat/completions`, `/v1beta/openai/chat/completions`, `/openai/v1/...`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Endpoint<'a> {
    Chat,
    Responses,
    Embeddings,
    /// `gemini`: the Gemini OpenAI-compatible list (`/v1beta/openai/models`).
    OpenAiModels {
        gemini: bool,
    },
    OpenAiModel {
        id: &'a str,
    },
    Messages,
    MessagesCountTokens,
    AnthropicModels,
    AnthropicModel {
        id: &'a str,
    },
    Gemini {
        model: &'a str,
        action: GeminiAction,
    },
    GeminiModels,
    GeminiModel {
        id: &'a str,
    },
    NotFound(Vendor),
}

impl Endpoint<'_> {
    pub(super) fn vendor(&self) -> Vendor {
        match self {
            Self::Chat
            | Self::Responses
            | Self::Embeddings
            | Self::OpenAiModels { .. }
            | Self::OpenAiModel { .. } => Vendor::OpenAi,
            Self::Messages
            | Self::MessagesCountTokens
            | Self::AnthropicModels
            | Self::AnthropicModel { .. } => Vendor::Anthropic,
            Self::Gemini { .. } | Self::GeminiModels | Self::GeminiModel { .. } => Vendor::Gemini,
            Self::NotFound(vendor) => *vendor,
        }
    }
}

/// Which vendor a request looks like when the path alone does not say (`GET /v1/models`
/// is both OpenAI's and Anthropic's).
fn guess_vendor(path: &str, headers: &HeaderMap, key_in_query: bool) -> Vendor {
    if path.contains("/openai/") {
        Vendor::OpenAi
    } else if path.starts_with("/v1beta/")
        || path == "/v1beta"
        || key_in_query
        || headers.contains_key("x-goog-api-key")
    {
        Vendor::Gemini
    } else if headers.contains_key("anthropic-version") || headers.contains_key("x-api-key") {
        Vendor::Anthropic
    } else {
        Vendor::OpenAi
    }
}

/// Finds the endpoint for a request.
pub(super) fn route<'a>(
    method: &Method,
    path: &'a str,
    headers: &HeaderMap,
    key_in_query: bool,
) -> Endpoint<'a> {
    let path = path.trim_end_matches('/');
    if *method == Method::POST {
        if path.ends_with("/chat/completions") {
            return Endpoint::Chat;
        }
        if path.ends_with("/responses") {
            return Endpoint::Responses;
        }
        if path.ends_with("/embeddings") {
            return Endpoint::Embeddings;
        }
        if path.ends_with("/messages/count_tokens") {
            return Endpoint::MessagesCountTokens;
        }
        if path.ends_with("/messages") {
            return Endpoint::Messages;
        }
        if let Some((_, rest)) = path.split_once("/models/")
            && let Some((model, action)) = rest.rsplit_once(':')
        {
            let action = match action {
                "generateContent" => Some(GeminiAction::Generate),
                "streamGenerateContent" => Some(GeminiAction::Stream),
                "countTokens" => Some(GeminiAction::CountTokens),
                "embedContent" => Some(GeminiAction::Embed),
                "batchEmbedContents" => Some(GeminiAction::BatchEmbed),
                _ => None,
            };
            if let Some(action) = action {
                return Endpoint::Gemini { model, action };
            }
        }
    } else if *method == Method::GET {
        let vendor = guess_vendor(path, headers, key_in_query);
        if path.ends_with("/models") {
            return match vendor {
                Vendor::OpenAi => Endpoint::OpenAiModels {
                    gemini: path.contains("/openai/"),
                },
                Vendor::Anthropic => Endpoint::AnthropicModels,
                Vendor::Gemini => Endpoint::GeminiModels,
            };
        }
        if let Some((_, id)) = path.split_once("/models/")
            && !id.is_empty()
        {
            return match vendor {
                Vendor::OpenAi => Endpoint::OpenAiModel { id },
                Vendor::Anthropic => Endpoint::AnthropicModel { id },
                Vendor::Gemini => Endpoint::GeminiModel { id },
            };
        }
    }
    Endpoint::NotFound(guess_vendor(path, headers, key_in_query))
}

/// The API key a request carried: `x-goog-api-key`, `?key=`, `x-api-key`, then
/// `Authorization: Bearer`, first found wins.
pub(super) fn api_key<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<Cow<'a, str>> {
    if let Some(v) = headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()) {
        return Some(Cow::Borrowed(v));
    }
    if let Some(v) = query.and_then(|q| query_param(q, "key")) {
        return Some(v);
    }
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(Cow::Borrowed(v));
    }
    let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = auth.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| Cow::Borrowed(token.trim()))
}

/// The first value of `name` in a raw query string, percent-decoded.
pub(super) fn query_param<'a>(query: &'a str, name: &str) -> Option<Cow<'a, str>> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Rough token count used in every `usage` block: a quarter of the bytes, at least 1.
pub(super) fn tokens(s: &str) -> u64 {
    (s.len() as u64).div_ceil(4).max(1)
}

// ---------------------------------------------------------------------------------------
// Request parsing
// ---------------------------------------------------------------------------------------

/// What a generation request asked for.
#[derive(Debug)]
pub(super) struct Prompt<'a> {
    /// The requested model (empty when the body named none).
    pub(super) model: Cow<'a, str>,
    /// The reply: `"echo: "` + the text of the last user message.
    pub(super) reply: String,
    /// Tokens of the prompt text (for `usage`).
    pub(super) prompt_tokens: u64,
    /// Whether the client asked for a stream.
    pub(super) stream: bool,
    /// OpenAI `stream_options.include_usage`.
    pub(super) include_usage: bool,
}

/// The reply prefix; tests check replies with it.
pub(super) const ECHO_PREFIX: &str = "echo: ";

impl<'a> Prompt<'a> {
    fn new(model: Option<Cow<'a, str>>, text: Option<&str>, stream: bool) -> Self {
        let text = text.unwrap_or("");
        let mut reply = String::with_capacity(ECHO_PREFIX.len() + text.len());
        reply.push_str(ECHO_PREFIX);
        reply.push_str(text);
        Self {
            model: model.unwrap_or(Cow::Borrowed("")),
            reply,
            prompt_tokens: tokens(text),
            stream,
            include_usage: false,
        }
    }

    /// A prompt for a non-generation endpoint forced to stream.
    pub(super) fn empty(model: Cow<'a, str>) -> Self {
        let mut p = Self::new(Some(model), None, true);
        p.prompt_tokens = 1;
        p
    }
}

/// A JSON string that borrows from the body when it has no escapes.
#[derive(Deserialize)]
struct Str<'a>(#[serde(borrow)] Cow<'a, str>);

/// A content part (`{"type":"text","text":..}`, `input_text`, Gemini `{"text":..}`).
#[derive(Deserialize)]
struct Part<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
}

/// Text of a `content` that is a string or an array of parts.
fn content_text(raw: &RawValue) -> Result<String, serde_json::Error> {
    let s = raw.get();
    if s.starts_with('"') {
        let Str(text) = serde_json::from_str(s)?;
        return Ok(text.into_owned());
    }
    if s.starts_with('[') {
        let parts: Vec<Part<'_>> = serde_json::from_str(s)?;
        return Ok(join_parts(&parts));
    }
    Ok(String::new())
}

fn join_parts(parts: &[Part<'_>]) -> String {
    let mut out = String::new();
    for text in parts.iter().filter_map(|p| p.text.as_deref()) {
        out.push_str(text);
    }
    out
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

/// OpenAI chat completions and Anthropic messages requests.
#[derive(Deserialize)]
struct ChatBody<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    messages: Vec<Message<'a>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

fn last_user_text(messages: &[Message<'_>]) -> Result<Option<String>, serde_json::Error> {
    let last = messages
        .iter()
        .rev()
        .find(|m| m.role.as_deref().is_none_or(|r| r == "user"));
    match last.and_then(|m| m.content) {
        Some(raw) => content_text(raw).map(Some),
        None => Ok(None),
    }
}

/// Parses an OpenAI chat or Anthropic messages request.
pub(super) fn parse_chat(body: &[u8]) -> Result<Prompt<'_>, serde_json::Error> {
    let req: ChatBody<'_> = serde_json::from_slice(body)?;
    let text = last_user_text(&req.messages)?;
    let mut prompt = Prompt::new(req.model, text.as_deref(), req.stream.unwrap_or(false));
    prompt.include_usage = req
        .stream_options
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    Ok(prompt)
}

#[derive(Deserialize)]
struct ResponsesBody<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
    #[serde(default)]
    stream: Option<bool>,
}

/// Parses an OpenAI Responses API request (`input` is a string or a list of items).
pub(super) fn parse_responses(body: &[u8]) -> Result<Prompt<'_>, serde_json::Error> {
    let req: ResponsesBody<'_> = serde_json::from_slice(body)?;
    let text = match req.input {
        Some(raw) if raw.get().starts_with('"') => {
            let Str(text) = serde_json::from_str(raw.get())?;
            Some(text.into_owned())
        }
        Some(raw) if raw.get().starts_with('[') => {
            let items: Vec<Message<'_>> = serde_json::from_str(raw.get())?;
            last_user_text(&items)?
        }
        _ => None,
    };
    Ok(Prompt::new(
        req.model,
        text.as_deref(),
        req.stream.unwrap_or(false),
    ))
}

#[derive(Deserialize)]
struct GeminiContent<'a> {
    #[serde(borrow, default)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    parts: Vec<Part<'a>>,
}

#[derive(Deserialize)]
struct GeminiBody<'a> {
    #[serde(borrow, default)]
    contents: Vec<GeminiContent<'a>>,
}

/// Parses a Gemini `generateContent`/`streamGenerateContent`/`countTokens` request; the
/// model comes from the path.
pub(super) fn parse_gemini<'a>(
    model: &'a str,
    body: &[u8],
    stream: bool,
) -> Result<Prompt<'a>, serde_json::Error> {
    let req: GeminiBody<'_> = serde_json::from_slice(body)?;
    let text = req
        .contents
        .iter()
        .rev()
        .find(|c| c.role.as_deref().is_none_or(|r| r == "user"))
        .map(|c| join_parts(&c.parts));
    Ok(Prompt::new(
        Some(Cow::Borrowed(model)),
        text.as_deref(),
        stream,
    ))
}

/// The `model` field of any JSON body, if there is one.
pub(super) fn body_model(body: &[u8]) -> Option<Cow<'_, str>> {
    #[derive(Deserialize)]
    struct M<'a> {
        #[serde(borrow, default)]
        model: Option<Cow<'a, str>>,
    }
    serde_json::from_slice::<M<'_>>(body).ok()?.model
}

// ---------------------------------------------------------------------------------------
// JSON bodies
// ---------------------------------------------------------------------------------------

/// Fixed pieces of the chat completion body, so the hot path only writes the variable
/// parts (id, model, reply, token counts) between them.
const CHAT_HEAD: &str = r#"{"id":"chatcmpl-mock"#;
const CHAT_OBJECT: &str = r#"","object":"chat.completion","created":"#;
const CHAT_MODEL: &str = r#","model":"#;
const CHAT_CONTENT: &str = r#","choices":[{"index":0,"message":{"role":"assistant","content":"#;
const CHAT_USAGE: &str = r#","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":"#;
const CHAT_TAIL: &str = r#","prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_mock"}"#;

/// OpenAI `chat.completion` object (the benchmark's baseline path: one allocation).
pub(super) fn chat_completion(seq: u64, created: u64, prompt: &Prompt<'_>) -> Vec<u8> {
    let completion_tokens = tokens(&prompt.reply);
    let mut out = Vec::with_capacity(
        CHAT_HEAD.len()
            + CHAT_OBJECT.len()
            + CHAT_MODEL.len()
            + CHAT_CONTENT.len()
            + CHAT_USAGE.len()
            + CHAT_TAIL.len()
            + prompt.model.len()
            + prompt.reply.len()
            + 96,
    );
    // Writing to a `Vec` cannot fail.
    let _ = write!(out, "{CHAT_HEAD}{seq}{CHAT_OBJECT}{created}{CHAT_MODEL}");
    let _ = serde_json::to_writer(&mut out, prompt.model.as_ref());
    out.extend_from_slice(CHAT_CONTENT.as_bytes());
    let _ = serde_json::to_writer(&mut out, &prompt.reply);
    let _ = write!(
        out,
        r#"{CHAT_USAGE}{p},"completion_tokens":{completion_tokens},"total_tokens":{total}{CHAT_TAIL}"#,
        p = prompt.prompt_tokens,
        total = prompt.prompt_tokens + completion_tokens,
    );
    out
}

/// The `output` item of a Responses API message.
pub(super) fn responses_message_item(msg_id: &str, status: &str, text: Option<&str>) -> Value {
    let content = match text {
        Some(text) => json!([{
            "type": "output_text", "text": text, "annotations": [], "logprobs": []
        }]),
        None => json!([]),
    };
    json!({
        "id": msg_id, "type": "message", "status": status, "role": "assistant", "content": content
    })
}

/// An OpenAI Responses API `response` object; `text` None means no output yet.
pub(super) fn responses_object(
    resp_id: &str,
    msg_id: &str,
    created: u64,
    prompt: &Prompt<'_>,
    text: Option<&str>,
) -> Value {
    let (status, output, usage) = match text {
        Some(text) => {
            let out_tokens = tokens(text);
            (
                "completed",
                json!([responses_message_item(msg_id, "completed", Some(text))]),
                json!({
                    "input_tokens": prompt.prompt_tokens,
                    "input_tokens_details": { "cached_tokens": 0 },
                    "output_tokens": out_tokens,
                    "output_tokens_details": { "reasoning_tokens": 0 },
                    "total_tokens": prompt.prompt_tokens + out_tokens
                }),
            )
        }
        None => ("in_progress", json!([]), Value::Null),
    };
    json!({
        "id": resp_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": false,
        "error": null,
        "incomplete_details": null,
        "instructions": null,
        "max_output_tokens": null,
        "max_tool_calls": null,
        "model": prompt.model,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": { "effort": null, "summary": null },
        "service_tier": "default",
        "store": true,
        "temperature": 1.0,
        "text": { "format": { "type": "text" }, "verbosity": "medium" },
        "tool_choice": "auto",
        "tools": [],
        "top_logprobs": 0,
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": null,
        "metadata": {}
    })
}

/// Anthropic `usage` object.
pub(super) fn anthropic_usage(input: u64, output: u64) -> Value {
    json!({
        "input_tokens": input,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output,
        "service_tier": "standard"
    })
}

/// Anthropic `message` object; `text` None means the empty message of `message_start`.
pub(super) fn anthropic_message(msg_id: &str, prompt: &Prompt<'_>, text: Option<&str>) -> Value {
    let (content, stop_reason, output_tokens) = match text {
        Some(text) => (
            json!([{ "type": "text", "text": text }]),
            json!("end_turn"),
            tokens(text),
        ),
        None => (json!([]), Value::Null, 1),
    };
    json!({
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": prompt.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": anthropic_usage(prompt.prompt_tokens, output_tokens)
    })
}

/// Gemini `usageMetadata`; `output` None for an intermediate stream chunk.
pub(super) fn gemini_usage(prompt_tokens: u64, output: Option<u64>) -> Value {
    match output {
        Some(out) => json!({
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": out,
            "totalTokenCount": prompt_tokens + out,
            "promptTokensDetails": [{ "modality": "TEXT", "tokenCount": prompt_tokens }]
        }),
        None => json!({
            "promptTokenCount": prompt_tokens,
            "totalTokenCount": prompt_tokens,
            "promptTokensDetails": [{ "modality": "TEXT", "tokenCount": prompt_tokens }]
        }),
    }
}

/// A Gemini `GenerateContentResponse` with one candidate.
pub(super) fn gemini_response(
    model: &str,
    resp_id: &str,
    text: &str,
    finish: Option<&str>,
    usage: Value,
) -> Value {
    let mut candidate = json!({
        "content": { "parts": [{ "text": text }], "role": "model" },
        "index": 0
    });
    if let (Some(finish), Some(obj)) = (finish, candidate.as_object_mut()) {
        obj.insert("finishReason".to_owned(), json!(finish));
    }
    json!({
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": resp_id
    })
}

#[derive(Deserialize)]
struct EmbeddingsBody<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
    #[serde(borrow, default)]
    encoding_format: Option<Cow<'a, str>>,
    #[serde(default)]
    dimensions: Option<usize>,
}

/// Default embedding size (small: the values are fake).
const EMBEDDING_DIMS: usize = 8;

fn embedding_values(index: usize, dims: usize) -> impl Iterator<Item = f32> {
    (0..dims).map(move |i| (i as f32 + 1.0) * 0.01 + index as f32 * 0.001)
}

/// OpenAI embeddings list; base64 when `encoding_format` is `base64` (the Python SDK's
/// default), else float arrays.
pub(super) fn openai_embeddings(body: &[u8]) -> Result<Value, serde_json::Error> {
    let req: EmbeddingsBody<'_> = serde_json::from_slice(body)?;
    let (count, text_len) = match req.input.map(RawValue::get) {
        Some(s) if s.starts_with('[') => {
            let items: Vec<&RawValue> = serde_json::from_str(s)?;
            match items.first() {
                // A single token array.
                Some(first) if !first.get().starts_with(['"', '[']) => (1, s.len()),
                _ => (items.len(), s.len()),
            }
        }
        Some(s) => (1, s.len()),
        None => (0, 0),
    };
    let dims = req.dimensions.unwrap_or(EMBEDDING_DIMS).clamp(1, 4096);
    let base64 = req.encoding_format.as_deref() == Some("base64");
    let data: Vec<Value> = (0..count)
        .map(|index| {
            let embedding = if base64 {
                let mut raw = Vec::with_capacity(dims * 4);
                for v in embedding_values(index, dims) {
                    raw.extend_from_slice(&v.to_le_bytes());
                }
                json!(base64::engine::general_purpose::STANDARD.encode(raw))
            } else {
                json!(embedding_values(index, dims).collect::<Vec<_>>())
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    let used = (text_len as u64).div_ceil(4);
    Ok(json!({
        "object": "list",
        "data": data,
        "model": req.model.unwrap_or(Cow::Borrowed("")),
        "usage": { "prompt_tokens": used, "total_tokens": used }
    }))
}

/// Gemini `embedContent` (`batch` false) or `batchEmbedContents` answer.
pub(super) fn gemini_embeddings(body: &[u8], batch: bool) -> Result<Value, serde_json::Error> {
    #[derive(Deserialize)]
    struct Batch {
        #[serde(default)]
        requests: Vec<IgnoredAny>,
    }
    if batch {
        let req: Batch = serde_json::from_slice(body)?;
        let embeddings: Vec<Value> = (0..req.requests.len())
            .map(|i| json!({ "values": embedding_values(i, EMBEDDING_DIMS).collect::<Vec<_>>() }))
            .collect();
        Ok(json!({ "embeddings": embeddings }))
    } else {
        serde_json::from_slice::<IgnoredAny>(body)?;
        Ok(
            json!({ "embedding": { "values": embedding_values(0, EMBEDDING_DIMS).collect::<Vec<_>>() } }),
        )
    }
}

// ---------------------------------------------------------------------------------------
// Model lists
// ---------------------------------------------------------------------------------------

/// Default model lists, per vendor.
pub(super) fn default_models(vendor: Vendor) -> Vec<String> {
    let ids: &[&str] = match vendor {
        Vendor::OpenAi => &[
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-4.1",
            "gpt-4.1-mini",
            "o3-mini",
            "text-embedding-3-small",
        ],
        Vendor::Anthropic => &[
            "claude-sonnet-4-20250514",
            "claude-opus-4-20250514",
            "claude-3-5-haiku-20241022",
        ],
        Vendor::Gemini => &[
            "gemini-2.5-pro",
            "gemini-2.5-flash",
            "gemini-2.0-flash",
            "gemini-2.0-flash-lite",
            "text-embedding-004",
        ],
    };
    ids.iter().map(|s| (*s).to_owned()).collect()
}

/// A fixed creation time for every listed model (2023-11-14).
const MODEL_CREATED: u64 = 1_700_000_000;

fn openai_model(id: &str, owner: &str) -> Value {
    json!({ "id": id, "object": "model", "created": MODEL_CREATED, "owned_by": owner })
}

/// OpenAI `GET /v1/models`; for Gemini's OpenAI surface ids are `models/<name>`.
pub(super) fn openai_models(ids: &[String], gemini: bool) -> Value {
    let data: Vec<Value> = ids
        .iter()
        .map(|id| {
            if gemini {
                openai_model(&format!("models/{id}"), "google")
            } else {
                openai_model(id, "openai")
            }
        })
        .collect();
    json!({ "object": "list", "data": data })
}

/// OpenAI `GET /v1/models/{id}`.
pub(super) fn openai_model_one(ids: &[String], id: &str) -> Option<Value> {
    let bare = id.strip_prefix("models/").unwrap_or(id);
    ids.iter()
        .any(|m| m == id || m == bare)
        .then(|| openai_model(id, "openai"))
}

fn display_name(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for (i, word) in id.split('-').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let mut chars = word.chars();
        if let Some(c) = chars.next() {
            out.extend(c.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

fn anthropic_model(id: &str) -> Value {
    json!({
        "type": "model",
        "id": id,
        "display_name": display_name(id),
        "created_at": "2025-05-22T00:00:00Z"
    })
}

/// Anthropic `GET /v1/models` with `limit` (default 20) and `after_id` paging.
pub(super) fn anthropic_models(ids: &[String], query: Option<&str>) -> Value {
    let q = query.unwrap_or("");
    let limit = query_param(q, "limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(20)
        .clamp(1, 1000);
    let start = query_param(q, "after_id")
        .and_then(|after| ids.iter().position(|m| *m == after).map(|i| i + 1))
        .unwrap_or(0);
    let page: Vec<&String> = ids.iter().skip(start).take(limit).collect();
    json!({
        "data": page.iter().map(|id| anthropic_model(id)).collect::<Vec<_>>(),
        "has_more": start + page.len() < ids.len(),
        "first_id": page.first(),
        "last_id": page.last()
    })
}

/// Anthropic `GET /v1/models/{id}`.
pub(super) fn anthropic_model_one(ids: &[String], id: &str) -> Option<Value> {
    ids.iter().any(|m| m == id).then(|| anthropic_model(id))
}

fn gemini_model(id: &str) -> Value {
    let methods = if id.contains("embedding") {
        json!(["embedContent", "batchEmbedContents"])
    } else {
        json!([
            "generateContent",
            "countTokens",
            "createCachedContent",
            "batchGenerateContent"
        ])
    };
    json!({
        "name": format!("models/{id}"),
        "version": "001",
        "displayName": display_name(id),
        "description": format!("Mock of {id}"),
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": 65_536,
        "supportedGenerationMethods": methods,
        "temperature": 1.0,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2.0,
        "thinking": false
    })
}

/// Gemini `GET /v1beta/models` with `pageSize` (default 50) and `pageToken` paging;
/// `nextPageToken` is present only when another page exists. Err on a bad token.
pub(super) fn gemini_models(ids: &[String], query: Option<&str>) -> Result<Value, String> {
    let q = query.unwrap_or("");
    let page_size = query_param(q, "pageSize")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(50)
        .min(1000);
    let start = match query_param(q, "pageToken").filter(|t| !t.is_empty()) {
        Some(token) => token
            .strip_prefix("page-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= ids.len())
            .ok_or_else(|| format!("Invalid page token: {token}"))?,
        None => 0,
    };
    let end = start.saturating_add(page_size).min(ids.len());
    let models: Vec<Value> = ids[start..end].iter().map(|id| gemini_model(id)).collect();
    let mut out = json!({ "models": models });
    if end < ids.len()
        && let Some(obj) = out.as_object_mut()
    {
        obj.insert("nextPageToken".to_owned(), json!(format!("page-{end}")));
    }
    Ok(out)
}

/// Gemini `GET /v1beta/models/{id}`.
pub(super) fn gemini_model_one(ids: &[String], id: &str) -> Option<Value> {
    ids.iter().any(|m| m == id).then(|| gemini_model(id))
}

/// An error body in `vendor`'s format for `code`.
pub(super) fn vendor_error_body(vendor: Vendor, code: u16, message: &str) -> String {
    match vendor {
        Vendor::OpenAi => {
            let (kind, err_code) = super::behavior::openai_error_type(code);
            super::behavior::openai_error_body(message, kind, err_code)
        }
        Vendor::Anthropic => super::behavior::anthropic_error_body(
            super::behavior::anthropic_error_type(code),
            message,
        ),
        Vendor::Gemini => {
            super::behavior::gemini_error_body(code, message, super::behavior::gemini_status(code))
        }
    }
}

/// `chatcmpl-mock<seq>`-style ids.
pub(super) fn make_id(prefix: &str, seq: u64) -> String {
    let mut id = String::with_capacity(prefix.len() + 20);
    id.push_str(prefix);
    let _ = write!(id, "{seq}");
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_suffix_and_vendor() {
        let h = HeaderMap::new();
        assert_eq!(
            route(&Method::POST, "/v1/chat/completions", &h, false),
            Endpoint::Chat
        );
        assert_eq!(
            route(&Method::POST, "/v1beta/openai/chat/completions", &h, false),
            Endpoint::Chat
        );
        assert_eq!(
            route(
                &Method::POST,
                "/v1beta/models/gemini-2.0-flash:streamGenerateContent",
                &h,
                false
            ),
            Endpoint::Gemini {
                model: "gemini-2.0-flash",
                action: GeminiAction::Stream
            }
        );
        assert_eq!(
            route(&Method::GET, "/v1beta/openai/models", &h, false),
            Endpoint::OpenAiModels { gemini: true }
        );
        assert_eq!(
            route(&Method::GET, "/v1beta/models", &h, false),
            Endpoint::GeminiModels
        );
        let mut anthropic = HeaderMap::new();
        anthropic.insert("anthropic-version", "2023-06-01".parse().unwrap());
        assert_eq!(
            route(&Method::GET, "/v1/models", &anthropic, false),
            Endpoint::AnthropicModels
        );
        assert_eq!(
            route(&Method::GET, "/v1/models", &h, false),
            Endpoint::OpenAiModels { gemini: false }
        );
    }

    #[test]
    fn finds_keys_in_every_place() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer sk-1".parse().unwrap());
        assert_eq!(api_key(&h, None).as_deref(), Some("sk-1"));
        assert_eq!(
            api_key(&h, Some("alt=sse&key=AI%2Bza")).as_deref(),
            Some("AI+za")
        );
        h.insert("x-goog-api-key", "g".parse().unwrap());
        assert_eq!(api_key(&h, Some("key=q")).as_deref(), Some("g"));
    }

    #[test]
    fn extracts_last_user_text() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"first"},
            {"role":"assistant","content":"x"},
            {"role":"user","content":[{"type":"text","text":"a\"b"},{"type":"image_url","image_url":{}}]}]}"#;
        let p = parse_chat(body).unwrap();
        assert_eq!(p.reply, "echo: a\"b");
        assert_eq!(p.model, "m");
        let json: Value = serde_json::from_slice(&chat_completion(7, 1, &p)).unwrap();
        assert_eq!(json["choices"][0]["message"]["content"], "echo: a\"b");
        assert_eq!(json["id"], "chatcmpl-mock7");

        let p = parse_responses(br#"{"model":"m","input":"hi"}"#).unwrap();
        assert_eq!(p.reply, "echo: hi");
        let p = parse_gemini(
            "g",
            br#"{"contents":[{"parts":[{"text":"x"},{"text":"y"}]}]}"#,
            false,
        )
        .unwrap();
        assert_eq!(p.reply, "echo: xy");
    }

    #[test]
    fn gemini_pages() {
        let ids = default_models(Vendor::Gemini);
        let first = gemini_models(&ids, Some("pageSize=2")).unwrap();
        assert_eq!(first["models"].as_array().unwrap().len(), 2);
        assert_eq!(first["nextPageToken"], "page-2");
        let last = gemini_models(&ids, Some("pageSize=3&pageToken=page-2")).unwrap();
        assert_eq!(last["models"].as_array().unwrap().len(), 3);
        assert!(last.get("nextPageToken").is_none());
        assert!(gemini_models(&ids, Some("pageToken=zzz")).is_err());
    }
}
