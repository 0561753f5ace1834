//! Step 5's group rules: model redirects (loose and strict, and the model list they rewrite),
//! header rules and parameter overrides.

use std::collections::BTreeMap;

use gpt_load_common::model::{HeaderAction, HeaderRule};
use serde_json::json;

use crate::harness::{GroupSpec, Harness, PROXY_KEY, Req};

fn redirects() -> BTreeMap<String, String> {
    BTreeMap::from([("gpt-4o-mini".to_owned(), "gpt-4o-real".to_owned())])
}

#[tokio::test]
async fn a_model_redirect_rewrites_the_body_sent_upstream() {
    let h = Harness::builder()
        .group(
            GroupSpec::openai("redir")
                .keys(["sk-r"])
                .with(|g| g.model_redirect_rules = redirects()),
        )
        .build()
        .await;
    let a = h.fetch(h.chat("redir")).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        a.json()["model"],
        "gpt-4o-real",
        "the upstream answered the target model"
    );
    let sent = h.mock.last_request().unwrap().json().unwrap();
    assert_eq!(sent["model"], "gpt-4o-real");
    assert_eq!(
        sent["messages"][0]["content"], "hello",
        "the rest unchanged"
    );
    // A model without a rule goes through as it is (not strict).
    let a = h
        .fetch(
            Req::post("/proxy/redir/v1/chat/completions")
                .bearer(PROXY_KEY)
                .json(&json!({"model": "other", "messages": []})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        h.mock.last_request().unwrap().json().unwrap()["model"],
        "other"
    );
}

#[tokio::test]
async fn strict_redirects_refuse_other_models_and_list_only_their_own() {
    let h = Harness::builder()
        .group(GroupSpec::openai("strict").keys(["sk-r"]).with(|g| {
            g.model_redirect_rules = redirects();
            g.model_redirect_strict = true;
        }))
        .build()
        .await;
    let a = h
        .fetch(
            Req::post("/proxy/strict/v1/chat/completions")
                .bearer(PROXY_KEY)
                .json(&json!({"model": "other", "messages": []})),
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.text());
    assert!(a.text().contains("other"), "{}", a.text());
    assert_eq!(h.mock.request_count(), 0, "refused before the upstream");
    let logs = h.logs();
    assert_eq!((logs.len(), logs[0].status_code), (1, 400));

    let a = h
        .fetch(Req::get("/proxy/strict/v1/models").bearer(PROXY_KEY))
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let ids: Vec<String> = a.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["gpt-4o-mini"]);
    assert_eq!(h.mock.last_request().unwrap().path, "/v1/models");
}

#[tokio::test]
async fn header_rules_and_parameter_overrides_apply_after_key_injection() {
    let h = Harness::builder()
        .group(GroupSpec::openai("rules").keys(["sk-r"]).with(|g| {
            g.header_rules = vec![
                HeaderRule {
                    key: "X-Real-Key".into(),
                    value: "k=${API_KEY} g=${GROUP_NAME}".into(),
                    action: HeaderAction::Set,
                },
                HeaderRule {
                    key: "user-agent".into(),
                    value: String::new(),
                    action: HeaderAction::Remove,
                },
            ];
            g.param_overrides.insert("temperature".into(), json!(0.1));
        }))
        .build()
        .await;
    let a = h
        .fetch(h.chat("rules").header("user-agent", "my-sdk"))
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let req = h.mock.last_request().unwrap();
    assert_eq!(req.header("x-real-key"), Some("k=sk-r g=rules"));
    assert_eq!(req.header("user-agent"), None);
    let body = req.json().unwrap();
    assert_eq!(body["temperature"], 0.1);
    assert_eq!(body["model"], "gpt-4o-mini");
}
