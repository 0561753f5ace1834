//! The vendors' response bodies, from `integration-tests/fixtures/{openai,anthropic,gemini}/`
//! (compiled in with `include_str!`, so nothing is read at run time), filled in per request.
//!
//! A fixture is a JSON document in which a value the mock personalises (model, ids, echoed
//! text, token counts, lists) is a placeholder string `"{{name}}"`. A [`Template`] is the
//! fixture compacted once (serialised as `serde_json` writes it, key order kept) and cut at
//! its placeholders; rendering writes the pieces and each placeholder's [`Fill`] into one
//! buffer — the chat completion, the benchmarks' baseline, costs no more than before.

use std::io::Write as _;
use std::sync::LazyLock;

use serde_json::Value;

/// A value written in place of a placeholder (the whole quoted `"{{name}}"`).
#[derive(Clone, Copy, Debug)]
pub(super) enum Fill<'a> {
    /// A JSON string.
    Str(&'a str),
    /// A JSON string, or `null`.
    OptStr(Option<&'a str>),
    /// The JSON string `"<prefix><n>"` (ids such as `chatcmpl-mock7`), written in place.
    Id(&'a str, u64),
    /// A JSON number.
    Num(u64),
    /// A JSON boolean.
    Bool(bool),
    /// Any JSON value.
    Json(&'a Value),
    /// JSON text, written as it is (rendered pieces; no float goes through a parse).
    Raw(&'a [u8]),
}

impl Fill<'_> {
    fn write(self, out: &mut Vec<u8>) {
        // Writing to a `Vec` cannot fail.
        match self {
            Self::Str(s) => {
                let _ = serde_json::to_writer(&mut *out, s);
            }
            Self::OptStr(s) => {
                let _ = serde_json::to_writer(&mut *out, &s);
            }
            Self::Id(prefix, n) => {
                out.push(b'"');
                out.extend_from_slice(prefix.as_bytes());
                let _ = write!(out, "{n}\"");
            }
            Self::Num(n) => {
                let _ = write!(out, "{n}");
            }
            Self::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
            Self::Json(v) => {
                let _ = serde_json::to_writer(&mut *out, v);
            }
            Self::Raw(json) => out.extend_from_slice(json),
        }
    }
}

/// A fixture cut at its placeholders.
#[derive(Debug)]
pub(super) struct Template {
    /// Literal text, each followed by the placeholder named (none after the last piece).
    pieces: Vec<(String, Option<String>)>,
    /// Bytes of literal text, for sizing the output buffer.
    literal_len: usize,
}

impl Template {
    /// Compacts `src` and cuts it at its placeholders.
    ///
    /// # Panics
    ///
    /// If `src` is not JSON: fixtures are compiled in, so every mock test would fail.
    #[expect(
        clippy::expect_used,
        reason = "fixtures are compiled in: a broken one fails the mock's first test"
    )]
    fn parse(src: &str) -> Self {
        let value: Value = serde_json::from_str(src).expect("mock upstream fixture: invalid JSON");
        let compact = value.to_string();
        let mut pieces = Vec::new();
        let mut rest = compact.as_str();
        while let Some(start) = rest.find("\"{{") {
            let after = &rest[start + 3..];
            let Some(end) = after.find("}}\"") else {
                break;
            };
            pieces.push((rest[..start].to_owned(), Some(after[..end].to_owned())));
            rest = &after[end + 3..];
        }
        pieces.push((rest.to_owned(), None));
        let literal_len = pieces.iter().map(|(text, _)| text.len()).sum();
        Self {
            pieces,
            literal_len,
        }
    }

    /// Bytes of the fixture without its placeholders.
    pub(super) fn literal_len(&self) -> usize {
        self.literal_len
    }

    /// Appends the fixture to `out` with each placeholder filled from `fills` (a placeholder
    /// without a fill becomes `null`).
    pub(super) fn render_into(&self, out: &mut Vec<u8>, fills: &[(&str, Fill<'_>)]) {
        for (text, slot) in &self.pieces {
            out.extend_from_slice(text.as_bytes());
            if let Some(name) = slot {
                match fills.iter().find(|(n, _)| n == name) {
                    Some((_, fill)) => fill.write(out),
                    None => out.extend_from_slice(b"null"),
                }
            }
        }
    }

    /// The filled fixture as bytes.
    pub(super) fn render(&self, fills: &[(&str, Fill<'_>)]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.literal_len + 64);
        self.render_into(&mut out, fills);
        out
    }

    /// The filled fixture as a string.
    pub(super) fn string(&self, fills: &[(&str, Fill<'_>)]) -> String {
        // Valid UTF-8: literal pieces come from a `String`, fills from `serde_json` and digits.
        String::from_utf8(self.render(fills)).unwrap_or_default()
    }

    /// The filled fixture as a JSON value (for bodies the mock adjusts or nests further).
    pub(super) fn value(&self, fills: &[(&str, Fill<'_>)]) -> Value {
        serde_json::from_slice(&self.render(fills)).unwrap_or(Value::Null)
    }
}

/// A JSON array of rendered items.
pub(super) fn array(items: impl IntoIterator<Item = Vec<u8>>) -> Vec<u8> {
    let mut out = vec![b'['];
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&item);
    }
    out.push(b']');
    out
}

macro_rules! fixtures {
    ($($(#[$doc:meta])* $name:ident => $path:literal;)*) => {
        $(
            $(#[$doc])*
            pub(super) static $name: LazyLock<Template> = LazyLock::new(|| {
                Template::parse(include_str!(concat!("../../fixtures/", $path)))
            });
        )*
    };
}

fixtures! {
    /// OpenAI `chat.completion`.
    OPENAI_CHAT_COMPLETION => "openai/chat_completion.json";
    /// OpenAI Responses API `response`, completed.
    OPENAI_RESPONSE => "openai/response.json";
    /// OpenAI embeddings list (`data` filled with [`OPENAI_EMBEDDING`]s).
    OPENAI_EMBEDDINGS => "openai/embeddings.json";
    /// One OpenAI `embedding` object.
    OPENAI_EMBEDDING => "openai/embedding.json";
    /// OpenAI `GET /v1/models` (`data` filled with [`OPENAI_MODEL`]s).
    OPENAI_MODELS => "openai/models.json";
    /// One OpenAI `model` object.
    OPENAI_MODEL => "openai/model.json";
    /// OpenAI's error body.
    OPENAI_ERROR => "openai/error.json";
    /// Anthropic `message`.
    ANTHROPIC_MESSAGE => "anthropic/message.json";
    /// Anthropic `count_tokens` answer.
    ANTHROPIC_COUNT_TOKENS => "anthropic/count_tokens.json";
    /// Anthropic `GET /v1/models` page (`data` filled with [`ANTHROPIC_MODEL`]s).
    ANTHROPIC_MODELS => "anthropic/models.json";
    /// One Anthropic `model` object.
    ANTHROPIC_MODEL => "anthropic/model.json";
    /// Anthropic's error body.
    ANTHROPIC_ERROR => "anthropic/error.json";
    /// Gemini `GenerateContentResponse`, finished (also a stream's last chunk).
    GEMINI_GENERATE_CONTENT => "gemini/generate_content.json";
    /// Gemini stream chunk before the last: no finish reason, prompt-only usage.
    GEMINI_STREAM_CHUNK => "gemini/stream_chunk.json";
    /// Gemini `countTokens` answer.
    GEMINI_COUNT_TOKENS => "gemini/count_tokens.json";
    /// Gemini `ContentEmbedding`.
    GEMINI_CONTENT_EMBEDDING => "gemini/content_embedding.json";
    /// Gemini `embedContent` answer.
    GEMINI_EMBED_CONTENT => "gemini/embed_content.json";
    /// Gemini `batchEmbedContents` answer.
    GEMINI_BATCH_EMBED_CONTENTS => "gemini/batch_embed_contents.json";
    /// Gemini `GET /v1beta/models` page (`nextPageToken` removed on the last page).
    GEMINI_MODELS => "gemini/models.json";
    /// One Gemini `Model`.
    GEMINI_MODEL => "gemini/model.json";
    /// Gemini's (Google RPC) error body.
    GEMINI_ERROR => "gemini/error.json";
    /// Gemini's answer to a wrong API key.
    GEMINI_INVALID_KEY => "gemini/invalid_key.json";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixture_parses_and_fills() {
        let all: [&LazyLock<Template>; 22] = [
            &OPENAI_CHAT_COMPLETION,
            &OPENAI_RESPONSE,
            &OPENAI_EMBEDDINGS,
            &OPENAI_EMBEDDING,
            &OPENAI_MODELS,
            &OPENAI_MODEL,
            &OPENAI_ERROR,
            &ANTHROPIC_MESSAGE,
            &ANTHROPIC_COUNT_TOKENS,
            &ANTHROPIC_MODELS,
            &ANTHROPIC_MODEL,
            &ANTHROPIC_ERROR,
            &GEMINI_GENERATE_CONTENT,
            &GEMINI_STREAM_CHUNK,
            &GEMINI_COUNT_TOKENS,
            &GEMINI_CONTENT_EMBEDDING,
            &GEMINI_EMBED_CONTENT,
            &GEMINI_BATCH_EMBED_CONTENTS,
            &GEMINI_MODELS,
            &GEMINI_MODEL,
            &GEMINI_ERROR,
            &GEMINI_INVALID_KEY,
        ];
        for t in all {
            // Unfilled placeholders become `null`: still JSON.
            assert!(t.value(&[]).is_object(), "{t:?}");
        }
    }

    #[test]
    fn fills_replace_the_quoted_placeholder() {
        let t = Template::parse(r#"{"a": "{{x}}", "b": ["{{y}}", "{{z}}"], "c": "{{w}}"}"#);
        let out = t.string(&[
            ("x", Fill::Str("q\"uote")),
            ("y", Fill::Id("id-", 7)),
            ("z", Fill::Num(3)),
            ("w", Fill::OptStr(None)),
        ]);
        assert_eq!(out, r#"{"a":"q\"uote","b":["id-7",3],"c":null}"#);
    }
}
