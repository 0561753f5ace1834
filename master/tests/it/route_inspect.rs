//! `POST /api/route/inspect`: the groups a native-route request would go to, in tier order, and
//! the reason every other group is left out.

use serde_json::{Value, json};

use crate::harness::Admin;

fn group(name: &str, channel: &str, extra: Value) -> Value {
    let mut body = json!({"name": name, "channel_type": channel, "test_model": "m",
        "upstreams": [{"url": "http://127.0.0.1:9/v1", "weight": 1}]});
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn the_inspector_orders_candidates_and_names_every_exclusion() {
    let a = Admin::start(&[]).await;
    let primary = a
        .group(group(
            "primary",
            "openai",
            json!({"models": ["gpt-*"], "priority": 0}),
        ))
        .await;
    let backup = a
        .group(group(
            "backup",
            "openai",
            json!({"models": ["gpt-4o"], "priority": 5}),
        ))
        .await;
    a.group(group("empty", "openai", json!({"models": ["gpt-4o"]})))
        .await;
    a.group(group("other-model", "openai", json!({"models": ["o3"]})))
        .await;
    a.group(group("unrouted", "openai", json!({}))).await;
    a.group(group("claude", "anthropic", json!({"models": ["*"]})))
        .await;
    for gid in [primary, backup] {
        let r = a
            .post(
                "/api/keys/add-multiple",
                json!({"group_id": gid, "keys_text": format!("sk-{gid}-a,sk-{gid}-b")}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.json);
    }
    let r = a
        .post(
            "/api/route/inspect",
            json!({"protocol": "openai", "model": "gpt-4o"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let d = &r.json["data"];
    assert_eq!(d["allowed"], true);
    let names: Vec<(&str, u64)> = d["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["tier"].as_u64().unwrap()))
        .collect();
    assert_eq!(names, [("primary", 0), ("backup", 1)]);
    assert_eq!(d["candidates"][0]["active_keys"], 2);
    let reason = |name: &str| -> String {
        d["excluded"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["reason"].as_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(reason("empty"), "no active keys");
    assert!(reason("other-model").contains("does not serve model"));
    assert!(reason("unrouted").contains("no models configured"));
    assert!(reason("claude").contains("does not serve this protocol"));

    // An access key restricted to the backup group, and to the OpenAI protocol.
    let k = a
        .post(
            "/api/access-keys",
            json!({"name": "team", "filters": {"groups": [backup], "protocols": ["openai"]}}),
        )
        .await;
    assert_eq!(k.status, 200, "{:?}", k.json);
    let id = k.json["data"]["id"].as_i64().unwrap();
    let r = a
        .post(
            "/api/route/inspect",
            json!({"access_key_id": id, "protocol": "openai", "model": "gpt-4o"}),
        )
        .await;
    let d = &r.json["data"];
    assert_eq!(d["candidates"].as_array().unwrap().len(), 1);
    assert_eq!(d["candidates"][0]["name"], "backup");
    assert!(
        d["excluded"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "primary"
                && e["reason"].as_str().unwrap().contains("group filter"))
    );
    let key = k.json["data"]["key"].as_str().unwrap();
    let r = a
        .post(
            "/api/route/inspect",
            json!({"key": key, "protocol": "anthropic", "model": "claude-x"}),
        )
        .await;
    assert_eq!(r.json["data"]["allowed"], false);
    assert!(
        r.json["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("anthropic protocol")
    );
    let bad = a
        .post(
            "/api/route/inspect",
            json!({"protocol": "smtp", "model": "x"}),
        )
        .await;
    assert_eq!(bad.status, 400);
    let unknown = a
        .post(
            "/api/route/inspect",
            json!({"key": "sk-gl-nope", "protocol": "openai", "model": "x"}),
        )
        .await;
    assert_eq!(unknown.status, 404);
}
