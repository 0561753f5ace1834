//! The native routes: the vendors' paths with no group in the URL, routed by the caller's key and
//! the model; access keys, their filters and refusals, in the caller's own error shape.

use gpt_load_common::log_record::RequestType;
use gpt_load_common::model::ChannelType;
use gpt_load_integration_tests::mock_upstream::Behavior;
use serde_json::{Value, json};

use crate::harness::{GLOBAL_KEY, GroupSpec, Harness, PROXY_KEY, Req, access_key};

const TEAM_KEY: &str = "sk-gl-team-access-key-0123456789abcdef";

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

fn message(model: &str) -> Value {
    json!({"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]})
}

fn gemini() -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
}

/// Four groups, one per model family, each with its own upstream key.
async fn gateway() -> Harness {
    Harness::builder()
        .group(
            GroupSpec::openai("mini")
                .keys(["sk-mini"])
                .models(["gpt-4o-mini"]),
        )
        .group(
            GroupSpec::openai("big")
                .keys(["sk-big"])
                .models(["gpt-4.1*"]),
        )
        .group(
            GroupSpec::openai("unrouted")
                .keys(["sk-unrouted"])
                .with(|d| d.model_redirect_rules = [("fast".into(), "gpt-4o-mini".into())].into()),
        )
        .group(
            GroupSpec::anthropic("claude")
                .keys(["sk-ant"])
                .models(["claude-*"]),
        )
        .group(
            GroupSpec::gemini("gem")
                .keys(["sk-gem"])
                .models(["gemini-*"]),
        )
        .access_key(access_key(1, TEAM_KEY))
        .build()
        .await
}

#[tokio::test]
async fn each_protocol_reaches_the_group_serving_the_model() {
    let h = gateway().await;
    for key in [GLOBAL_KEY, TEAM_KEY] {
        h.mock.clear();
        let a = h
            .fetch(
                Req::post("/v1/chat/completions")
                    .bearer(key)
                    .json(&chat("gpt-4o-mini")),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.text());
        let a = h
            .fetch(
                Req::post("/v1/chat/completions")
                    .bearer(key)
                    .json(&chat("gpt-4.1-nano")),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.text());
        let a = h
            .fetch(
                Req::post("/v1/messages")
                    .header("x-api-key", key)
                    .header("anthropic-version", "2023-06-01")
                    .json(&message("claude-sonnet-4")),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.text());
        assert_eq!(a.json()["type"], "message");
        let a = h
            .fetch(
                Req::post("/v1beta/models/gemini-2.5-flash:generateContent")
                    .header("x-goog-api-key", key)
                    .json(&gemini()),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.text());
        assert!(a.json()["candidates"].is_array(), "{}", a.text());
        let seen = |k: &str| h.mock.requests_for_key(k);
        assert_eq!(seen("sk-mini").len(), 1);
        assert_eq!(seen("sk-big").len(), 1);
        assert_eq!(seen("sk-ant").len(), 1);
        assert_eq!(seen("sk-gem").len(), 1);
        assert_eq!(
            seen("sk-unrouted").len(),
            0,
            "a group without models is not routed"
        );
        let gem = &seen("sk-gem")[0];
        assert_eq!(gem.path, "/v1beta/models/gemini-2.5-flash:generateContent");
        for r in h.mock.requests() {
            let all = format!("{:?} {:?}", r.headers, r.query);
            assert!(!all.contains(key), "the caller's key went upstream: {all}");
        }
    }
    let logs = h.logs();
    assert!(logs.iter().all(|l| l.request_type == RequestType::Final));
    assert!(
        logs.iter()
            .any(|l| l.group_name == "claude" && l.request_path == "/v1/messages")
    );
}

#[tokio::test]
async fn an_unserved_model_is_a_404_in_the_callers_shape_and_touches_nothing() {
    let h = gateway().await;
    let a = h
        .fetch(
            Req::post("/v1/chat/completions")
                .bearer(GLOBAL_KEY)
                .json(&chat("o9-ultra")),
        )
        .await;
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["error"]["code"], "model_not_found", "{}", a.text());
    assert!(a.text().contains("o9-ultra"));
    // A Claude model asked on the OpenAI route is not served there.
    let a = h
        .fetch(
            Req::post("/v1/chat/completions")
                .bearer(GLOBAL_KEY)
                .json(&chat("claude-sonnet-4")),
        )
        .await;
    assert_eq!(a.status, 404);
    let a = h
        .fetch(
            Req::post("/v1/messages")
                .header("x-api-key", GLOBAL_KEY)
                .json(&message("gpt-4o-mini")),
        )
        .await;
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["type"], "error", "Anthropic's shape: {}", a.text());
    assert_eq!(a.json()["error"]["type"], "not_found_error");
    let a = h
        .fetch(
            Req::post("/v1/chat/completions")
                .bearer(GLOBAL_KEY)
                .json(&json!({"messages": []})),
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.text());
    assert_eq!(h.mock.request_count(), 0);
}

#[tokio::test]
async fn refusals_come_in_the_callers_error_shape() {
    let h = gateway().await;
    let a = h
        .fetch(
            Req::post("/v1/messages")
                .header("x-api-key", "sk-wrong")
                .json(&message("claude-x")),
        )
        .await;
    assert_eq!(a.status, 401);
    assert_eq!(a.json()["type"], "error");
    assert_eq!(a.json()["error"]["type"], "authentication_error");
    let a = h
        .fetch(Req::post("/v1beta/models/gemini-x:generateContent?key=sk-wrong").json(&gemini()))
        .await;
    assert_eq!(a.status, 401);
    assert_eq!(a.json()["error"]["status"], "UNAUTHENTICATED");
    let a = h
        .fetch(Req::post("/v1/chat/completions").json(&chat("gpt-4o-mini")))
        .await;
    assert_eq!(a.status, 401);
    assert_eq!(a.json()["error"]["type"], "authentication_error");
    // A group proxy key is for its group's /proxy path, not the gateway.
    let a = h
        .fetch(
            Req::post("/v1/chat/completions")
                .bearer(PROXY_KEY)
                .json(&chat("gpt-4o-mini")),
        )
        .await;
    assert_eq!(a.status, 401);
    let a = h.fetch(Req::post("/v1/nothing").bearer(GLOBAL_KEY)).await;
    assert_eq!(a.status, 404);
    assert!(a.json()["error"].is_object());
    assert_eq!(h.mock.request_count(), 0);
}

#[tokio::test]
async fn the_next_tier_serves_when_every_key_of_the_first_fails() {
    let h = Harness::builder()
        .group(
            GroupSpec::openai("primary")
                .keys(["sk-p1", "sk-p2"])
                .models(["m"])
                .tier(0, 1)
                .config(json!({"max_retries": 1})),
        )
        .group(
            GroupSpec::openai("backup")
                .keys(["sk-b"])
                .models(["m"])
                .tier(1, 1),
        )
        .build()
        .await;
    for k in ["sk-p1", "sk-p2"] {
        h.mock.set_behavior(
            Some(k),
            Behavior::openai_error(500, "primary is down", "server_error", None),
        );
    }
    let a = h
        .fetch(
            Req::post("/v1/chat/completions")
                .bearer(GLOBAL_KEY)
                .json(&chat("m")),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(h.mock.requests_for_key("sk-b").len(), 1);
    assert_eq!(
        h.mock.requests_for_key("sk-p1").len() + h.mock.requests_for_key("sk-p2").len(),
        2,
        "both retries of the first tier were used"
    );
    let logs = h.logs();
    let kinds: Vec<_> = logs
        .iter()
        .map(|l| (l.group_name.as_str(), l.request_type, l.status_code))
        .collect();
    assert_eq!(
        kinds,
        [
            ("primary", RequestType::Retry, 500),
            ("primary", RequestType::Retry, 500),
            ("backup", RequestType::Final, 200),
        ]
    );
}

/// Every record of a request made with an access key names the key (its retries too, on a native
/// route and on `/proxy/{group}`); a request with a global or a group proxy key names none.
#[tokio::test]
async fn log_records_name_the_access_key_of_the_request() {
    let h = Harness::builder()
        .group(
            GroupSpec::openai("primary")
                .keys(["sk-p"])
                .models(["m"])
                .tier(0, 1)
                .config(json!({"max_retries": 0})),
        )
        .group(
            GroupSpec::openai("backup")
                .keys(["sk-b"])
                .models(["m"])
                .tier(1, 1),
        )
        .access_key({
            let mut k = access_key(7, TEAM_KEY);
            k.name = "team ünïcode".into();
            k
        })
        .build()
        .await;
    h.mock.set_behavior(
        Some("sk-p"),
        Behavior::openai_error(500, "primary is down", "server_error", None),
    );
    let native = |key: &str| {
        Req::post("/v1/chat/completions")
            .bearer(key)
            .json(&chat("m"))
    };
    let a = h.fetch(native(TEAM_KEY)).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let a = h
        .fetch(
            Req::post("/proxy/backup/v1/chat/completions")
                .bearer(TEAM_KEY)
                .json(&chat("m")),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let with_key = h.logs();
    let seen: Vec<_> = with_key
        .iter()
        .map(|l| {
            (
                l.group_name.as_str(),
                l.request_type,
                l.access_key_id,
                l.access_key_name.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("primary", RequestType::Retry, Some(7), "team ünïcode"),
            ("backup", RequestType::Final, Some(7), "team ünïcode"),
            ("backup", RequestType::Final, Some(7), "team ünïcode"),
        ]
    );

    let a = h.fetch(native(GLOBAL_KEY)).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let a = h
        .fetch(
            Req::post("/proxy/backup/v1/chat/completions")
                .bearer(PROXY_KEY)
                .json(&chat("m")),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let without = &h.logs()[with_key.len()..];
    assert_eq!(without.len(), 3, "{without:?}");
    for l in without {
        assert_eq!((l.access_key_id, l.access_key_name.as_str()), (None, ""));
    }
}

#[tokio::test]
async fn a_tier_is_shared_by_weight() {
    let h = Harness::builder()
        .group(
            GroupSpec::openai("three")
                .keys(["sk-3"])
                .models(["m"])
                .tier(0, 3),
        )
        .group(
            GroupSpec::openai("one")
                .keys(["sk-1"])
                .models(["m"])
                .tier(0, 1),
        )
        .group(
            GroupSpec::openai("spare")
                .keys(["sk-s"])
                .models(["m"])
                .tier(5, 1),
        )
        .group(
            GroupSpec::openai("off")
                .keys(["sk-0"])
                .models(["m"])
                .tier(0, 0),
        )
        .build()
        .await;
    for _ in 0..8 {
        let a = h
            .fetch(
                Req::post("/v1/chat/completions")
                    .bearer(GLOBAL_KEY)
                    .json(&chat("m")),
            )
            .await;
        assert_eq!(a.status, 200);
    }
    let n = |k: &str| h.mock.requests_for_key(k).len();
    assert_eq!((n("sk-3"), n("sk-1"), n("sk-s"), n("sk-0")), (6, 2, 0, 0));
}

#[tokio::test]
async fn access_key_filters_answer_403_and_refused_keys_401_without_an_upstream_call() {
    let restricted = "sk-gl-restricted-0123456789abcdefghij";
    let ip_bound = "sk-gl-ip-bound-0123456789abcdefghijkl";
    let h = Harness::builder()
        .group(
            GroupSpec::openai("mini")
                .keys(["sk-mini"])
                .models(["gpt-4o-mini", "gpt-4o"]),
        )
        .group(GroupSpec::openai("other").keys(["sk-other"]).models(["o3"]))
        .group(
            GroupSpec::anthropic("claude")
                .keys(["sk-ant"])
                .models(["claude-*"]),
        )
        .access_key({
            let mut k = access_key(1, restricted);
            k.groups = vec![1, 3];
            k.models = vec!["gpt-4o-*".into(), "claude-*".into()];
            k.protocols = vec![ChannelType::OpenAi];
            k
        })
        .access_key({
            let mut k = access_key(2, "sk-gl-disabled-0123456789abcdefghijk");
            k.enabled = false;
            k
        })
        .access_key({
            let mut k = access_key(3, "sk-gl-expired-0123456789abcdefghijkl");
            k.expires_at = Some(1_000_000_000);
            k
        })
        .access_key({
            let mut k = access_key(4, ip_bound);
            k.allowed_ips = vec!["10.0.0.0/8".into()];
            k
        })
        .build()
        .await;
    let post = |key: &str, model: &str| {
        Req::post("/v1/chat/completions")
            .bearer(key)
            .json(&chat(model))
    };
    let a = h.fetch(post(restricted, "gpt-4o-mini")).await;
    assert_eq!(a.status, 200, "{}", a.text());
    for (model, why) in [("gpt-4o", "model 'gpt-4o'"), ("o3", "model 'o3'")] {
        let a = h.fetch(post(restricted, model)).await;
        assert_eq!(a.status, 403, "{}", a.text());
        assert_eq!(a.json()["error"]["type"], "permission_error");
        assert!(a.text().contains(why), "{}", a.text());
    }
    let a = h
        .fetch(
            Req::post("/v1/messages")
                .header("x-api-key", restricted)
                .json(&message("claude-sonnet-4")),
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.text());
    assert!(a.text().contains("anthropic protocol"), "{}", a.text());
    // On /proxy/{group} too: an allowed group works, another is refused, and so is a model.
    let a = h
        .fetch(
            Req::post("/proxy/mini/v1/chat/completions")
                .bearer(restricted)
                .json(&chat("gpt-4o-mini")),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let a = h
        .fetch(
            Req::post("/proxy/other/v1/chat/completions")
                .bearer(restricted)
                .json(&chat("o3")),
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.text());
    assert_eq!(a.json()["code"], "FORBIDDEN");
    assert!(a.text().contains("group 'other'"), "{}", a.text());
    let a = h
        .fetch(
            Req::post("/proxy/mini/v1/chat/completions")
                .bearer(restricted)
                .json(&chat("gpt-4o")),
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.text());
    for (key, why) in [
        ("sk-gl-disabled-0123456789abcdefghijk", "disabled"),
        ("sk-gl-expired-0123456789abcdefghijkl", "expired"),
        (ip_bound, "address"),
    ] {
        let a = h.fetch(post(key, "gpt-4o-mini")).await;
        assert_eq!(a.status, 401, "{key}: {}", a.text());
        assert!(a.text().contains(why), "{}", a.text());
        let a = h
            .fetch(
                Req::post("/proxy/mini/v1/chat/completions")
                    .bearer(key)
                    .json(&chat("gpt-4o-mini")),
            )
            .await;
        assert_eq!(a.status, 401, "{key}: {}", a.text());
    }
    assert_eq!(h.mock.requests_for_key("sk-other").len(), 0);
    assert_eq!(h.mock.requests_for_key("sk-ant").len(), 0);
    assert_eq!(h.mock.requests_for_key("sk-mini").len(), 2);
}

#[tokio::test]
async fn model_lists_show_what_the_key_may_use_in_each_shape() {
    let restricted = "sk-gl-restricted-0123456789abcdefghij";
    let h = Harness::builder()
        .group(
            GroupSpec::openai("mini")
                .keys(["sk-mini"])
                .models(["gpt-4o-mini", "gpt-4.1*"])
                .with(|d| d.model_redirect_rules = [("fast".into(), "gpt-4o-mini".into())].into()),
        )
        .group(GroupSpec::openai("o").keys(["sk-o"]).models(["o3"]))
        .group(
            GroupSpec::anthropic("claude")
                .keys(["sk-ant"])
                .models(["claude-sonnet-4"]),
        )
        .group(
            GroupSpec::gemini("gem")
                .keys(["sk-gem"])
                .models(["gemini-2.5-flash"]),
        )
        .access_key({
            let mut k = access_key(1, restricted);
            k.groups = vec![1];
            k
        })
        .build()
        .await;
    let ids = |v: &Value, field: &str, key: &str| -> Vec<String> {
        v[field]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m[key].as_str().unwrap().to_owned())
            .collect()
    };
    let a = h.fetch(Req::get("/v1/models").bearer(GLOBAL_KEY)).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["object"], "list");
    assert_eq!(ids(&a.json(), "data", "id"), ["fast", "gpt-4o-mini", "o3"]);
    let a = h.fetch(Req::get("/v1/models").bearer(restricted)).await;
    assert_eq!(ids(&a.json(), "data", "id"), ["fast", "gpt-4o-mini"]);
    let a = h
        .fetch(
            Req::get("/v1/models")
                .header("x-api-key", GLOBAL_KEY)
                .header("anthropic-version", "2023-06-01"),
        )
        .await;
    assert_eq!(ids(&a.json(), "data", "id"), ["claude-sonnet-4"]);
    assert_eq!(a.json()["data"][0]["type"], "model");
    let a = h
        .fetch(Req::get("/v1beta/models").header("x-goog-api-key", GLOBAL_KEY))
        .await;
    assert_eq!(
        ids(&a.json(), "models", "name"),
        ["models/gemini-2.5-flash"]
    );
    // An alias routes like the model it stands for, and the group sends the real name.
    let a = h
        .fetch(
            Req::post("/v1/chat/completions")
                .bearer(GLOBAL_KEY)
                .json(&chat("fast")),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let sent = h.mock.requests_for_key("sk-mini");
    assert_eq!(sent.last().unwrap().json().unwrap()["model"], "gpt-4o-mini");
    assert_eq!(h.mock.requests().len(), 1, "listing touches no upstream");
}

#[tokio::test]
async fn discovery_lists_each_vendors_models_with_a_group_key() {
    use gpt_load_integration_tests::mock_upstream::Vendor;
    let h = Harness::builder()
        .group(GroupSpec::openai("oa").keys(["sk-oa"]))
        .group(GroupSpec::anthropic("an").keys(["sk-an"]))
        .group(GroupSpec::gemini("gm").keys(["sk-gm"]))
        .build()
        .await;
    h.mock
        .set_models(Vendor::OpenAi, vec!["o3".into(), "gpt-4o".into()]);
    h.mock.set_models(
        Vendor::Anthropic,
        vec!["claude-b".into(), "claude-a".into()],
    );
    h.mock.set_models(
        Vendor::Gemini,
        (0..3).map(|i| format!("gemini-{i}")).collect(),
    );
    let rt = |g: &str| h.state.runtime().group(g).cloned().unwrap();
    let d = gpt_load_worker::discover::discover_models;
    assert_eq!(d(&rt("oa"), "sk-oa").await.unwrap(), ["gpt-4o", "o3"]);
    assert_eq!(
        d(&rt("an"), "sk-an").await.unwrap(),
        ["claude-a", "claude-b"]
    );
    assert_eq!(
        d(&rt("gm"), "sk-gm").await.unwrap(),
        ["gemini-0", "gemini-1", "gemini-2"]
    );
    for k in ["sk-oa", "sk-an", "sk-gm"] {
        assert!(!h.mock.requests_for_key(k).is_empty(), "{k} was not used");
    }
    h.mock.set_behavior(
        Some("sk-oa"),
        Behavior::openai_error(401, "bad key sk-oa", "invalid_request_error", None),
    );
    let e = d(&rt("oa"), "sk-oa").await.unwrap_err();
    assert!(e.contains("401") && !e.contains("sk-oa"), "{e}");
}
