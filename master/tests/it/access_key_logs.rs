//! Request logs of access-key requests (issue 19), written through the master's own log writer
//! (the SQLite writer thread on a file, the pool on PostgreSQL and MariaDB): the access key's
//! `request_count` and `last_used_at` in `GET /api/access-keys` count each client request once
//! (final logs only, a batch delivered again by the Redis stream included), and the log API
//! filters by the key's id and name and shows both.

use chrono::{DateTime, TimeZone, Utc};
use gpt_load_common::log_record::{RequestLogRecord, RequestType};
use gpt_load_master::db::repo::logs::Replay;
use http::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Admin, Server, ServerDb};

fn at(min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 2, 10, min, 0).unwrap()
}

/// A log of group `group` at minute `min`, made with `key` (id and name) if any.
fn log(
    group: i64,
    key: Option<(i64, &str)>,
    kind: RequestType,
    ok: bool,
    min: u32,
) -> RequestLogRecord {
    RequestLogRecord {
        id: uuid::Uuid::now_v7().to_string(),
        timestamp: at(min),
        group_id: group,
        group_name: "team-group".into(),
        parent_group_id: None,
        parent_group_name: String::new(),
        key_value: String::new(),
        key_hash: String::new(),
        model: "gpt-4o-mini".into(),
        is_success: ok,
        source_ip: "127.0.0.1".into(),
        status_code: if ok { 200 } else { 500 },
        request_path: "/v1/chat/completions".into(),
        duration_ms: 12,
        error_message: if ok { String::new() } else { "down".into() },
        user_agent: "test".into(),
        request_type: kind,
        upstream_addr: "http://127.0.0.1:9/v1/chat/completions".into(),
        is_stream: false,
        request_body: String::new(),
        access_key_id: key.map(|(id, _)| id),
        access_key_name: key.map(|(_, n)| n.to_owned()).unwrap_or_default(),
    }
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// `(request_count, last_used_at)` of access key `id` in the list.
async fn usage(a: &Admin, id: i64) -> (i64, Option<DateTime<Utc>>) {
    let list = a.get("/api/access-keys").await;
    assert_eq!(list.status, StatusCode::OK, "{:?}", list.json);
    let k = list.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .unwrap()
        .clone();
    let last = (!k["last_used_at"].is_null()).then(|| time(&k["last_used_at"]));
    (k["request_count"].as_i64().unwrap(), last)
}

/// The logs `GET /api/logs?{query}` answers, and its total.
async fn logs(a: &Admin, query: &str) -> (Vec<Value>, i64) {
    let r = a.get(&format!("/api/logs?page_size=100&{query}")).await;
    assert_eq!(r.status, StatusCode::OK, "{query}: {:?}", r.json);
    let items = r.json["data"]["items"].as_array().unwrap().clone();
    (
        items,
        r.json["data"]["pagination"]["total_items"]
            .as_i64()
            .unwrap(),
    )
}

async fn counted_and_filtered(a: &Admin) {
    let group = a
        .group(
            json!({"name": "team-group", "channel_type": "openai", "test_model": "m",
            "upstreams": [{"url": "http://127.0.0.1:9/v1", "weight": 1}]}),
        )
        .await;
    let mut ids = Vec::new();
    for name in ["team_a", "team%b"] {
        let r = a.post("/api/access-keys", json!({"name": name})).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
        ids.push(r.json["data"]["id"].as_i64().unwrap());
    }
    let (ka, kb) = ((ids[0], "team_a"), (ids[1], "team%b"));
    assert_eq!(usage(a, ka.0).await, (0, None));

    // Key A: a request retried once, then a failed one; key B: one request; and one request
    // made with a proxy key.
    let first = vec![
        log(group, Some(ka), RequestType::Retry, false, 1),
        log(group, Some(ka), RequestType::Final, true, 2),
        log(group, Some(ka), RequestType::Final, false, 7),
        log(group, Some(kb), RequestType::Final, true, 3),
        log(group, None, RequestType::Final, true, 4),
    ];
    let mut batch = first.clone();
    a.state
        .log_writer
        .write_batch(&mut batch, Replay::Possible)
        .await
        .unwrap();
    assert_eq!(usage(a, ka.0).await, (2, Some(at(7))));
    assert_eq!(usage(a, kb.0).await, (1, Some(at(3))));

    // The stream delivers the batch again, with one more request of key A (earlier than its
    // last): only the new log counts, and the last use stays the latest.
    let mut again = first.clone();
    again.push(log(group, Some(ka), RequestType::Final, true, 5));
    a.state
        .log_writer
        .write_batch(&mut again, Replay::Possible)
        .await
        .unwrap();
    assert_eq!(usage(a, ka.0).await, (3, Some(at(7))));
    assert_eq!(usage(a, kb.0).await, (1, Some(at(3))));

    // The log API: by id, by name (a substring, `_` and `%` literal), and both shown.
    let (items, total) = logs(a, &format!("access_key_id={}", ka.0)).await;
    assert_eq!((items.len(), total), (4, 4));
    for l in &items {
        assert_eq!(
            (&l["access_key_id"], &l["access_key_name"]),
            (&json!(ka.0), &json!("team_a"))
        );
    }
    let (items, total) = logs(a, "access_key_name=m%25").await;
    assert_eq!(total, 1);
    assert_eq!(items[0]["access_key_id"], kb.0);
    let (_, total) = logs(a, "access_key_name=team").await;
    assert_eq!(total, 5);
    let (_, total) = logs(a, "access_key_name=_").await;
    assert_eq!(total, 4);
    let (_, total) = logs(
        a,
        &format!("access_key_id={}&request_type=final&is_success=true", ka.0),
    )
    .await;
    assert_eq!(total, 2);
    let (_, total) = logs(a, &format!("access_key_id={}", kb.0 + 100)).await;
    assert_eq!(total, 0);
    let (items, total) = logs(a, "").await;
    assert_eq!(total, 6);
    let without: Vec<&Value> = items
        .iter()
        .filter(|l| l["access_key_id"].is_null())
        .collect();
    assert_eq!(without.len(), 1);
    assert_eq!(without[0]["access_key_name"], "");

    // Malformed and overlong filters are a 400 naming the field.
    for (query, field) in [
        ("access_key_id=x".to_owned(), "access_key_id"),
        (
            format!("access_key_name={}", "n".repeat(1025)),
            "access_key_name",
        ),
    ] {
        let r = a.get(&format!("/api/logs?{query}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.json);
        assert!(
            r.json["message"].as_str().unwrap().contains(field),
            "{:?}",
            r.json
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn access_key_logs_are_counted_once_and_filtered_on_sqlite() {
    let a = Admin::start(&[]).await;
    counted_and_filtered(&a).await;
    a.stop().await;
}

async fn on_server(server: Server) {
    let db = ServerDb::create(server).await;
    let a = Admin::start(&[("DATABASE_DSN", &db.dsn)]).await;
    counted_and_filtered(&a).await;
    a.stop().await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn access_key_logs_are_counted_once_and_filtered_on_postgres() {
    on_server(Server::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn access_key_logs_are_counted_once_and_filtered_on_mariadb() {
    on_server(Server::MariaDb).await;
}
