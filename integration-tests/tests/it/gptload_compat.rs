//! Pointing gpt-load at a database GPT-Load created: GORM's exact DDL on each backend, rows as
//! GPT-Load writes them (Go time layouts in Asia/Shanghai, `numeric` booleans on SQLite, JSON
//! columns, AES-GCM ciphertexts produced by an independent implementation), then every group,
//! key, setting, log and statistic must come back through the API, and proxying must work with
//! the stored keys.

use std::sync::Arc;

use chrono::{DateTime, Duration, FixedOffset, Timelike, Utc};
use gpt_load_integration_tests::harness::{Backend, Server, TestDb, eventually};
use gpt_load_integration_tests::mock_upstream::MockUpstream;
use serde_json::{Value, json};

/// `sk-secret` / `sk-second` encrypted with ENCRYPTION_KEY=password by Python's `cryptography`
/// (nonce ‖ ciphertext ‖ tag, hex), and their HMAC key hashes.
const SECRET_CT: &str =
    "000102030405060708090a0bae9668d5acf94dd571836e264744081af71b3909b84f874223";
const SECRET_HASH: &str = "a485f19a5b00c8e554b8811c853b8c4da8e20046d15840e616fb0e474cff083e";
const SECOND_CT: &str =
    "6465666768696a6b6c6d6e6f65f5fa4afd7306bd096f5fbce58b35d40b2bffe1a7bfe5150c";
const SECOND_HASH: &str = "e0e9e0a1da534f47f3cac84f27fedaa146a984ef5684e78982507853bd5c2742";

fn shanghai(t: DateTime<Utc>) -> DateTime<FixedOffset> {
    t.with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap())
}

/// A time as GPT-Load stored it on each backend (TZ=Asia/Shanghai, MySQL DSN with loc=Local).
fn t_lit(backend: Backend, t: DateTime<Utc>) -> String {
    let l = shanghai(t);
    match backend {
        // glebarez/sqlite writes Go's time.String().
        Backend::Sqlite => {
            let nanos = l.nanosecond();
            let frac = if nanos == 0 {
                String::new()
            } else {
                format!(".{}", format!("{nanos:09}").trim_end_matches('0'))
            };
            format!("'{}{} +0800 CST'", l.format("%Y-%m-%d %H:%M:%S"), frac)
        }
        Backend::Postgres => format!("'{}'::timestamptz", l.format("%Y-%m-%d %H:%M:%S%.6f%:z")),
        Backend::MariaDb => format!("'{}'", l.format("%Y-%m-%d %H:%M:%S%.3f")),
    }
}

fn b_lit(backend: Backend, b: bool) -> &'static str {
    match (backend, b) {
        (Backend::Postgres, true) => "true",
        (Backend::Postgres, false) => "false",
        (_, true) => "1",
        (_, false) => "0",
    }
}

fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    let secs = t.timestamp();
    DateTime::from_timestamp(secs - secs.rem_euclid(3600), 0).unwrap()
}

fn seed_sql(backend: Backend, upstream: &str, started: DateTime<Utc>) -> Vec<String> {
    // GPT-Load's rows are a few minutes old, but in the current hour (so that the test's own
    // requests add to the same hourly row unless the clock crosses the hour meanwhile).
    let hour = hour_of(started);
    let now = (started - Duration::minutes(5)).max(hour);
    let t = |x| t_lit(backend, x);
    let b = |x| b_lit(backend, x);
    let q = if backend == Backend::Postgres {
        "\""
    } else {
        "`"
    };
    let json_col = |s: &str| {
        if backend == Backend::Postgres {
            format!("'{s}'::jsonb")
        } else {
            format!("'{s}'")
        }
    };
    vec![
        format!(
            "INSERT INTO system_settings (setting_key, setting_value, description, created_at, updated_at) VALUES \
            ('max_retries', '7', 'retries', {n}, {n}), ('proxy_keys', 'sk-legacy-global', '', {n}, {n}), \
            ('app_url', 'http://legacy.example:3001', '', {n}, {n}), ('request_log_write_interval_minutes', '0', '', {n}, {n})",
            n = t(now)
        ),
        format!(
            "INSERT INTO {q}groups{q} (name, display_name, proxy_keys, description, group_type, upstreams, validation_endpoint, channel_type, sort, test_model, \
            param_overrides, config, header_rules, model_redirect_rules, model_redirect_strict, last_validated_at, created_at, updated_at) VALUES \
            ('legacy-openai', 'Legacy OpenAI', 'sk-legacy-proxy', 'made by GPT-Load', 'standard', {ups}, '', 'openai', 2, 'gpt-4.1-nano', \
             {pnull}, {cfg}, {hr}, {mr}, {f}, NULL, {n}, {n}), \
            ('legacy-agg', 'Legacy Aggregate', 'sk-legacy-agg', '', 'aggregate', {empty}, '', 'openai', 1, '-', {pnull}, {pnull}, {empty}, {emptyo}, {f}, NULL, {n}, {n})",
            ups = json_col(&format!(r#"[{{"url":"{upstream}","weight":1}}]"#)),
            pnull = json_col("null"),
            cfg = json_col(r#"{"max_retries":1}"#),
            hr = json_col(r#"[{"key":"X-Legacy","value":"yes","action":"set"}]"#),
            mr = json_col(r#"{"old-model":"gpt-4o"}"#),
            empty = json_col("[]"),
            emptyo = json_col("{}"),
            f = b(false),
            n = t(now)
        ),
        format!(
            "INSERT INTO group_sub_groups (group_id, sub_group_id, weight, created_at, updated_at) VALUES (2, 1, 10, {n}, {n})",
            n = t(now)
        ),
        format!(
            "INSERT INTO api_keys (key_value, key_hash, group_id, status, notes, request_count, failure_count, last_used_at, created_at, updated_at) VALUES \
            ('{SECRET_CT}', '{SECRET_HASH}', 1, 'active', 'from go', 5, 0, {n}, {n}, {n}), \
            ('{SECOND_CT}', '{SECOND_HASH}', 1, 'invalid', '', 0, 3, NULL, {n}, {n})",
            n = t(now)
        ),
        format!(
            "INSERT INTO request_logs (id, {q}timestamp{q}, group_id, group_name, parent_group_id, parent_group_name, key_value, key_hash, model, is_success, source_ip, \
            status_code, request_path, duration, error_message, user_agent, request_type, upstream_addr, is_stream, request_body) VALUES \
            ('0b7d4a9e-1c1f-4f7a-9a57-8d2c2c0f0001', {n}, 1, 'legacy-openai', 0, '', '{SECRET_CT}', '{SECRET_HASH}', 'gpt-4o', {tr}, '10.0.0.9', 200, \
             '/proxy/legacy-openai/v1/chat/completions', 123, '', '', 'final', '{upstream}/v1/chat/completions', {f}, '')",
            n = t(now),
            tr = b(true),
            f = b(false)
        ),
        format!(
            "INSERT INTO group_hourly_stats ({q}time{q}, group_id, success_count, failure_count, created_at, updated_at) VALUES ({h}, 1, 5, 1, {n}, {n})",
            h = t(hour),
            n = t(now)
        ),
    ]
}

async fn exec_all(db: &TestDb, stmts: Vec<String>) {
    match db.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            for s in stmts {
                sqlx::query(&s)
                    .execute(&pool)
                    .await
                    .unwrap_or_else(|e| panic!("{s}: {e}"));
            }
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            for s in stmts {
                sqlx::raw_sql(&s)
                    .execute(&pool)
                    .await
                    .unwrap_or_else(|e| panic!("{s}: {e}"));
            }
            pool.close().await;
        }
        Backend::MariaDb => {
            let pool = sqlx::MySqlPool::connect(&db.url).await.unwrap();
            for s in stmts {
                sqlx::raw_sql(&s)
                    .execute(&pool)
                    .await
                    .unwrap_or_else(|e| panic!("{s}: {e}"));
            }
            pool.close().await;
        }
    }
}

async fn hourly_rows(db: &TestDb) -> i64 {
    let sql = "SELECT COUNT(*) FROM group_hourly_stats WHERE group_id = 1";
    match db.backend {
        Backend::Sqlite => sqlx::query_scalar(sql)
            .fetch_one(&sqlx::SqlitePool::connect(&db.url).await.unwrap())
            .await
            .unwrap(),
        Backend::Postgres => sqlx::query_scalar(sql)
            .fetch_one(&sqlx::PgPool::connect(&db.url).await.unwrap())
            .await
            .unwrap(),
        Backend::MariaDb => sqlx::query_scalar(sql)
            .fetch_one(&sqlx::MySqlPool::connect(&db.url).await.unwrap())
            .await
            .unwrap(),
    }
}

/// The names of `request_logs`' indexes.
async fn log_indexes(db: &TestDb) -> Vec<String> {
    let mut names: Vec<String> = match db.backend {
        Backend::Sqlite => sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'request_logs'",
        )
        .fetch_all(&sqlx::SqlitePool::connect(&db.url).await.unwrap())
        .await
        .unwrap(),
        Backend::Postgres => sqlx::query_scalar(
            "SELECT indexname::text FROM pg_indexes WHERE tablename = 'request_logs'",
        )
        .fetch_all(&sqlx::PgPool::connect(&db.url).await.unwrap())
        .await
        .unwrap(),
        Backend::MariaDb => sqlx::query_scalar(
            "SELECT DISTINCT CAST(index_name AS CHAR) FROM information_schema.statistics \
             WHERE table_schema = DATABASE() AND table_name = 'request_logs'",
        )
        .fetch_all(&sqlx::MySqlPool::connect(&db.url).await.unwrap())
        .await
        .unwrap(),
    };
    names.sort();
    names
}

async fn adopt(backend: Backend) {
    let mock = MockUpstream::start().await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let db = TestDb::create(backend, &dir).await;
    if backend == Backend::Sqlite {
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
    }
    let ddl = match backend {
        Backend::Sqlite => include_str!("../../fixtures/gptload/sqlite.sql"),
        Backend::Postgres => include_str!("../../fixtures/gptload/postgres.sql"),
        Backend::MariaDb => include_str!("../../fixtures/gptload/mysql.sql"),
    };
    let mut stmts: Vec<String> = ddl
        .lines()
        .filter(|l| !l.starts_with("--") && !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    let started = Utc::now();
    stmts.extend(seed_sql(backend, &mock.url(), started));
    exec_all(&db, stmts).await;

    let s = Server::start(
        dir,
        &[
            ("DATABASE_DSN", &db.dsn),
            ("ENCRYPTION_KEY", "password"),
            ("TZ", "Asia/Shanghai"),
        ],
    )
    .await;

    // GPT-Load's log indexes that no query uses are dropped (`request_type` alone is replaced by
    // `(request_type, timestamp)`); those the queries use stay.
    let indexes = log_indexes(&db).await;
    for kept in [
        "idx_request_logs_key_hash",
        "idx_request_logs_timestamp",
        "idx_request_logs_request_type_timestamp",
    ] {
        assert!(indexes.iter().any(|i| i == kept), "{kept}: {indexes:?}");
    }
    for dropped in [
        "group_id",
        "group_name",
        "parent_group_id",
        "parent_group_name",
        "model",
        "request_type",
    ] {
        let name = format!("idx_request_logs_{dropped}");
        assert!(!indexes.contains(&name), "{name}: {indexes:?}");
    }

    let (_, v) = s.get("/api/groups").await;
    let groups = v["data"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{v}");
    let g = groups
        .iter()
        .find(|g| g["name"] == "legacy-openai")
        .unwrap();
    assert_eq!(g["display_name"], "Legacy OpenAI");
    assert_eq!(g["config"], json!({"max_retries": 1}));
    assert_eq!(
        g["header_rules"],
        json!([{"key": "X-Legacy", "value": "yes", "action": "set"}])
    );
    assert_eq!(g["model_redirect_rules"], json!({"old-model": "gpt-4o"}));
    assert_eq!(
        g["endpoint"],
        "http://legacy.example:3001/proxy/legacy-openai"
    );
    assert!(
        g["created_at"]
            .as_str()
            .unwrap()
            .starts_with(&Utc::now().format("%Y").to_string()),
        "{g}"
    );

    let (_, v) = s.get("/api/keys?group_id=1").await;
    let keys = v["data"]["items"].as_array().unwrap();
    let secret = keys
        .iter()
        .find(|k| k["key_value"] == "sk-secret")
        .expect("decrypted key");
    assert_eq!(
        (
            secret["status"].as_str(),
            secret["notes"].as_str(),
            secret["request_count"].as_i64()
        ),
        (Some("active"), Some("from go"), Some(5))
    );
    let second = keys
        .iter()
        .find(|k| k["key_value"] == "sk-second")
        .expect("second key");
    assert_eq!(
        (second["status"].as_str(), second["failure_count"].as_i64()),
        (Some("invalid"), Some(3))
    );

    let (_, v) = s.get("/api/settings").await;
    let all: Vec<&Value> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["settings"].as_array().unwrap())
        .collect();
    assert_eq!(
        all.iter().find(|x| x["key"] == "max_retries").unwrap()["value"],
        7
    );

    let (_, v) = s.get("/api/logs").await;
    assert_eq!(v["data"]["items"][0]["key_value"], "sk-secret", "{v}");
    assert_eq!(v["data"]["items"][0]["duration_ms"], 123);
    let (_, v) = s.get("/api/groups/1/stats").await;
    assert_eq!(
        v["data"]["stats_24_hour"],
        json!({"total_requests": 6, "failed_requests": 1, "failure_rate": 0.1667}),
        "{v}"
    );
    let (_, v) = s.get("/api/dashboard/encryption-status").await;
    assert_eq!(v["data"]["has_mismatch"], false, "{v}");

    // The stored keys serve traffic, through the group and its aggregate.
    for (group, key) in [
        ("legacy-openai", "sk-legacy-proxy"),
        ("legacy-agg", "sk-legacy-agg"),
        ("legacy-openai", "sk-legacy-global"),
    ] {
        let r = s
            .client()
            .post(s.url(&format!("/proxy/{group}/v1/chat/completions")))
            .bearer_auth(key)
            .json(&json!({"model": "old-model", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{group}");
    }
    // The last proxied request (the validation of the invalid key at start, with the test model,
    // may reach the mock after it).
    let req = mock
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.json().is_some_and(|j| j["model"] != "gpt-4.1-nano"))
        .unwrap();
    assert_eq!(req.api_key.as_deref(), Some("sk-secret"));
    assert_eq!(req.header("x-legacy"), Some("yes"));
    assert_eq!(req.json().unwrap()["model"], "gpt-4o");

    // New statistics land in GPT-Load's row for this hour, not in a second one (logs are written
    // by a background writer: wait for it).
    let written = eventually(std::time::Duration::from_secs(10), || async {
        let (_, v) = s.get("/api/groups/1/stats").await;
        v["data"]["stats_24_hour"]["total_requests"] == 9
    })
    .await;
    assert!(written, "the three requests reach the hourly statistics");
    // One row: GPT-Load's for this hour, updated in place (two only if the hour turned while the
    // test ran).
    let rows = if hour_of(Utc::now()) == hour_of(started) {
        1
    } else {
        2
    };
    assert_eq!(hourly_rows(&db).await, rows);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn adopts_a_gpt_load_sqlite_database() {
    adopt(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn adopts_a_gpt_load_postgres_database() {
    adopt(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn adopts_a_gpt_load_mariadb_database() {
    adopt(Backend::MariaDb).await;
}
