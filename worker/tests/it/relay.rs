//! Step 8, answers on their way back: streams frame by frame, hop-by-hop headers removed in both
//! directions, upstream error bodies relayed with the key redacted.

use std::time::{Duration, Instant};

use gpt_load_common::log_record::RequestType;
use gpt_load_integration_tests::mock_upstream::Behavior;
use http_body_util::BodyExt as _;
use serde_json::json;

use crate::harness::{Harness, PROXY_KEY, Req};

#[tokio::test]
async fn streams_are_passed_through_frame_by_frame() {
    let h = Harness::openai("stream", ["sk-s"], json!({})).await;
    let interval = Duration::from_millis(60);
    h.mock.set_behavior(
        None,
        Behavior::SlowStream {
            chunks: 4,
            interval,
        },
    );
    let started = Instant::now();
    let resp = h
        .call(
            Req::post("/proxy/stream/v1/chat/completions")
                .bearer(PROXY_KEY)
                .json(&json!({"model": "m", "stream": true,
                              "messages": [{"role": "user", "content": "one two three four"}]})),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert!(
        header("content-type")
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert_eq!(header("x-accel-buffering").as_deref(), Some("no"));
    assert_eq!(header("cache-control").as_deref(), Some("no-cache"));

    let mut body = resp.into_body();
    let mut frames = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data()
            && !data.is_empty()
        {
            frames.push((started.elapsed(), data));
        }
    }
    let total = started.elapsed();
    assert!(total >= interval * 3, "{total:?}");
    assert!(
        frames[0].0 + interval * 2 <= total,
        "the first frame {:?} of {total:?} came before the rest: not buffered",
        frames[0].0
    );
    // Every frame of the upstream reached the client: head, four deltas, finish, [DONE].
    let text: String = frames
        .iter()
        .map(|(_, d)| String::from_utf8_lossy(d).into_owned())
        .collect();
    let events: Vec<&str> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .collect();
    assert_eq!(events.len(), 7, "{text}");
    assert_eq!(*events.last().unwrap(), "[DONE]");
    let content: String = events
        .iter()
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(e).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(content, "echo: one two three four");

    let logs = h.logs();
    assert_eq!(logs.len(), 1, "logged once the stream is done");
    assert!(logs[0].is_stream && logs[0].is_success);
}

#[tokio::test]
async fn hop_by_hop_headers_stay_on_their_hop() {
    let h = Harness::openai("hop", ["sk-h"], json!({})).await;
    h.mock.set_behavior(
        None,
        Behavior::status_with_body(200, r#"{"ok":true}"#)
            .with_header("connection", "x-resp-hop")
            .with_header("x-resp-hop", "1")
            .with_header("keep-alive", "timeout=5")
            .with_header("x-vendor", "kept"),
    );
    let a = h
        .fetch(
            h.chat("hop")
                .header("connection", "keep-alive, X-Hop-Only")
                .header("keep-alive", "timeout=5")
                .header("x-hop-only", "for the proxy")
                .header("te", "trailers")
                .header("proxy-authorization", "Basic c2VjcmV0")
                .header("x-end-to-end", "for the upstream"),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let req = h.mock.last_request().unwrap();
    for gone in ["x-hop-only", "keep-alive", "te", "proxy-authorization"] {
        assert_eq!(
            req.header(gone),
            None,
            "{gone} forwarded: {:?}",
            req.headers
        );
    }
    assert_ne!(req.header("connection"), Some("keep-alive, X-Hop-Only"));
    assert_eq!(req.header("x-end-to-end"), Some("for the upstream"));

    for gone in ["connection", "x-resp-hop", "keep-alive"] {
        assert_eq!(a.header(gone), None, "{gone} relayed: {:?}", a.headers);
    }
    assert_eq!(a.header("x-vendor"), Some("kept"));
    assert_eq!(a.json(), json!({"ok": true}));
}

#[tokio::test]
async fn upstream_error_bodies_are_relayed_with_the_key_redacted() {
    let secret = "sk-proj-SECRETVALUE1234567890";
    let h = Harness::openai("redact", [secret], json!({"max_retries": 0})).await;
    h.mock
        .set_behavior(None, Behavior::openai_invalid_key(secret));
    let a = h.fetch(h.chat("redact")).await;
    assert_eq!(a.status, 401);
    let body = a.text();
    assert!(!body.contains(secret), "{body}");
    assert!(body.contains("sk-p****7890"), "{body}");
    assert_eq!(
        a.json()["error"]["code"],
        "invalid_api_key",
        "the vendor's shape is kept"
    );
    let logs = h.logs();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].status_code, 401);
    assert!(
        !logs[0].error_message.contains(secret),
        "{}",
        logs[0].error_message
    );
    assert!(logs[0].error_message.contains("sk-p****7890"));
}

#[tokio::test]
async fn a_status_outside_the_failover_codes_is_relayed_without_a_retry() {
    let h = Harness::openai("pass", ["sk-1", "sk-2"], json!({"blacklist_threshold": 1})).await;
    h.mock.set_behavior(
        None,
        Behavior::openai_error(
            404,
            "The model `x` does not exist",
            "invalid_request_error",
            Some("model_not_found"),
        ),
    );
    let a = h.fetch(h.chat("pass")).await;
    assert_eq!(a.status, 404, "{}", a.text());
    assert_eq!(a.json()["error"]["code"], "model_not_found");
    assert_eq!(h.mock.request_count(), 1, "no retry");
    let counts = h.counts("pass").await;
    assert_eq!((counts.active, counts.invalid), (2, 0));
    assert!(h.key_events().is_empty());
    let logs = h.logs();
    assert_eq!(logs.len(), 1);
    assert_eq!(
        (logs[0].request_type, logs[0].status_code),
        (RequestType::Final, 404)
    );
}
