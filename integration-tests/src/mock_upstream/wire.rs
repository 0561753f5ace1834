//! The vendors' wire formats: which endpoint a request hit, what it asked for, and the
//! JSON bodies the real APIs answer with, filled in from the fixtures (`fixtures.rs`;
//! streams are in `stream.rs`).
//!
//! Bodies follow the public API references closely enough for the official SDKs
//! (`openai`, `anthropic`, `google-genai`) to parse them; field names are exact.

use std::borrow::Cow;
use std::fmt::Write as _;

use base64::Engine as _;
use http::{HeaderMap, Method};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::fixtures::{self, Fill};

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

/// OpenAI `chat.completion` object (the benchmark's baseline path: one buffer).
pub(super) fn chat_completion(seq: u64, created: u64, prompt: &Prompt<'_>) -> Vec<u8> {
    let completion_tokens = tokens(&prompt.reply);
    let template = &*fixtures::OPENAI_CHAT_COMPLETION;
    let mut out =
        Vec::with_capacity(template.literal_len() + prompt.model.len() + prompt.reply.len() + 128);
    template.render_into(
        &mut out,
        &[
            ("id", Fill::Id("chatcmpl-mock", seq)),
            ("created", Fill::Num(created)),
            ("model", Fill::Str(&prompt.model)),
            ("content", Fill::Str(&prompt.reply)),
            ("prompt_tokens", Fill::Num(prompt.prompt_tokens)),
            ("completion_tokens", Fill::Num(completion_tokens)),
            (
                "total_tokens",
                Fill::Num(prompt.prompt_tokens + completion_tokens),
            ),
        ],
    );
    out
}

/// The `output` item of a Responses API message: the fixture's, `in_progress` and empty
/// when `text` is None.
pub(super) fn responses_message_item(msg_id: &str, status: &str, text: Option<&str>) -> Value {
    let mut response = fixtures::OPENAI_RESPONSE.value(&[
        ("message_id", Fill::Str(msg_id)),
        ("text", Fill::Str(text.unwrap_or(""))),
    ]);
    let mut item = response
        .pointer_mut("/output/0")
        .map(Value::take)
        .unwrap_or_default();
    if let Some(obj) = item.as_object_mut() {
        obj.insert("status".to_owned(), json!(status));
        if text.is_none() {
            obj.insert("content".to_owned(), json!([]));
        }
    }
    item
}

/// An OpenAI Responses API `response` object; `text` None means no output yet
/// (`in_progress`, empty `output`, no `usage`).
pub(super) fn responses_object(
    resp_id: &str,
    msg_id: &str,
    created: u64,
    prompt: &Prompt<'_>,
    text: Option<&str>,
) -> Value {
    let out_tokens = tokens(text.unwrap_or(""));
    let mut response = fixtures::OPENAI_RESPONSE.value(&[
        ("id", Fill::Str(resp_id)),
        ("created", Fill::Num(created)),
        ("model", Fill::Str(&prompt.model)),
        ("message_id", Fill::Str(msg_id)),
        ("text", Fill::Str(text.unwrap_or(""))),
        ("input_tokens", Fill::Num(prompt.prompt_tokens)),
        ("output_tokens", Fill::Num(out_tokens)),
        ("total_tokens", Fill::Num(prompt.prompt_tokens + out_tokens)),
    ]);
    if text.is_none()
        && let Some(obj) = response.as_object_mut()
    {
        obj.insert("status".to_owned(), json!("in_progress"));
        obj.insert("output".to_owned(), json!([]));
        obj.insert("usage".to_owned(), Value::Null);
    }
    response
}

/// Anthropic `message` object; `text` None means the empty message of `message_start`
/// (no content, no stop reason, one output token).
pub(super) fn anthropic_message(msg_id: &str, prompt: &Prompt<'_>, text: Option<&str>) -> Value {
    let output_tokens = text.map_or(1, tokens);
    let mut message = fixtures::ANTHROPIC_MESSAGE.value(&[
        ("id", Fill::Str(msg_id)),
        ("model", Fill::Str(&prompt.model)),
        ("text", Fill::Str(text.unwrap_or(""))),
        ("input_tokens", Fill::Num(prompt.prompt_tokens)),
        ("output_tokens", Fill::Num(output_tokens)),
    ]);
    if text.is_none()
        && let Some(obj) = message.as_object_mut()
    {
        obj.insert("content".to_owned(), json!([]));
        obj.insert("stop_reason".to_owned(), Value::Null);
    }
    message
}

/// A Gemini `GenerateContentResponse` with one candidate: finished (`STOP`, full usage)
/// when `candidates_tokens` is given, else an intermediate stream chunk.
pub(super) fn gemini_response(
    model: &str,
    resp_id: &str,
    text: &str,
    prompt_tokens: u64,
    candidates_tokens: Option<u64>,
) -> Vec<u8> {
    let common = [
        ("model", Fill::Str(model)),
        ("response_id", Fill::Str(resp_id)),
        ("text", Fill::Str(text)),
        ("prompt_tokens", Fill::Num(prompt_tokens)),
    ];
    match candidates_tokens {
        Some(out) => {
            let mut fills = common.to_vec();
            fills.push(("candidates_tokens", Fill::Num(out)));
            fills.push(("total_tokens", Fill::Num(prompt_tokens + out)));
            fixtures::GEMINI_GENERATE_CONTENT.render(&fills)
        }
        None => fixtures::GEMINI_STREAM_CHUNK.render(&common),
    }
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
pub(super) fn openai_embeddings(body: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
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
    let data = fixtures::array((0..count).map(|index| {
        let embedding = if base64 {
            let mut raw = Vec::with_capacity(dims * 4);
            for v in embedding_values(index, dims) {
                raw.extend_from_slice(&v.to_le_bytes());
            }
            json!(base64::engine::general_purpose::STANDARD.encode(raw))
        } else {
            json!(embedding_values(index, dims).collect::<Vec<_>>())
        };
        fixtures::OPENAI_EMBEDDING.render(&[
            ("index", Fill::Num(index as u64)),
            ("embedding", Fill::Json(&embedding)),
        ])
    }));
    let used = (text_len as u64).div_ceil(4);
    Ok(fixtures::OPENAI_EMBEDDINGS.render(&[
        ("data", Fill::Raw(&data)),
        ("model", Fill::Str(req.model.as_deref().unwrap_or(""))),
        ("tokens", Fill::Num(used)),
    ]))
}

/// Gemini `embedContent` (`batch` false) or `batchEmbedContents` answer.
pub(super) fn gemini_embeddings(body: &[u8], batch: bool) -> Result<Vec<u8>, serde_json::Error> {
    #[derive(Deserialize)]
    struct Batch {
        #[serde(default)]
        requests: Vec<IgnoredAny>,
    }
    let embedding = |i: usize| {
        let values = json!(embedding_values(i, EMBEDDING_DIMS).collect::<Vec<_>>());
        fixtures::GEMINI_CONTENT_EMBEDDING.render(&[("values", Fill::Json(&values))])
    };
    if batch {
        let req: Batch = serde_json::from_slice(body)?;
        let embeddings = fixtures::array((0..req.requests.len()).map(embedding));
        Ok(fixtures::GEMINI_BATCH_EMBED_CONTENTS.render(&[("embeddings", Fill::Raw(&embeddings))]))
    } else {
        serde_json::from_slice::<IgnoredAny>(body)?;
        Ok(fixtures::GEMINI_EMBED_CONTENT.render(&[("embedding", Fill::Raw(&embedding(0)))]))
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

/// An OpenAI `model` (every one created 2023-11-14, as the fixture says).
fn openai_model(id: &str, owner: &str) -> Value {
    fixtures::OPENAI_MODEL.value(&[("id", Fill::Str(id)), ("owned_by", Fill::Str(owner))])
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
    fixtures::OPENAI_MODELS.value(&[("data", Fill::Json(&Value::Array(data)))])
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
    fixtures::ANTHROPIC_MODEL.value(&[
        ("id", Fill::Str(id)),
        ("display_name", Fill::Str(&display_name(id))),
    ])
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
    let data: Vec<Value> = page.iter().map(|id| anthropic_model(id)).collect();
    fixtures::ANTHROPIC_MODELS.value(&[
        ("data", Fill::Json(&Value::Array(data))),
        ("has_more", Fill::Bool(start + page.len() < ids.len())),
        ("first_id", Fill::OptStr(page.first().map(|s| s.as_str()))),
        ("last_id", Fill::OptStr(page.last().map(|s| s.as_str()))),
    ])
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
    fixtures::GEMINI_MODEL.value(&[
        ("name", Fill::Str(&format!("models/{id}"))),
        ("display_name", Fill::Str(&display_name(id))),
        ("description", Fill::Str(&format!("Mock of {id}"))),
        ("methods", Fill::Json(&methods)),
    ])
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
    let mut out = fixtures::GEMINI_MODELS.value(&[
        ("models", Fill::Json(&Value::Array(models))),
        ("next_page_token", Fill::Str(&format!("page-{end}"))),
    ]);
    if end >= ids.len()
        && let Some(obj) = out.as_object_mut()
    {
        obj.shift_remove("nextPageToken");
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
