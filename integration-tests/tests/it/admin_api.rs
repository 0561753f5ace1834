//! The management API as a new user drives it, on each of the three databases: log in, create a
//! group, import 10 000 keys, page through them, change a setting and see it applied, restart and
//! find everything still there.

use std::collections::HashSet;
use std::sync::Arc;

use gpt_load_integration_tests::harness::{ADMIN_KEY, Backend, Server, TestDb};
use serde_json::{Value, json};

const ENC: &str = "integration-encryption-key-0123456789";

async fn lifecycle(backend: Backend) {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let db = TestDb::create(backend, &dir).await;
    let mut s = Server::start(
        dir.clone(),
        &[("DATABASE_DSN", &db.dsn), ("ENCRYPTION_KEY", ENC)],
    )
    .await;

    // Login: right key, wrong key.
    let r = s
        .client()
        .post(s.url("/api/auth/login"))
        .json(&json!({"auth_key": ADMIN_KEY}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .client()
        .post(s.url("/api/auth/login"))
        .json(&json!({"auth_key": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = s.client().get(s.url("/api/groups")).send().await.unwrap();
    assert_eq!(r.status(), 401, "admin routes need AUTH_KEY");

    let gid = s
        .create_group(json!({
            "name": "main", "display_name": "Main", "channel_type": "openai", "test_model": "gpt-4.1-nano",
            "upstreams": [{"url": "http://127.0.0.1:9/v1base", "weight": 1}], "proxy_keys": "sk-group-key",
            "config": {"max_retries": 2}, "header_rules": [{"key": "x-team", "value": "ai", "action": "set"}],
            "model_redirect_rules": {"gpt-4": "gpt-4o"}, "param_overrides": {"temperature": 0.2}
        }))
        .await;
    let (status, dup) = s.post("/api/groups", json!({"name": "main", "channel_type": "openai", "test_model": "m", "upstreams": [{"url": "http://x", "weight": 1}]})).await;
    assert_eq!(
        (status, dup["code"].as_str()),
        (409, Some("DUPLICATE_RESOURCE"))
    );

    // 10 000 keys through the async import task.
    let keys: Vec<String> = (0..10_000)
        .map(|i| format!("sk-test-{i:05}-{}", uuid::Uuid::new_v4().simple()))
        .collect();
    let (status, v) = s
        .post(
            "/api/keys/add-async",
            json!({"group_id": gid, "keys_text": keys.join("\n")}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["task_type"], "KEY_IMPORT");
    let task = s.wait_task().await;
    assert_eq!(task["result"]["added_count"], 10_000, "{task}");
    assert_eq!(task["processed"], 10_000);

    // Page through them.
    let mut seen = HashSet::new();
    for page in 1..=10 {
        let (status, v) = s
            .get(&format!(
                "/api/keys?group_id={gid}&page={page}&page_size=1000"
            ))
            .await;
        assert_eq!(status, 200);
        let items = v["data"]["items"].as_array().unwrap();
        assert_eq!(items.len(), 1000, "page {page}");
        assert_eq!(v["data"]["pagination"]["total_items"], 10_000);
        assert_eq!(v["data"]["pagination"]["total_pages"], 10);
        for it in items {
            assert_eq!(it["status"], "active");
            seen.insert(it["key_value"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(
        seen,
        keys.iter().cloned().collect::<HashSet<_>>(),
        "every key, decrypted, exactly once"
    );
    let (_, v) = s
        .get(&format!(
            "/api/keys?group_id={gid}&key_value={}",
            keys[1234]
        ))
        .await;
    assert_eq!(v["data"]["items"].as_array().unwrap().len(), 1);
    assert_eq!(v["data"]["items"][0]["key_value"], keys[1234].as_str());

    // Encrypted at rest.
    let stored = stored_key_values(&db).await;
    assert_eq!(stored.len(), 10_000);
    assert!(
        stored
            .iter()
            .all(|v| !v.starts_with("sk-") && v.chars().all(|c| c.is_ascii_hexdigit()))
    );

    // Adding again ignores duplicates.
    let (_, v) = s
        .post(
            "/api/keys/add-multiple",
            json!({"group_id": gid, "keys_text": format!("{},{}", keys[0], "sk-brand-new")}),
        )
        .await;
    assert_eq!(
        v["data"],
        json!({"added_count": 1, "ignored_count": 1, "total_in_group": 10_001})
    );

    // A setting changed is applied at once.
    let (status, v) = s
        .put(
            "/api/settings",
            json!({"app_url": "http://gateway.example:8080", "max_retries": 5}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let (_, v) = s.get("/api/groups").await;
    assert_eq!(
        v["data"][0]["endpoint"],
        "http://gateway.example:8080/proxy/main"
    );
    let (status, v) = s.put("/api/settings", json!({"request_timeout": 0})).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("VALIDATION_FAILED")),
        "{v}"
    );
    assert!(v["message"].as_str().unwrap().contains("request_timeout"));

    // Restart: everything is still there.
    s.restart().await;
    let (_, v) = s.get("/api/groups").await;
    let g = &v["data"][0];
    assert_eq!(g["name"], "main");
    assert_eq!(g["endpoint"], "http://gateway.example:8080/proxy/main");
    assert_eq!(g["config"], json!({"max_retries": 2}));
    assert_eq!(
        g["header_rules"],
        json!([{"key": "X-Team", "value": "ai", "action": "set"}])
    );
    assert_eq!(g["model_redirect_rules"], json!({"gpt-4": "gpt-4o"}));
    assert_eq!(g["param_overrides"], json!({"temperature": 0.2}));
    assert_eq!(g["proxy_keys"], "sk-group-key");
    let (_, v) = s.get(&format!("/api/groups/{gid}/stats")).await;
    assert_eq!(v["data"]["key_stats"]["total_keys"], 10_001);
    let (_, v) = s.get("/api/settings").await;
    let all: Vec<&Value> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["settings"].as_array().unwrap())
        .collect();
    let max_retries = all.iter().find(|x| x["key"] == "max_retries").unwrap();
    assert_eq!(max_retries["value"], 5);
    let (_, v) = s
        .get(&format!(
            "/api/keys?group_id={gid}&key_value={}",
            keys[9999]
        ))
        .await;
    assert_eq!(v["data"]["items"][0]["key_value"], keys[9999].as_str());

    s.stop().await;
    db.drop_db().await;
}

async fn stored_key_values(db: &TestDb) -> Vec<String> {
    match db.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            sqlx::query_scalar("SELECT key_value FROM api_keys WHERE key_value <> ''")
                .fetch_all(&pool)
                .await
                .unwrap()
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            sqlx::query_scalar("SELECT key_value FROM api_keys")
                .fetch_all(&pool)
                .await
                .unwrap()
        }
        Backend::MariaDb => {
            let pool = sqlx::MySqlPool::connect(&db.url).await.unwrap();
            sqlx::query_scalar("SELECT key_value FROM api_keys")
                .fetch_all(&pool)
                .await
                .unwrap()
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_sqlite() {
    lifecycle(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_postgres() {
    lifecycle(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_mariadb() {
    lifecycle(Backend::MariaDb).await;
}

/// Bad input anywhere is a 4xx in GPT-Load's envelope, never a 500.
#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_clear_4xx() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let s = Server::start(dir, &[]).await;
    let raw = |method: reqwest::Method, path: &str, body: &'static str| {
        s.client()
            .request(method, s.url(path))
            .header("Authorization", format!("Bearer {ADMIN_KEY}"))
            .header("Content-Type", "application/json")
            .body(body)
    };
    for (method, path, body, want) in [
        (reqwest::Method::POST, "/api/groups", "{not json", 400),
        (reqwest::Method::POST, "/api/groups", "[1,2]", 400),
        (reqwest::Method::POST, "/api/groups", r#"{"name": 7}"#, 400),
        (reqwest::Method::PUT, "/api/groups/abc", "{}", 400),
        (reqwest::Method::PUT, "/api/groups/999", "{}", 404),
        (reqwest::Method::DELETE, "/api/groups/999", "", 404),
        (
            reqwest::Method::POST,
            "/api/keys/add-multiple",
            r#"{"group_id": "x", "keys_text": "a"}"#,
            400,
        ),
        (
            reqwest::Method::POST,
            "/api/keys/add-multiple",
            r#"{"group_id": 999, "keys_text": "a"}"#,
            404,
        ),
        (reqwest::Method::GET, "/api/keys", "", 400),
        (reqwest::Method::GET, "/api/keys?group_id=-1", "", 400),
        (
            reqwest::Method::PUT,
            "/api/settings",
            r#"{"max_retries": "many"}"#,
            400,
        ),
        (
            reqwest::Method::PUT,
            "/api/settings",
            r#"{"no_such_setting": 1}"#,
            400,
        ),
        (
            reqwest::Method::PUT,
            "/api/keys/1/notes",
            r#"{"notes": 5}"#,
            400,
        ),
        (
            reqwest::Method::PUT,
            "/api/keys/77/notes",
            r#"{"notes": "x"}"#,
            404,
        ),
        (
            reqwest::Method::GET,
            "/api/logs?start_time=yesterday",
            "",
            400,
        ),
        (reqwest::Method::GET, "/api/logs?request_type=0", "", 400),
        // A repeated query parameter: the first value counts, as in GPT-Load 1.x (gin).
        (
            reqwest::Method::GET,
            "/api/logs?request_type=bogus&request_type=final",
            "",
            400,
        ),
        (
            reqwest::Method::GET,
            "/api/dashboard/chart?groupId=x&groupId=1",
            "",
            400,
        ),
        (
            reqwest::Method::GET,
            "/api/logs/export?request_type=FINAL",
            "",
            400,
        ),
        (
            reqwest::Method::GET,
            "/api/dashboard/chart?groupId=x",
            "",
            400,
        ),
        (reqwest::Method::GET, "/api/nope", "", 404),
    ] {
        let r = raw(method.clone(), path, body).send().await.unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, want, "{method} {path} {body}: {v}");
        assert!(
            v.get("code").is_some() || v.get("error").is_some(),
            "{method} {path}: {v}"
        );
    }
    // Oversized bodies are refused with 413.
    let big = "x".repeat(65 * 1024 * 1024);
    let r = s
        .client()
        .post(s.url("/api/keys/add-multiple"))
        .header("Authorization", format!("Bearer {ADMIN_KEY}"))
        .header("Content-Type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(!s.logs().contains("panicked"), "{}", s.logs());
}

/// Repeated wrong admin keys from one address are throttled with 429 + Retry-After.
#[tokio::test(flavor = "multi_thread")]
async fn failed_logins_are_throttled() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let s = Server::start(dir, &[]).await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let r = s
            .client()
            .post(s.url("/api/auth/login"))
            .json(&json!({"auth_key": "wrong"}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(&statuses[..10], &[401; 10]);
    assert_eq!(statuses[11], 429);
    let r = s
        .client()
        .post(s.url("/api/auth/login"))
        .json(&json!({"auth_key": ADMIN_KEY}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        429,
        "a locked-out address stays locked for the block period"
    );
    assert!(r.headers().get("retry-after").is_some());
}

/// Copying a group re-imports its keys as a task; while another task runs the copy is refused
/// with 409 and nothing is created (it never comes without its keys).
#[tokio::test(flavor = "multi_thread")]
async fn copy_waits_for_the_task_runner() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let s = Server::start(dir, &[]).await;
    let group = |name: &str| {
        json!({"name": name, "channel_type": "openai", "test_model": "m",
            "upstreams": [{"url": "http://127.0.0.1:9", "weight": 1}]})
    };
    let src = s.create_group(group("src")).await;
    let (status, v) = s
        .post(
            "/api/keys/add-multiple",
            json!({"group_id": src, "keys_text": "sk-a,sk-b,sk-c"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");

    // A long import into another group holds the task runner.
    let other = s.create_group(group("other")).await;
    let keys: Vec<String> = (0..30_000).map(|i| format!("sk-bulk-{i:06}")).collect();
    let (status, v) = s
        .post(
            "/api/keys/add-async",
            json!({"group_id": other, "keys_text": keys.join("\n")}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = s
        .post(
            &format!("/api/groups/{src}/copy"),
            json!({"copy_keys": "all"}),
        )
        .await;
    // The import takes seconds; the copy asked for right after it started is refused.
    assert_eq!(
        (status, v["code"].as_str()),
        (409, Some("TASK_IN_PROGRESS")),
        "{v}"
    );
    let (_, groups) = s.get("/api/groups").await;
    let names: Vec<&str> = groups["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert_eq!(names, ["other", "src"], "no copy was created");
    s.wait_task().await;

    // Once the runner is free the copy comes with its keys.
    let (status, v) = s
        .post(
            &format!("/api/groups/{src}/copy"),
            json!({"copy_keys": "all"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let copy = v["data"]["group"]["id"].as_i64().unwrap();
    assert_eq!(v["data"]["group"]["name"], "src_copy");
    let task = s.wait_task().await;
    assert_eq!(task["result"]["added_count"], 3, "{task}");
    let (_, keys) = s.get(&format!("/api/keys?group_id={copy}")).await;
    assert_eq!(keys["data"]["pagination"]["total_items"], 3, "{keys}");
}

/// Every text filter of the log list and its export is bounded: a 50 000-character value (past
/// SQLite's LIKE pattern limit, which made it a 500 `DATABASE_ERROR`) is a 400 that names the
/// field, and a value at the limit is accepted.
#[tokio::test(flavor = "multi_thread")]
async fn long_log_filters_are_refused_by_name() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let s = Server::start(dir, &[]).await;
    let long = "x".repeat(50_000);
    for path in ["/api/logs", "/api/logs/export"] {
        for field in [
            "group_name",
            "parent_group_name",
            "model",
            "error_contains",
            "source_ip",
            "request_type",
            "key_value",
        ] {
            let (status, v) = s.get(&format!("{path}?{field}={long}")).await;
            assert_eq!(status, 400, "{path} {field}: {v}");
            assert_eq!(v["code"], "VALIDATION_FAILED", "{path} {field}: {v}");
            let msg = v["message"].as_str().unwrap_or_default();
            assert!(msg.contains(field), "{path} {field}: {msg}");
        }
        let at_limit = "y".repeat(1024);
        let (status, v) = s
            .get(&format!(
                "{path}?group_name={at_limit}&error_contains={at_limit}"
            ))
            .await;
        assert_eq!(status, 200, "{path} at the limit: {v}");
    }
    let (status, v) = s
        .get(&format!("/api/keys?group_id=1&key_value={long}"))
        .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("VALIDATION_FAILED")),
        "{v}"
    );
    assert!(!s.logs().contains("panicked"), "{}", s.logs());
}

/// A vendor key longer than 4 096 bytes is refused with a 400 naming its line, on every path
/// that takes key text; the async import refuses it before starting a task.
#[tokio::test(flavor = "multi_thread")]
async fn oversized_keys_are_refused_by_line() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let s = Server::start(dir, &[]).await;
    let gid = s
        .create_group(
            json!({"name": "g", "channel_type": "openai", "test_model": "m",
            "upstreams": [{"url": "http://127.0.0.1:9", "weight": 1}]}),
        )
        .await;
    let big = format!("sk-{}", "k".repeat(4_094));
    let text = format!("sk-one\nsk-two, sk-three\n{big}\nsk-four");
    for path in [
        "/api/keys/add-multiple",
        "/api/keys/add-async",
        "/api/keys/delete-multiple",
        "/api/keys/delete-async",
        "/api/keys/restore-multiple",
        "/api/keys/test-multiple",
    ] {
        let (status, v) = s
            .post(path, json!({"group_id": gid, "keys_text": text}))
            .await;
        assert_eq!(
            (status, v["code"].as_str()),
            (400, Some("VALIDATION_FAILED")),
            "{path}: {v}"
        );
        let msg = v["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains("line 3") && msg.contains("4096"),
            "{path}: {msg}"
        );
    }
    let (_, task) = s.get("/api/tasks/status").await;
    assert_eq!(task["data"]["task_type"], "", "no task was started: {task}");
    // The same through a file upload.
    let form = reqwest::multipart::Form::new()
        .text("group_id", gid.to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(text.clone().into_bytes()).file_name("keys.txt"),
        );
    let r = s
        .client()
        .post(s.url("/api/keys/add-async"))
        .header("Authorization", format!("Bearer {ADMIN_KEY}"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["message"].as_str().unwrap_or_default().contains("line 3"),
        "{v}"
    );
    // In a JSON array too.
    let arr = serde_json::to_string(&["sk-a", big.as_str()]).unwrap();
    let (status, v) = s
        .post(
            "/api/keys/add-multiple",
            json!({"group_id": gid, "keys_text": arr}),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    // At the limit it is a key like any other.
    let (status, v) = s
        .post(
            "/api/keys/add-multiple",
            json!({"group_id": gid, "keys_text": &big[..4_096]}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["added_count"], 1, "{v}");
    // A multipart body over the admin body limit is refused whole, not read into memory.
    let form = reqwest::multipart::Form::new()
        .text("group_id", gid.to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(vec![b'k'; 65 * 1024 * 1024]).file_name("keys.txt"),
        );
    let r = s
        .client()
        .post(s.url("/api/keys/add-async"))
        .header("Authorization", format!("Bearer {ADMIN_KEY}"))
        .multipart(form)
        .send()
        .await;
    // The server answers 413 as soon as the limit is passed and closes the connection; a loaded
    // machine can close it before the client reads the answer, mid-upload. Refused either way.
    match r {
        Ok(r) => assert!(r.status().is_client_error(), "{}", r.status()),
        Err(e) => assert!(e.is_request() || e.is_body(), "{e:?}"),
    }
    let (_, task) = s.get("/api/tasks/status").await;
    assert_eq!(task["data"]["task_type"], "", "no task was started: {task}");
}

/// An async import takes the key-write lock per committed chunk: a one-key add to another group
/// and a group delete complete while a large import is still running.
#[tokio::test(flavor = "multi_thread")]
async fn other_key_writes_interleave_with_an_import() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let s = Server::start(dir, &[]).await;
    let group = |name: &str| {
        json!({"name": name, "channel_type": "openai", "test_model": "m",
            "upstreams": [{"url": "http://127.0.0.1:9", "weight": 1}]})
    };
    let big = s.create_group(group("big")).await;
    let small = s.create_group(group("small")).await;
    let doomed = s.create_group(group("doomed")).await;
    // About five seconds of import on SQLite in a debug build.
    let keys: Vec<String> = (0..30_000).map(|i| format!("sk-bulk-{i:06}")).collect();
    let started = std::time::Instant::now();
    let (status, v) = s
        .post(
            "/api/keys/add-async",
            json!({"group_id": big, "keys_text": keys.join("\n")}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    // Let the import get going.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let t = std::time::Instant::now();
    let (status, v) = s
        .post(
            "/api/keys/add-multiple",
            json!({"group_id": small, "keys_text": "sk-small-one"}),
        )
        .await;
    let add_took = t.elapsed();
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["added_count"], 1, "{v}");
    let (_, task) = s.get("/api/tasks/status").await;
    assert_eq!(
        task["data"]["is_running"], true,
        "the import is still running after the add ({add_took:?}): {task}"
    );

    let t = std::time::Instant::now();
    let (status, v) = s.delete(&format!("/api/groups/{doomed}")).await;
    let delete_took = t.elapsed();
    assert_eq!(status, 200, "{v}");
    let (_, task) = s.get("/api/tasks/status").await;
    assert_eq!(
        task["data"]["is_running"], true,
        "the import is still running after the delete ({delete_took:?}): {task}"
    );

    let task = s.wait_task().await;
    let import_took = started.elapsed();
    assert_eq!(task["result"]["added_count"], 30_000, "{task}");
    assert!(
        add_took * 4 < import_took && delete_took * 4 < import_took,
        "add {add_took:?}, delete {delete_took:?}, import {import_took:?}"
    );
}

/// Upstreams at link-local addresses (cloud metadata services) are refused, however the address
/// is spelled; ordinary private addresses and names stay allowed.
#[tokio::test(flavor = "multi_thread")]
async fn link_local_upstreams_are_refused() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let s = Server::start(dir, &[]).await;
    let body = |name: &str, url: &str| {
        json!({"name": name, "channel_type": "openai", "test_model": "m",
            "upstreams": [{"url": url, "weight": 1}]})
    };
    for url in [
        "http://169.254.169.254/latest/meta-data",
        "http://[fe80::1]:8080/v1",
        "http://2852039166/",
        "http://[::ffff:169.254.169.254]/",
    ] {
        let (status, v) = s.post("/api/groups", body("meta", url)).await;
        assert_eq!(
            (status, v["code"].as_str()),
            (400, Some("VALIDATION_FAILED")),
            "{url}: {v}"
        );
        assert!(
            v["message"]
                .as_str()
                .unwrap_or_default()
                .contains("link-local"),
            "{url}: {v}"
        );
    }
    let gid = s.create_group(body("ok", "http://10.0.0.1:8080/v1")).await;
    let (status, v) = s
        .put(
            &format!("/api/groups/{gid}"),
            json!({"upstreams": [{"url": "http://169.254.169.254", "weight": 1}]}),
        )
        .await;
    assert_eq!(status, 400, "update is checked too: {v}");
}
