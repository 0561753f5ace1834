//! Key rotation and where each channel puts the upstream key; the client's credential never
//! travels on.

use gpt_load_common::log_record::RequestType;
use gpt_load_common::model::ChannelType;
use serde_json::json;

use crate::harness::{GroupSpec, Harness, PROXY_KEY, Req};

#[tokio::test]
async fn rotation_is_even_across_the_groups_keys() {
    let h = Harness::openai("rot", ["sk-a", "sk-b", "sk-c"], json!({})).await;
    let statuses = h.chats("rot", 30).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    for k in ["sk-a", "sk-b", "sk-c"] {
        assert_eq!(h.mock.requests_for_key(k).len(), 10, "{k}");
    }
    // Round robin: no key twice in a row.
    let order: Vec<String> = h
        .mock
        .requests()
        .into_iter()
        .map(|r| r.api_key.unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] != w[1]), "{order:?}");
    // One final record per request, each naming the key it used.
    let logs = h.logs();
    assert_eq!(logs.len(), 30);
    for (log, key) in logs.iter().zip(&order) {
        assert_eq!(log.request_type, RequestType::Final);
        assert!(log.is_success);
        assert_eq!(log.status_code, 200);
        assert_eq!(&log.key_value, key);
        assert_eq!(log.key_hash, format!("hash-of-{key}"));
    }
}

#[tokio::test]
async fn openai_keys_go_in_a_bearer_header_and_the_proxy_key_stays_home() {
    let h = Harness::openai("oa", ["sk-upstream-1"], json!({})).await;
    let a = h
        .fetch(h.chat("oa").header("user-agent", "ua-test/1"))
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["choices"][0]["message"]["content"], "echo: hello");
    assert_eq!(a.json()["model"], "gpt-4o-mini");

    let req = h.mock.last_request().unwrap();
    assert_eq!(req.path, "/v1/chat/completions");
    assert_eq!(req.header("authorization"), Some("Bearer sk-upstream-1"));
    assert_eq!(
        req.header("host"),
        Some(h.mock.addr().to_string().as_str()),
        "the upstream's own Host"
    );
    assert_eq!(req.header("user-agent"), Some("ua-test/1"));
    assert_eq!(
        req.json().unwrap(),
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}),
        "the body arrives unchanged"
    );
    assert!(
        !format!("{:?}", req.headers).contains(PROXY_KEY),
        "the client's proxy key never reaches the upstream: {:?}",
        req.headers
    );
}

#[tokio::test]
async fn the_responses_channel_sends_a_bearer_key() {
    let h = Harness::builder()
        .group(GroupSpec::new("resp", ChannelType::OpenAiResponse).keys(["sk-resp"]))
        .build()
        .await;
    let a = h
        .fetch(
            Req::post("/proxy/resp/v1/responses")
                .bearer(PROXY_KEY)
                .json(&json!({"model": "gpt-4.1", "input": "hi"})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let v = a.json();
    assert_eq!(v["object"], "response");
    assert_eq!(v["output"][0]["content"][0]["text"], "echo: hi");
    let req = h.mock.last_request().unwrap();
    assert_eq!(req.path, "/v1/responses");
    assert_eq!(req.header("authorization"), Some("Bearer sk-resp"));
}

#[tokio::test]
async fn anthropic_keys_go_in_x_api_key_with_the_api_version() {
    let h = Harness::builder()
        .group(GroupSpec::anthropic("anth").keys(["ak-1"]))
        .build()
        .await;
    let a = h
        .fetch(
            Req::post("/proxy/anth/v1/messages")
                .header("x-api-key", PROXY_KEY)
                .header("anthropic-version", "2099-01-01")
                .json(&json!({"model": "claude-3-haiku", "max_tokens": 10,
                              "messages": [{"role": "user", "content": "hi"}]})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let v = a.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["content"][0]["text"], "echo: hi");
    let req = h.mock.last_request().unwrap();
    assert_eq!(req.header("x-api-key"), Some("ak-1"));
    assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(req.header("authorization"), None);
}

#[tokio::test]
async fn gemini_keys_go_in_the_query_and_bearer_on_the_openai_surface() {
    let h = Harness::builder()
        .group(GroupSpec::gemini("gem").keys(["AIza-1"]))
        .build()
        .await;
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    // The client's key in the query is replaced by the upstream key.
    let a = h
        .fetch(
            Req::post(&format!(
                "/proxy/gem/v1beta/models/gemini-2.0-flash:generateContent?key={PROXY_KEY}"
            ))
            .json(&body),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        a.json()["candidates"][0]["content"]["parts"][0]["text"],
        "echo: hi"
    );
    let req = h.mock.last_request().unwrap();
    assert_eq!(req.path, "/v1beta/models/gemini-2.0-flash:generateContent");
    assert_eq!(req.query.as_deref(), Some("key=AIza-1"));

    // The client's key in `x-goog-api-key`: not forwarded, the upstream key still in the query.
    let a = h
        .fetch(
            Req::post("/proxy/gem/v1beta/models/gemini-2.0-flash:generateContent")
                .header("x-goog-api-key", PROXY_KEY)
                .json(&body),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let req = h.mock.last_request().unwrap();
    assert_eq!(req.query_param("key").as_deref(), Some("AIza-1"));
    assert_eq!(req.header("x-goog-api-key"), None);

    // Gemini's OpenAI-compatible surface takes a bearer token.
    let a = h
        .fetch(
            Req::post("/proxy/gem/v1beta/openai/chat/completions")
                .bearer(PROXY_KEY)
                .json(&json!({"model": "gemini-2.0-flash",
                              "messages": [{"role": "user", "content": "hi"}]})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let req = h.mock.last_request().unwrap();
    assert_eq!(req.header("authorization"), Some("Bearer AIza-1"));
    assert_eq!(req.query, None);
    assert!(
        h.mock
            .requests()
            .iter()
            .all(|r| !format!("{:?} {:?}", r.headers, r.query).contains(PROXY_KEY)),
        "the proxy key never reaches the upstream"
    );
}
