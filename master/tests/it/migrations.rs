//! The schema changes of issue 19 are additive: a database GPT-Load 1.x created (GORM's exact DDL,
//! from `integration-tests/fixtures/gptload/`) gains `access_keys`, the group routing columns and
//! the request log's access-key columns, the migration runs again harmlessly, GPT-Load 1.x's own
//! inserts (which name none of the new columns) still work afterwards, and the `access_keys`
//! repository works in each dialect.

use chrono::{TimeZone, Utc};
use gpt_load_common::config::DatabaseDsn;
use gpt_load_common::crypto::KeyCipher;
use gpt_load_master::db::repo::access_keys::{self, AccessKeyRecord};
use gpt_load_master::db::repo::groups;
use gpt_load_master::db::{Db, DbError, migrate};

use crate::harness::{Server, ServerDb};

enum Target {
    Sqlite(tempfile::TempDir),
    Server(ServerDb),
}

impl Target {
    async fn new(server: Option<Server>) -> Target {
        match server {
            None => Target::Sqlite(tempfile::tempdir().unwrap()),
            Some(s) => Target::Server(ServerDb::create(s).await),
        }
    }

    fn dsn(&self) -> DatabaseDsn {
        match self {
            Target::Sqlite(dir) => DatabaseDsn::Sqlite(
                dir.path()
                    .join("gpt-load.db")
                    .to_string_lossy()
                    .into_owned(),
            ),
            Target::Server(db) => DatabaseDsn::parse(&db.dsn).unwrap(),
        }
    }

    /// GPT-Load 1.x's DDL of this backend.
    fn gpt_load_ddl(&self) -> &'static str {
        match self {
            Target::Sqlite(_) => {
                include_str!("../../../integration-tests/fixtures/gptload/sqlite.sql")
            }
            Target::Server(ServerDb {
                server: Server::Postgres,
                ..
            }) => include_str!("../../../integration-tests/fixtures/gptload/postgres.sql"),
            Target::Server(_) => {
                include_str!("../../../integration-tests/fixtures/gptload/mysql.sql")
            }
        }
    }

    async fn done(self) {
        if let Target::Server(db) = self {
            db.drop_db().await;
        }
    }
}

/// Runs statements (MySQL-spelled, as the repositories write them).
async fn exec(db: &Db, statements: &[String]) {
    for s in statements {
        let sql = db.sql(s).into_owned();
        let r = match db {
            Db::Sqlite(p) => sqlx::query(&sql).execute(p).await.map(|_| ()),
            Db::Postgres(p) => sqlx::query(&sql).execute(p).await.map(|_| ()),
            Db::MySql(p) => sqlx::query(&sql).execute(p).await.map(|_| ()),
        };
        r.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

fn gpt_load_rows(name: &str) -> Vec<String> {
    vec![
        format!(
            "INSERT INTO `groups` (name, display_name, proxy_keys, description, group_type, upstreams, validation_endpoint, \
             channel_type, sort, test_model, model_redirect_strict, created_at, updated_at) VALUES \
             ('{name}', '', '', '', 'standard', '[{{\"url\":\"http://127.0.0.1:9\",\"weight\":1}}]', '', 'openai', 0, 'm', \
             false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ),
        format!(
            "INSERT INTO api_keys (key_value, key_hash, group_id, status, notes, request_count, failure_count, created_at, updated_at) \
             SELECT 'sk-{name}', 'h-{name}', id, 'active', '', 0, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM `groups` WHERE name = '{name}'"
        ),
        format!(
            "INSERT INTO request_logs (id, `timestamp`, group_id, group_name, parent_group_id, parent_group_name, key_value, key_hash, \
             model, is_success, source_ip, status_code, request_path, duration, error_message, user_agent, request_type, \
             upstream_addr, is_stream, request_body) \
             SELECT 'log-{name}', CURRENT_TIMESTAMP, id, '{name}', 0, '', 'sk-{name}', 'h-{name}', 'm', true, '127.0.0.1', 200, \
             '/proxy/{name}/v1/chat/completions', 5, '', 'go', 'final', 'http://127.0.0.1:9', false, '' \
             FROM `groups` WHERE name = '{name}'"
        ),
    ]
}

fn record(hash: &str) -> AccessKeyRecord {
    AccessKeyRecord {
        id: 0,
        name: "k".into(),
        key_value: format!("stored-{hash}"),
        key_hash: hash.into(),
        status: "active".into(),
        filters: Some(r#"{"groups":[],"models":["gpt-*"],"protocols":[]}"#.into()),
        expires_at: None,
        allowed_ips: Some("[]".into()),
        limits: None,
        request_count: 0,
        last_used_at: None,
        created_at: None,
        updated_at: None,
    }
}

async fn gpt_load_database_is_extended(server: Option<Server>) {
    let target = Target::new(server).await;
    let db = Db::connect(&target.dsn()).await.unwrap();
    let ddl: Vec<String> = target
        .gpt_load_ddl()
        .lines()
        .filter(|l| !l.starts_with("--") && !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    exec(&db, &ddl).await;
    exec(&db, &gpt_load_rows("before")).await;

    let cipher = KeyCipher::new(None);
    migrate::run(&db, &cipher).await.unwrap();
    migrate::run(&db, &cipher).await.unwrap();

    // The group GPT-Load wrote reads back with the defaults.
    let before = groups::list(&db)
        .await
        .unwrap()
        .into_iter()
        .find(|g| g.name == "before")
        .unwrap();
    assert_eq!(
        (before.models.as_deref(), before.priority, before.weight),
        (None, 0, 1)
    );
    // GPT-Load 1.x keeps writing the extended tables.
    exec(&db, &gpt_load_rows("after")).await;
    let after = groups::list(&db)
        .await
        .unwrap()
        .into_iter()
        .find(|g| g.name == "after")
        .unwrap();
    assert_eq!((after.priority, after.weight), (0, 1));
    // The logs GPT-Load wrote, before and after, read back without an access key.
    let (logs, total) = gpt_load_master::db::repo::logs::list(&db, &Default::default(), 10, 0)
        .await
        .unwrap();
    assert_eq!(total, 2);
    for l in &logs {
        assert_eq!((l.access_key_id, l.access_key_name.as_str()), (None, ""));
    }
    // And the new columns are written and read by gpt-load.
    let mut g = after.clone();
    g.models = Some(r#"["gpt-*"]"#.into());
    g.priority = -3;
    g.weight = 9;
    groups::update(&db, &g).await.unwrap();
    let g = groups::get(&db, g.id).await.unwrap();
    assert_eq!(
        (g.models.as_deref(), g.priority, g.weight),
        (Some(r#"["gpt-*"]"#), -3, 9)
    );

    // `access_keys` in this dialect.
    let id = access_keys::insert(&db, &record("hash-1")).await.unwrap();
    let dup = access_keys::insert(&db, &record("hash-1")).await;
    assert!(matches!(dup, Err(DbError::Duplicate)), "{dup:?}");
    assert!(access_keys::exists_hash(&db, "hash-1").await.unwrap());
    assert!(!access_keys::exists_hash(&db, "hash-2").await.unwrap());
    let mut k = access_keys::get(&db, id).await.unwrap();
    assert_eq!(k.key_value, "stored-hash-1");
    assert_eq!((k.status.as_str(), k.request_count), ("active", 0));
    assert!(k.created_at.is_some() && k.last_used_at.is_none());
    let expiry = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
    k.status = "disabled".into();
    k.expires_at = Some(expiry);
    k.allowed_ips = Some(r#"["::1"]"#.into());
    access_keys::update(&db, &k).await.unwrap();
    // Unchanged values still find the row (MySQL counts it as unaffected).
    access_keys::update(&db, &access_keys::get(&db, id).await.unwrap())
        .await
        .unwrap();
    let k = access_keys::get(&db, id).await.unwrap();
    assert_eq!(
        (k.status.as_str(), k.expires_at, k.allowed_ips.as_deref()),
        ("disabled", Some(expiry), Some(r#"["::1"]"#))
    );
    let id2 = access_keys::insert(&db, &record("hash-2")).await.unwrap();
    assert_eq!(
        access_keys::list(&db)
            .await
            .unwrap()
            .iter()
            .map(|k| k.id)
            .collect::<Vec<_>>(),
        vec![id, id2]
    );
    let page = access_keys::page_after(&db, id, 10).await.unwrap();
    assert_eq!(
        page,
        vec![(id2, "stored-hash-2".to_owned(), "hash-2".to_owned())]
    );
    access_keys::rewrite_values(&db, &[(id2, "new-value".into(), "hash-3".into())])
        .await
        .unwrap();
    let k2 = access_keys::get(&db, id2).await.unwrap();
    assert_eq!(
        (k2.key_value.as_str(), k2.key_hash.as_str()),
        ("new-value", "hash-3")
    );
    access_keys::delete(&db, id).await.unwrap();
    assert!(matches!(
        access_keys::delete(&db, id).await,
        Err(DbError::NotFound)
    ));
    assert!(matches!(
        access_keys::update(&db, &k).await,
        Err(DbError::NotFound)
    ));
    db.close().await;
    target.done().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gpt_load_database_is_extended_on_sqlite() {
    gpt_load_database_is_extended(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gpt_load_database_is_extended_on_postgres() {
    gpt_load_database_is_extended(Some(Server::Postgres)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gpt_load_database_is_extended_on_mariadb() {
    gpt_load_database_is_extended(Some(Server::MariaDb)).await;
}
