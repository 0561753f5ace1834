//! The admin API's contract, in process: authentication and its throttle, the group and key
//! lifecycle with keys encrypted at rest, settings, and bad input answered 4xx in the envelope.

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{ADMIN_KEY, Admin};

fn group_body(name: &str) -> Value {
    json!({"name": name, "channel_type": "openai", "test_model": "gpt-4.1-nano",
        "upstreams": [{"url": "http://127.0.0.1:9/v1base", "weight": 1}],
        "proxy_keys": "sk-group-key"})
}

#[tokio::test(flavor = "multi_thread")]
async fn login_and_every_admin_route_need_the_admin_key() {
    let a = Admin::start(&[]).await;
    let ok = a
        .send(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"auth_key": ADMIN_KEY})),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.json);
    let wrong = a
        .send(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"auth_key": "nope"})),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    for path in [
        "/api/groups",
        "/api/keys?group_id=1",
        "/api/settings",
        "/api/logs",
    ] {
        let none = a.send(Method::GET, path, None, None).await;
        assert_eq!(none.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(none.json.get("code").is_some(), "{path}: {:?}", none.json);
        let bad = a.send(Method::GET, path, Some("sk-not-admin"), None).await;
        assert_eq!(bad.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    // The health check is public.
    let h = a.send(Method::GET, "/health", None, None).await;
    assert_eq!(h.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_wrong_keys_are_throttled_with_retry_after() {
    let a = Admin::start(&[]).await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let r = a
            .send(Method::GET, "/api/groups", Some("wrong-admin-key"), None)
            .await;
        statuses.push(r.status.as_u16());
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=60).contains(&wait), "{wait}");
        }
    }
    assert_eq!(&statuses[..10], &[401; 10], "{statuses:?}");
    assert_eq!(statuses[10..], [429, 429], "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_are_created_listed_updated_and_deleted() {
    let a = Admin::start(&[]).await;
    let id = a.group(group_body("main")).await;
    let dup = a.post("/api/groups", group_body("main")).await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert_eq!(dup.json["code"], "DUPLICATE_RESOURCE");

    let list = a.get("/api/groups").await;
    assert_eq!(list.status, StatusCode::OK);
    let groups = list.json["data"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{:?}", list.json);
    assert_eq!(groups[0]["name"], "main");
    assert_eq!(
        groups[0]["upstreams"][0]["url"],
        "http://127.0.0.1:9/v1base"
    );

    let up = a
        .put(
            &format!("/api/groups/{id}"),
            json!({"display_name": "Main group", "config": {"max_retries": 2}}),
        )
        .await;
    assert_eq!(up.status, StatusCode::OK, "{:?}", up.json);
    let list = a.get("/api/groups").await;
    assert_eq!(list.json["data"][0]["display_name"], "Main group");
    assert_eq!(list.json["data"][0]["config"]["max_retries"], 2);
    // The change is in the serving snapshot at once (read-your-writes on a single node).
    let snap = a.state.worker.snapshot();
    let g = snap.group_by_name("main").expect("in the snapshot");
    assert_eq!(g.config.max_retries, 2);

    let del = a.delete(&format!("/api/groups/{id}")).await;
    assert_eq!(del.status, StatusCode::OK, "{:?}", del.json);
    assert!(a.state.worker.snapshot().group_by_name("main").is_none());
    let gone = a.delete(&format!("/api/groups/{id}")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_added_listed_encrypted_at_rest_and_deleted() {
    let a = Admin::start(&[("ENCRYPTION_KEY", "an-encryption-key-for-in-process-tests")]).await;
    let gid = a.group(group_body("keys")).await;
    let added = a
        .post(
            "/api/keys/add-multiple",
            json!({"group_id": gid, "keys_text": "sk-one, sk-two\nsk-three;sk-one"}),
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{:?}", added.json);
    // (the repeated key counted once)
    assert_eq!(added.json["data"]["added_count"], 3);
    assert_eq!(added.json["data"]["ignored_count"], 0);
    // Keys already in the group are ignored.
    let again = a
        .post(
            "/api/keys/add-multiple",
            json!({"group_id": gid, "keys_text": "sk-one,sk-four"}),
        )
        .await;
    assert_eq!(again.json["data"]["added_count"], 1, "{:?}", again.json);
    assert_eq!(again.json["data"]["ignored_count"], 1);

    let list = a.get(&format!("/api/keys?group_id={gid}")).await;
    let mut values: Vec<String> = list.json["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key_value"].as_str().unwrap().to_owned())
        .collect();
    values.sort();
    assert_eq!(values, ["sk-four", "sk-one", "sk-three", "sk-two"]);
    assert_eq!(list.json["data"]["pagination"]["total_items"], 4);

    // Stored encrypted: no plaintext in the table.
    let pool = a.db().await;
    let stored: Vec<(String,)> = sqlx::query_as("SELECT key_value FROM api_keys")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 4);
    assert!(
        stored.iter().all(|(v,)| !v.starts_with("sk-")),
        "{stored:?}"
    );
    pool.close().await;

    // The live pool has them too.
    let counts = {
        use gpt_load_common::keystore::KeyStore;
        a.state.store.counts(gid).await.unwrap()
    };
    assert_eq!(counts.active, 4);

    let del = a
        .post(
            "/api/keys/delete-multiple",
            json!({"group_id": gid, "keys_text": "sk-two"}),
        )
        .await;
    assert_eq!(del.status, StatusCode::OK, "{:?}", del.json);
    assert_eq!(del.json["data"]["deleted_count"], 1);
    let list = a.get(&format!("/api/keys?group_id={gid}")).await;
    assert_eq!(list.json["data"]["pagination"]["total_items"], 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_are_validated_and_take_effect_at_once() {
    let a = Admin::start(&[]).await;
    let ok = a
        .put(
            "/api/settings",
            json!({"max_retries": 5, "request_timeout": 90}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.json);
    let settings = &a.state.worker.snapshot().settings;
    assert_eq!(settings.int("max_retries"), 5);
    assert_eq!(settings.int("request_timeout"), 90);
    for bad in [
        json!({"max_retries": "many"}),
        json!({"no_such_setting": 1}),
        json!({"max_retries": -1}),
    ] {
        let r = a.put("/api/settings", bad.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {:?}", r.json);
        assert!(r.json["code"].is_string(), "{:?}", r.json);
    }
    // Refused changes changed nothing.
    assert_eq!(a.state.worker.snapshot().settings.int("max_retries"), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_clear_4xx_in_the_envelope() {
    let a = Admin::start(&[]).await;
    let raw = |method: Method, path: &str, body: &'static str| {
        http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {ADMIN_KEY}"))
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body))
            .unwrap()
    };
    for (method, path, body, want) in [
        (Method::POST, "/api/groups", "{not json", 400),
        (Method::POST, "/api/groups", "[1,2]", 400),
        (Method::POST, "/api/groups", r#"{"name": 7}"#, 400),
        (Method::PUT, "/api/groups/abc", "{}", 400),
        (Method::PUT, "/api/groups/999", "{}", 404),
        (Method::DELETE, "/api/groups/999", "", 404),
        (
            Method::POST,
            "/api/keys/add-multiple",
            r#"{"group_id": "x", "keys_text": "a"}"#,
            400,
        ),
        (
            Method::POST,
            "/api/keys/add-multiple",
            r#"{"group_id": 999, "keys_text": "a"}"#,
            404,
        ),
        (Method::GET, "/api/keys", "", 400),
        (Method::GET, "/api/keys?group_id=-1", "", 400),
        (Method::GET, "/api/logs?start_time=yesterday", "", 400),
        (Method::GET, "/api/logs?request_type=0", "", 400),
        (Method::GET, "/api/dashboard/chart?groupId=x", "", 400),
        (Method::GET, "/api/nope", "", 404),
        (Method::PATCH, "/api/groups", "{}", 405),
    ] {
        let r = a.raw(raw(method.clone(), path, body)).await;
        assert_eq!(
            r.status.as_u16(),
            want,
            "{method} {path} {body}: {:?}",
            r.json
        );
        assert!(
            r.json.get("code").is_some() || r.json.get("error").is_some(),
            "{method} {path}: {:?}",
            r.json
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn link_local_upstreams_are_refused_unless_the_operator_allows_them() {
    let body = json!({"name": "meta", "channel_type": "openai", "test_model": "m",
        "upstreams": [{"url": "http://169.254.169.254/latest", "weight": 1}]});
    let a = Admin::start(&[]).await;
    let r = a.post("/api/groups", body.clone()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.json);
    assert!(
        r.json["message"]
            .as_str()
            .is_some_and(|m| m.contains("ALLOW_LINK_LOCAL_UPSTREAMS")),
        "{:?}",
        r.json
    );
    let allowed = Admin::start(&[("ALLOW_LINK_LOCAL_UPSTREAMS", "true")]).await;
    let r = allowed.post("/api/groups", body).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
}

/// Bodies are typed: a mistyped field is a 400 naming it, integral floats count as integers
/// (JavaScript clients send `3.0`), and every message is localised once, by `Accept-Language`.
#[tokio::test(flavor = "multi_thread")]
async fn typed_bodies_name_the_field_and_messages_follow_the_language() {
    let a = Admin::start(&[]).await;
    let mistyped = a.post("/api/groups", json!({"name": 7})).await;
    assert_eq!(mistyped.status, StatusCode::BAD_REQUEST);
    assert_eq!(mistyped.json["code"], "INVALID_JSON");
    let text = mistyped.json["message"].as_str().unwrap();
    assert!(text.contains("name"), "{text}");
    let mut body = group_body("floats");
    body["sort"] = json!(3.0);
    let created = a.post("/api/groups", body).await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.json);
    assert_eq!(created.json["data"]["sort"], 3);
    let fractional = a
        .put(
            &format!("/api/groups/{}", created.json["data"]["id"]),
            json!({"sort": 3.5}),
        )
        .await;
    assert_eq!(fractional.status, StatusCode::BAD_REQUEST);

    let in_lang = |lang: &'static str, body: &'static str| {
        http::Request::builder()
            .method(Method::POST)
            .uri("/api/groups")
            .header("authorization", format!("Bearer {ADMIN_KEY}"))
            .header("content-type", "application/json")
            .header("accept-language", lang)
            .body(axum::body::Body::from(body))
            .unwrap()
    };
    let mut seen = Vec::new();
    for (lang, want) in [
        ("en-US", "Invalid group name"),
        ("zh-CN,zh;q=0.9", "无效的分组名称"),
        ("ja", "無効なグループ名"),
        ("", "无效的分组名称"),
    ] {
        let r = a.raw(in_lang(lang, r#"{"name": "Bad Name"}"#)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{lang}");
        assert_eq!(r.json["code"], "VALIDATION_FAILED", "{lang}");
        let m = r.json["message"].as_str().unwrap().to_owned();
        assert!(m.starts_with(want), "{lang}: {m}");
        assert_eq!(
            r.headers.get("content-type").unwrap(),
            "application/json",
            "{lang}"
        );
        seen.push(m);
    }
    assert_ne!(seen[0], seen[2]);
    // Success messages too.
    let listed = a.get("/api/groups").await;
    assert_eq!(listed.json["message"], "Success");
    let zh = a
        .raw(
            http::Request::builder()
                .uri("/api/groups")
                .header("authorization", format!("Bearer {ADMIN_KEY}"))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(zh.json["message"], "操作成功");
}
