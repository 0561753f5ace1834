//! Admission: the client's credential, the group, and paths that would leave the upstream's
//! base path — all refused before anything is sent upstream.

use serde_json::json;

use crate::harness::{GLOBAL_KEY, Harness, PROXY_KEY, Req};

fn chat_body() -> serde_json::Value {
    json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn a_request_without_a_key_is_401() {
    let h = Harness::openai("auth", ["sk-a"], json!({})).await;
    let a = h
        .fetch(Req::post("/proxy/auth/v1/chat/completions").json(&chat_body()))
        .await;
    assert_eq!(a.status, 401);
    assert_eq!(a.json()["code"], "UNAUTHORIZED");
    assert_eq!(h.mock.request_count(), 0);
    assert!(h.logs().is_empty(), "refused before any attempt: no record");
}

#[tokio::test]
async fn a_wrong_key_is_401() {
    let h = Harness::openai("auth", ["sk-a"], json!({})).await;
    for wrong in [
        Req::post("/proxy/auth/v1/chat/completions").bearer("sk-wrong"),
        Req::post("/proxy/auth/v1/chat/completions").header("x-api-key", "sk-wrong"),
        Req::post("/proxy/auth/v1/chat/completions?key=sk-wrong"),
    ] {
        let a = h.fetch(wrong.json(&chat_body())).await;
        assert_eq!(a.status, 401, "{}", a.text());
        assert_eq!(a.json()["code"], "UNAUTHORIZED");
    }
    assert_eq!(h.mock.request_count(), 0);
}

#[tokio::test]
async fn an_unknown_group_is_404() {
    let h = Harness::openai("auth", ["sk-a"], json!({})).await;
    let a = h
        .fetch(
            Req::post("/proxy/nope/v1/chat/completions")
                .bearer(PROXY_KEY)
                .json(&chat_body()),
        )
        .await;
    assert_eq!(
        a.status, 404,
        "an unknown group is a 404, not GPT-Load's 500"
    );
    assert_eq!(a.json()["code"], "NOT_FOUND");
    assert!(a.text().contains("nope"), "{}", a.text());
    assert_eq!(h.mock.request_count(), 0);
}

#[tokio::test]
async fn the_proxy_key_is_accepted_wherever_clients_put_it() {
    let h = Harness::openai("auth", ["sk-a"], json!({})).await;
    let url = "/proxy/auth/v1/chat/completions";
    for ok in [
        Req::post(&format!("{url}?key={PROXY_KEY}&keep=1")),
        Req::post(url).header("x-api-key", PROXY_KEY),
        Req::post(url).header("x-goog-api-key", PROXY_KEY),
        Req::post(url).bearer(GLOBAL_KEY),
    ] {
        let a = h.fetch(ok.json(&chat_body())).await;
        assert_eq!(a.status, 200, "{}", a.text());
    }
    assert_eq!(h.mock.request_count(), 4);
    let first = &h.mock.requests()[0];
    assert_eq!(
        first.query.as_deref(),
        Some("keep=1"),
        "the client's key is taken out of the query, the rest stays"
    );
    for r in h.mock.requests() {
        assert_eq!(r.header("authorization"), Some("Bearer sk-a"));
        assert_eq!(r.header("x-api-key"), None);
        assert_eq!(r.header("x-goog-api-key"), None);
    }
}

#[tokio::test]
async fn dot_segments_are_refused_before_the_upstream() {
    let h = Harness::openai("tenant-a", ["sk-tenant-a"], json!({})).await;
    for path in [
        "/proxy/tenant-a/../../tenant-b/admin",
        "/proxy/tenant-a/v1/%2e%2e/%2E%2E/tenant-b/admin",
        "/proxy/tenant-a/..%2f..%2ftenant-b/admin",
        "/proxy/tenant-a/v1/./models",
        "/proxy/tenant-a/v1/..%5c..%5cadmin",
    ] {
        let a = h.fetch(Req::get(path).bearer(PROXY_KEY)).await;
        assert_eq!(a.status, 400, "{path}: {}", a.text());
        assert_eq!(a.json()["code"], "BAD_REQUEST", "{path}");
        assert!(a.text().contains("segment"), "{path}: {}", a.text());
    }
    assert_eq!(h.mock.request_count(), 0, "{:?}", h.mock.requests());
    // Dots inside a segment are names: the mock's own 404 comes back through the proxy.
    let a = h
        .fetch(Req::get("/proxy/tenant-a/v1/models/gpt-4.1..mini").bearer(PROXY_KEY))
        .await;
    assert_eq!(a.status, 404, "{}", a.text());
    assert_eq!(a.json()["error"]["code"], "model_not_found");
    assert_eq!(
        h.mock.last_request().unwrap().path,
        "/v1/models/gpt-4.1..mini"
    );
}
