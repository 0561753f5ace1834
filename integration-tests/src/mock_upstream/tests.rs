//! The mock exercised over real HTTP with reqwest.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::{Value, json};

use super::*;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// `data:` payloads of an SSE body, with their `event:` names.
fn sse_events(body: &str) -> Vec<(Option<String>, String)> {
    body.replace("\r\n", "\n")
        .split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut event = None;
            let mut data = String::new();
            for line in block.lines() {
                let line = line.trim_end_matches('\r');
                if let Some(e) = line.strip_prefix("event: ") {
                    event = Some(e.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            (event, data)
        })
        .collect()
}

#[tokio::test]
async fn chat_json_echoes_model_and_text_and_records() {
    let mock = MockUpstream::start().await;
    let res = client()
        .post(format!("{}/v1/chat/completions?x=1", mock.url()))
        .bearer_auth("sk-one")
        .json(&json!({
            "model": "gpt-4o-mini",
            "messages": [{ "role": "system", "content": "be brief" },
                         { "role": "user", "content": "hello \"world\"" }]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-4o-mini");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "echo: hello \"world\""
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let usage = &v["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );

    let reqs = mock.requests_for_key("sk-one");
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, Method::POST);
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.query.as_deref(), Some("x=1"));
    assert_eq!(r.header("authorization"), Some("Bearer sk-one"));
    assert_eq!(r.json().unwrap()["model"], "gpt-4o-mini");
    assert!(!r.cancelled());
    assert!(mock.requests_for_key("sk-two").is_empty());
    mock.clear();
    assert!(mock.requests().is_empty());
    assert_eq!(mock.request_count(), 1);
}

#[tokio::test]
async fn chat_sse_stream_parses() {
    let mock = MockUpstream::start().await;
    let res = client()
        .post(format!("{}/v1beta/openai/chat/completions", mock.url()))
        .bearer_auth("k")
        .json(&json!({
            "model": "gemini-2.0-flash",
            "stream": true,
            "stream_options": { "include_usage": true },
            "messages": [{ "role": "user", "content": [{ "type": "text", "text": "stream me" }] }]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let body = res.text().await.unwrap();
    let events = sse_events(&body);
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert!(chunks.iter().all(|c| c["model"] == "gemini-2.0-flash"));
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "echo: stream me");
    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert!(usage_chunk["usage"]["total_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "stop"
    );
}

#[tokio::test]
async fn anthropic_responses_and_gemini_streams() {
    let mock = MockUpstream::start().await;
    let c = client();

    let body = c
        .post(format!("{}/v1/messages", mock.url()))
        .header("x-api-key", "ant-1")
        .header("anthropic-version", "2023-06-01")
        .json(&json!({
            "model": "claude-sonnet-4-20250514", "max_tokens": 16, "stream": true,
            "messages": [{ "role": "user", "content": "hi" }]
        }))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events = sse_events(&body);
    let names: Vec<&str> = events.iter().filter_map(|(e, _)| e.as_deref()).collect();
    assert_eq!(names[..3], ["message_start", "content_block_start", "ping"]);
    assert_eq!(
        names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    let text: String = events
        .iter()
        .filter(|(e, _)| e.as_deref() == Some("content_block_delta"))
        .map(|(_, d)| {
            let v: Value = serde_json::from_str(d).unwrap();
            v["delta"]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(text, "echo: hi");
    assert_eq!(mock.requests_for_key("ant-1").len(), 1);

    let body = c
        .post(format!("{}/v1/responses", mock.url()))
        .bearer_auth("sk")
        .json(&json!({ "model": "gpt-4.1", "input": "yo", "stream": true }))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events = sse_events(&body);
    assert_eq!(events[0].0.as_deref(), Some("response.created"));
    let (last_name, last_data) = events.last().unwrap();
    assert_eq!(last_name.as_deref(), Some("response.completed"));
    let done: Value = serde_json::from_str(last_data).unwrap();
    assert_eq!(done["type"], "response.completed");
    assert_eq!(
        done["response"]["output"][0]["content"][0]["text"],
        "echo: yo"
    );
    for (name, data) in &events {
        let v: Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["type"].as_str(), name.as_deref());
    }

    // Gemini: SSE with alt=sse and the key in the query, JSON array without.
    let url = format!(
        "{}/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        mock.url()
    );
    let gemini_body = json!({ "contents": [{ "role": "user", "parts": [{ "text": "g" }] }] });
    let body = c
        .post(format!("{url}?alt=sse&key=AIza-1"))
        .json(&gemini_body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let chunks: Vec<Value> = sse_events(&body)
        .iter()
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["candidates"][0]["content"]["parts"][0]["text"].as_str())
        .collect();
    assert_eq!(text, "echo: g");
    assert_eq!(
        chunks.last().unwrap()["candidates"][0]["finishReason"],
        "STOP"
    );
    assert_eq!(mock.requests_for_key("AIza-1").len(), 1);

    let res = c
        .post(&url)
        .header("x-goog-api-key", "AIza-2")
        .json(&gemini_body)
        .send()
        .await
        .unwrap();
    let array: Vec<Value> = res.json().await.unwrap();
    assert!(array.len() >= 2);
    assert_eq!(array[0]["modelVersion"], "gemini-2.5-flash");
    assert_eq!(mock.requests_for_key("AIza-2").len(), 1);
}

#[tokio::test]
async fn model_lists_per_vendor() {
    let mock = MockUpstream::start().await;
    let c = client();
    let openai: Value = c
        .get(format!("{}/v1/models", mock.url()))
        .bearer_auth("sk")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(openai["object"], "list");
    assert_eq!(openai["data"][0]["object"], "model");

    let anthropic: Value = c
        .get(format!("{}/v1/models?limit=1", mock.url()))
        .header("x-api-key", "a")
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(anthropic["data"][0]["type"], "model");
    assert_eq!(anthropic["has_more"], true);

    mock.set_models(
        Vendor::Gemini,
        vec!["a".to_owned(), "b".to_owned(), "c".to_owned()],
    );
    let page: Value = c
        .get(format!("{}/v1beta/models?pageSize=2", mock.url()))
        .header("x-goog-api-key", "g")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["models"][1]["name"], "models/b");
    let token = page["nextPageToken"].as_str().unwrap();
    let page: Value = c
        .get(format!(
            "{}/v1beta/models?pageSize=2&pageToken={token}",
            mock.url()
        ))
        .header("x-goog-api-key", "g")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["models"][0]["name"], "models/c");
    assert!(page.get("nextPageToken").is_none());
}

#[tokio::test]
async fn scripted_statuses_per_key_and_sequences() {
    let mock = MockUpstream::start().await;
    let c = client();
    mock.set_behavior(Some("sk-limited"), Behavior::rate_limited(7));
    mock.set_behavior(Some("sk-wrong"), Behavior::openai_invalid_key("sk-wrong"));
    mock.set_behavior(
        None,
        Behavior::sequence([Behavior::status(503), Behavior::Ok]),
    );
    let send = |key: &'static str| {
        c.post(format!("{}/v1/chat/completions", mock.url()))
            .bearer_auth(key)
            .json(&json!({ "model": "m", "messages": [] }))
            .send()
    };

    let res = send("sk-limited").await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "7");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");

    let res = send("sk-wrong").await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("sk-wrong"));

    // The default sequence advances across keys without their own behavior.
    assert_eq!(send("sk-a").await.unwrap().status(), 503);
    assert_eq!(send("sk-b").await.unwrap().status(), 200);
    assert_eq!(send("sk-a").await.unwrap().status(), 200);

    // Vendor-aware errors.
    mock.set_behavior(
        Some("ant"),
        Behavior::Error {
            code: 529,
            message: "busy".to_owned(),
        },
    );
    let v: Value = c
        .post(format!("{}/v1/messages", mock.url()))
        .header("x-api-key", "ant")
        .json(&json!({ "model": "claude", "messages": [] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v,
        json!({ "type": "error", "error": { "type": "overloaded_error", "message": "busy" } })
    );

    mock.reset_behaviors();
    assert_eq!(send("sk-limited").await.unwrap().status(), 200);
}

#[tokio::test]
async fn hang_is_cancelled_by_client_timeout() {
    let mock = MockUpstream::start().await;
    mock.set_behavior(None, Behavior::Hang);
    let err = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap()
        .post(format!("{}/v1/chat/completions", mock.url()))
        .json(&json!({ "model": "m", "messages": [] }))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(
        mock.wait_for_cancelled(1, Duration::from_secs(5)).await,
        "the client's disconnect never reached the mock"
    );
    assert!(mock.requests()[0].cancelled());
}

#[tokio::test]
async fn reset_closes_the_connection_without_a_response() {
    let mock = MockUpstream::start().await;
    mock.set_behavior(Some("sk-reset"), Behavior::Reset);
    let started = Instant::now();
    let err = client()
        .post(format!("{}/v1/chat/completions", mock.url()))
        .bearer_auth("sk-reset")
        .json(&json!({ "model": "m", "messages": [] }))
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_timeout(), "{err:?}");
    // A real RST (`SO_LINGER` 0), not a FIN: the client reads ECONNRESET.
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    let mut reset = false;
    while let Some(e) = source {
        reset |= e
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::ConnectionReset);
        source = e.source();
    }
    assert!(reset, "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(mock.requests_for_key("sk-reset").len(), 1);
    assert_eq!(mock.cancelled_count(), 0);
    // The server still serves other connections.
    let res = client()
        .post(format!("{}/v1/chat/completions", mock.url()))
        .bearer_auth("sk-fine")
        .json(&json!({ "model": "m", "messages": [] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn slow_large_and_aborted_streams() {
    let mock = MockUpstream::start().await;
    let c = client();
    let chat = |key: &'static str| {
        c.post(format!("{}/v1/chat/completions", mock.url()))
            .bearer_auth(key)
            .json(&json!({ "model": "m", "messages": [{ "role": "user", "content": "abcdefgh" }] }))
            .send()
    };

    mock.set_behavior(
        Some("slow"),
        Behavior::SlowStream {
            chunks: 3,
            interval: Duration::from_millis(100),
        },
    );
    let started = Instant::now();
    let res = chat("slow").await.unwrap();
    let mut body = res.bytes_stream();
    let mut text = Vec::new();
    let mut first_at = None;
    while let Some(chunk) = body.next().await {
        first_at.get_or_insert_with(|| started.elapsed());
        text.extend_from_slice(&chunk.unwrap());
    }
    let total = started.elapsed();
    assert!(total >= Duration::from_millis(200), "{total:?}");
    assert!(first_at.unwrap() + Duration::from_millis(150) <= total);
    let events = sse_events(std::str::from_utf8(&text).unwrap());
    let content: String = events
        .iter()
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(content, "echo: abcdefgh");

    mock.set_behavior(Some("large"), Behavior::LargeStream { bytes: 200_000 });
    let body = chat("large").await.unwrap().bytes().await.unwrap();
    assert!(
        body.len() >= 200_000 && body.len() < 210_000,
        "{}",
        body.len()
    );
    assert!(body.ends_with(b"data: [DONE]\n\n"));

    mock.set_behavior(Some("abort"), Behavior::AbortStream { after_chunks: 1 });
    let res = chat("abort").await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.bytes().await.is_err());
    assert_eq!(mock.cancelled_count(), 0);
}

#[tokio::test]
async fn dropped_stream_counts_as_cancelled() {
    let mock = MockUpstream::start().await;
    mock.set_behavior(
        None,
        Behavior::SlowStream {
            chunks: 50,
            interval: Duration::from_millis(50),
        },
    );
    let res = client()
        .post(format!("{}/v1/messages", mock.url()))
        .header("x-api-key", "k")
        .json(&json!({ "model": "claude", "messages": [{ "role": "user", "content": "x" }] }))
        .send()
        .await
        .unwrap();
    let mut body = res.bytes_stream();
    body.next().await.unwrap().unwrap();
    drop(body);
    assert!(mock.wait_for_cancelled(1, Duration::from_secs(5)).await);
    assert!(mock.requests_for_key("k")[0].cancelled());
}
