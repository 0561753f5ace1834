//! Access keys and the group routing fields through the admin API (issue 19): the key shown whole
//! once and masked afterwards, encrypted at rest, validation naming the field at fault, and every
//! change live in the published snapshot at once — on SQLite, PostgreSQL and MariaDB.

use gpt_load_common::crypto::sha256_hex;
use gpt_load_common::model::ChannelType;
use http::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Admin, Server, ServerDb};

fn group_body(name: &str) -> Value {
    json!({"name": name, "channel_type": "openai", "test_model": "gpt-4.1-nano",
        "upstreams": [{"url": "http://127.0.0.1:9/v1", "weight": 1}]})
}

/// 2030-01-01T00:00:00Z.
const EXPIRY: i64 = 1_893_456_000;

#[tokio::test(flavor = "multi_thread")]
async fn access_keys_round_trip_with_the_key_shown_once() {
    let a = Admin::start(&[("ENCRYPTION_KEY", "an-encryption-key-for-access-keys")]).await;
    let g1 = a.group(group_body("one")).await;
    a.group(group_body("two")).await;

    let created = a
        .post(
            "/api/access-keys",
            json!({"name": " ci ", "filters": {"groups": [g1], "models": ["gpt-*"],
                "protocols": ["openai"]}, "allowed_ips": ["10.0.0.0/8"],
                "expires_at": "2030-01-01T08:00:00+08:00"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.json);
    assert_eq!(created.json["code"], 0);
    let data = &created.json["data"];
    let plain = data["key"].as_str().unwrap().to_owned();
    assert!(plain.starts_with("sk-gl-") && plain.len() == 46, "{plain}");
    assert!(
        plain[6..].chars().all(|c| c.is_ascii_alphanumeric()),
        "{plain}"
    );
    let id = data["id"].as_i64().unwrap();
    assert_eq!(data["name"], "ci");
    assert_eq!(data["status"], "active");
    assert_eq!(
        data["filters"],
        json!({"groups": [g1], "models": ["gpt-*"], "protocols": ["openai"]})
    );
    assert_eq!(data["allowed_ips"], json!(["10.0.0.0/8"]));
    assert_eq!(data["expires_at"], "2030-01-01T00:00:00Z");
    assert!(data["created_at"].as_str().unwrap().starts_with("20"));
    assert_eq!(data["last_used_at"], Value::Null);
    assert_eq!(data["request_count"], 0);

    // Listed masked, and nowhere whole.
    let list = a.get("/api/access-keys").await;
    assert_eq!(list.status, StatusCode::OK, "{:?}", list.json);
    let items = list.json["data"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    let masked = items[0]["key"].as_str().unwrap();
    assert_eq!(
        masked,
        format!("{}…{}", &plain[..10], &plain[plain.len() - 4..])
    );
    assert!(!list.json.to_string().contains(&plain));
    assert_eq!(items[0]["filters"], data["filters"]);

    // Encrypted at rest; the hash is the cipher's (keyed), not a bare SHA-256.
    let (stored, hash): (String, String) =
        sqlx::query_as("SELECT key_value, key_hash FROM access_keys WHERE id = ?")
            .bind(id)
            .fetch_one(&a.db().await)
            .await
            .unwrap();
    assert!(!stored.contains(&plain[6..]), "{stored}");
    assert_eq!(hash.len(), 64);
    assert_ne!(hash, sha256_hex(&plain));

    // Live in the snapshot, found by the key, with its filters.
    let snap = a.state.worker.snapshot();
    let k = snap.access_key(&plain).expect("in the snapshot");
    assert_eq!(
        (k.def.id, k.def.name.as_str(), k.def.enabled),
        (id, "ci", true)
    );
    assert_eq!(k.def.groups, vec![g1]);
    assert_eq!(k.def.models, vec!["gpt-*".to_owned()]);
    assert_eq!(k.def.protocols, vec![ChannelType::OpenAi]);
    assert_eq!(k.def.allowed_ips, vec!["10.0.0.0/8".to_owned()]);
    assert_eq!(k.def.expires_at, Some(EXPIRY));
    assert!(k.usable(EXPIRY - 1, "10.1.2.3").is_ok());
    assert!(k.usable(EXPIRY - 1, "192.168.0.1").is_err());
    assert!(k.allows_group(g1) && !k.allows_group(g1 + 1));
    assert!(snap.access_key("sk-gl-not-a-key-of-ours-0000").is_none());

    // Disabled: still in the snapshot, refused as unauthenticated.
    let up = a
        .put(
            &format!("/api/access-keys/{id}"),
            json!({"status": "disabled", "name": "ci-2", "expires_at": null,
                "filters": {"groups": [], "models": [], "protocols": []}, "allowed_ips": []}),
        )
        .await;
    assert_eq!(up.status, StatusCode::OK, "{:?}", up.json);
    assert_eq!(up.json["data"]["key"], masked);
    assert_eq!(up.json["data"]["expires_at"], Value::Null);
    assert_eq!(up.json["data"]["status"], "disabled");
    let snap = a.state.worker.snapshot();
    let k = snap
        .access_key(&plain)
        .expect("a disabled key stays in the snapshot");
    assert!(!k.def.enabled);
    assert_eq!((k.def.expires_at, k.def.groups.len()), (None, 0));
    assert_eq!(k.usable(0, "10.1.2.3"), Err("this access key is disabled"));

    // Partial: what is absent stays.
    let up = a
        .put(
            &format!("/api/access-keys/{id}"),
            json!({"status": "active"}),
        )
        .await;
    assert_eq!(up.status, StatusCode::OK, "{:?}", up.json);
    assert_eq!(up.json["data"]["name"], "ci-2");
    assert!(
        a.state
            .worker
            .snapshot()
            .access_key(&plain)
            .unwrap()
            .def
            .enabled
    );

    // A key of the administrator's choosing; the same key twice is a conflict.
    let own = "my-own-access-key-0001";
    let mine = a
        .post("/api/access-keys", json!({"name": "own", "key": own}))
        .await;
    assert_eq!(mine.status, StatusCode::OK, "{:?}", mine.json);
    assert_eq!(mine.json["data"]["key"], own);
    let dup = a
        .post("/api/access-keys", json!({"name": "again", "key": own}))
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT, "{:?}", dup.json);
    assert_eq!(dup.json["code"], "DUPLICATE_RESOURCE");
    assert!(!dup.json.to_string().contains(own));
    assert!(a.state.worker.snapshot().access_key(own).is_some());

    // Deleted: gone from the list and the snapshot.
    let del = a.delete(&format!("/api/access-keys/{id}")).await;
    assert_eq!(del.status, StatusCode::OK, "{:?}", del.json);
    assert_eq!(del.json["message"], "Access key deleted successfully");
    assert!(a.state.worker.snapshot().access_key(&plain).is_none());
    let list = a.get("/api/access-keys").await;
    assert_eq!(list.json["data"].as_array().unwrap().len(), 1);
    let again = a.delete(&format!("/api/access-keys/{id}")).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let missing = a
        .put(&format!("/api/access-keys/{id}"), json!({"name": "x"}))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let bad_id = a.put("/api/access-keys/abc", json!({"name": "x"})).await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread")]
async fn access_key_validation_names_the_field() {
    let a = Admin::start(&[]).await;
    let spaced = "has whitespace in the key";
    for (body, field) in [
        (json!({"name": "  "}), "name"),
        (json!({}), "name"),
        (
            json!({"name": "x", "filters": {"groups": [999]}}),
            "filters.groups",
        ),
        (
            json!({"name": "x", "filters": {"protocols": ["azure"]}}),
            "filters.protocols",
        ),
        (
            json!({"name": "x", "filters": {"models": [""]}}),
            "filters.models",
        ),
        (
            json!({"name": "x", "allowed_ips": ["10.0.0.0/33"]}),
            "allowed_ips",
        ),
        (
            json!({"name": "x", "allowed_ips": ["example.com"]}),
            "allowed_ips",
        ),
        (
            json!({"name": "x", "expires_at": "next week"}),
            "expires_at",
        ),
        (json!({"name": "x", "key": "too-short"}), "key"),
        (json!({"name": "x", "key": spaced}), "key"),
        (json!({"name": "x", "status": "paused"}), "status"),
    ] {
        let r = a.post("/api/access-keys", body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {:?}", r.json);
        assert_eq!(r.json["code"], "VALIDATION_FAILED", "{body}");
        let message = r.json["message"].as_str().unwrap();
        assert!(message.contains(field), "{body}: {message}");
        assert!(!message.contains(spaced), "{message}");
    }
    let list = a.get("/api/access-keys").await;
    assert_eq!(list.json["data"], json!([]), "nothing was created");

    let id = a.post("/api/access-keys", json!({"name": "ok"})).await.json["data"]["id"]
        .as_i64()
        .unwrap();
    for (body, field) in [
        (json!({"expires_at": 5}), "expires_at"),
        (json!({"name": ""}), "name"),
        (json!({"filters": {"groups": [12345]}}), "filters.groups"),
    ] {
        let r = a.put(&format!("/api/access-keys/{id}"), body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {:?}", r.json);
        assert!(
            r.json["message"].as_str().unwrap().contains(field),
            "{body}: {:?}",
            r.json
        );
    }
    // In the caller's language.
    let zh = a
        .raw(
            http::Request::builder()
                .method(http::Method::POST)
                .uri("/api/access-keys")
                .header(
                    "authorization",
                    format!("Bearer {}", crate::harness::ADMIN_KEY),
                )
                .header("content-type", "application/json")
                .header("accept-language", "zh-CN")
                .body(axum::body::Body::from(r#"{"name":""}"#))
                .unwrap(),
        )
        .await;
    assert_eq!(zh.status, StatusCode::BAD_REQUEST);
    assert!(
        zh.json["message"].as_str().unwrap().contains("无效"),
        "{:?}",
        zh.json
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn group_routing_fields_round_trip() {
    let a = Admin::start(&[]).await;
    let plain_id = a.group(group_body("plain")).await;
    let mut body = group_body("routed");
    body["models"] = json!(["gpt-4o", " gpt-4o-* ", "gpt-4o"]);
    body["priority"] = json!(-1);
    body["weight"] = json!(3);
    let id = a.group(body).await;

    let list = a.get("/api/groups").await;
    let by_id = |id: i64| {
        list.json["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["id"] == id)
            .unwrap()
            .clone()
    };
    let routed = by_id(id);
    assert_eq!(routed["models"], json!(["gpt-4o", "gpt-4o-*"]));
    assert_eq!(
        (routed["priority"].as_i64(), routed["weight"].as_i64()),
        (Some(-1), Some(3))
    );
    let plain = by_id(plain_id);
    assert_eq!(plain["models"], json!([]));
    assert_eq!(
        (plain["priority"].as_i64(), plain["weight"].as_i64()),
        (Some(0), Some(1))
    );

    let snap = a.state.worker.snapshot();
    let g = snap.group_by_name("routed").unwrap();
    assert_eq!(
        g.def.models,
        vec!["gpt-4o".to_owned(), "gpt-4o-*".to_owned()]
    );
    assert_eq!((g.def.priority, g.def.weight), (-1, 3));
    assert!(g.def.serves_model("gpt-4o-mini") && !g.def.serves_model("o3"));
    assert!(
        !snap
            .group_by_name("plain")
            .unwrap()
            .def
            .serves_model("gpt-4o")
    );

    let up = a
        .put(
            &format!("/api/groups/{id}"),
            json!({"weight": 0, "priority": 2}),
        )
        .await;
    assert_eq!(up.status, StatusCode::OK, "{:?}", up.json);
    assert_eq!(up.json["data"]["models"], json!(["gpt-4o", "gpt-4o-*"]));
    assert_eq!(
        (
            up.json["data"]["priority"].as_i64(),
            up.json["data"]["weight"].as_i64()
        ),
        (Some(2), Some(0))
    );
    let up = a
        .put(&format!("/api/groups/{id}"), json!({"models": []}))
        .await;
    assert_eq!(up.json["data"]["models"], json!([]));
    let g = a
        .state
        .worker
        .snapshot()
        .group_by_name("routed")
        .unwrap()
        .clone();
    assert_eq!(
        (g.def.models.len(), g.def.priority, g.def.weight),
        (0, 2, 0)
    );

    for (body, field) in [
        (json!({"weight": -1}), "weight"),
        (json!({"weight": 1001}), "weight"),
        (json!({"models": ["ok", " "]}), "models"),
    ] {
        let r = a.put(&format!("/api/groups/{id}"), body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {:?}", r.json);
        assert_eq!(r.json["code"], "VALIDATION_FAILED");
        assert!(
            r.json["message"].as_str().unwrap().contains(field),
            "{body}: {:?}",
            r.json
        );
    }
    // Copies keep the routing fields.
    let copy = a
        .post(
            &format!("/api/groups/{plain_id}/copy"),
            json!({"copy_keys": "none"}),
        )
        .await;
    assert_eq!(copy.status, StatusCode::OK, "{:?}", copy.json);
    assert_eq!(copy.json["data"]["group"]["weight"], 1);
}

/// The same lifecycle on a server database: every statement in each dialect.
async fn lifecycle_on(server: Server) {
    let db = ServerDb::create(server).await;
    let a = Admin::start(&[
        ("DATABASE_DSN", &db.dsn),
        ("ENCRYPTION_KEY", "an-encryption-key-for-access-keys"),
    ])
    .await;
    let mut body = group_body("routed");
    body["models"] = json!(["claude-*"]);
    body["priority"] = json!(4);
    body["weight"] = json!(7);
    let gid = a.group(body).await;
    let g = a
        .state
        .worker
        .snapshot()
        .group_by_name("routed")
        .unwrap()
        .clone();
    assert_eq!(
        (g.def.models.clone(), g.def.priority, g.def.weight),
        (vec!["claude-*".to_owned()], 4, 7)
    );

    let created = a
        .post(
            "/api/access-keys",
            json!({"name": "srv", "filters": {"groups": [gid], "protocols": ["anthropic"]},
                "expires_at": "2030-01-01T00:00:00Z", "allowed_ips": ["::1"]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.json);
    let plain = created.json["data"]["key"].as_str().unwrap().to_owned();
    let id = created.json["data"]["id"].as_i64().unwrap();
    let k = a
        .state
        .worker
        .snapshot()
        .access_key(&plain)
        .unwrap()
        .clone();
    assert_eq!(k.def.expires_at, Some(EXPIRY));
    assert_eq!(k.def.protocols, vec![ChannelType::Anthropic]);

    let list = a.get("/api/access-keys").await;
    assert_eq!(list.status, StatusCode::OK, "{:?}", list.json);
    assert_eq!(list.json["data"][0]["expires_at"], "2030-01-01T00:00:00Z");
    assert_ne!(list.json["data"][0]["key"], plain.as_str());
    let dup = a
        .post("/api/access-keys", json!({"name": "dup", "key": plain}))
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT, "{:?}", dup.json);

    let up = a
        .put(
            &format!("/api/access-keys/{id}"),
            json!({"status": "disabled", "expires_at": null}),
        )
        .await;
    assert_eq!(up.status, StatusCode::OK, "{:?}", up.json);
    // Unchanged values (MySQL reports no affected row) are not "not found".
    let same = a
        .put(
            &format!("/api/access-keys/{id}"),
            json!({"status": "disabled"}),
        )
        .await;
    assert_eq!(same.status, StatusCode::OK, "{:?}", same.json);
    let k = a
        .state
        .worker
        .snapshot()
        .access_key(&plain)
        .unwrap()
        .clone();
    assert_eq!((k.def.enabled, k.def.expires_at), (false, None));

    let del = a.delete(&format!("/api/access-keys/{id}")).await;
    assert_eq!(del.status, StatusCode::OK, "{:?}", del.json);
    assert!(a.state.worker.snapshot().access_key(&plain).is_none());
    a.stop().await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn access_keys_and_routing_fields_on_postgres() {
    lifecycle_on(Server::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn access_keys_and_routing_fields_on_mariadb() {
    lifecycle_on(Server::MariaDb).await;
}
