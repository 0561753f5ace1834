//! Schema set-up at master start: the embedded per-backend migrations, then GPT-Load's own data
//! migrations so a database written by any GPT-Load 1.x release converges on the current layout
//! (GORM's AutoMigrate adds missing columns; we do the same, then drop legacy indexes and the old
//! `retries` column, and back-fill missing key hashes — correctly, with the configured cipher).
//!
//! What gpt-load adds for its own features is additive only — new tables, nullable or defaulted
//! columns, indexes — so the database keeps opening, and being written, in GPT-Load 1.x.

use gpt_load_common::crypto::KeyCipher;
use sqlx::migrate::Migrator;

use super::repo::keys;
use super::{Backend, Db, DbResult};
use crate::with_pool;

static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");
static MYSQL: Migrator = sqlx::migrate!("./migrations/mysql");

/// A column a GPT-Load table must have, with its type per backend (sqlite, postgres, mysql) as
/// GORM declares it — nullable or defaulted so it can be added to a table with rows.
struct Column {
    table: &'static str,
    name: &'static str,
    types: [&'static str; 3],
}

const fn col(
    table: &'static str,
    name: &'static str,
    sqlite: &'static str,
    pg: &'static str,
    my: &'static str,
) -> Column {
    Column {
        table,
        name,
        types: [sqlite, pg, my],
    }
}

/// Columns added over GPT-Load's 1.x history (older databases may lack them), then gpt-load's own
/// additions to GPT-Load's tables. gpt-load's own tables come from the embedded migrations.
const LATER_COLUMNS: &[Column] = &[
    col(
        "groups",
        "display_name",
        "varchar(255)",
        "varchar(255)",
        "varchar(255)",
    ),
    col("groups", "proxy_keys", "text", "text", "text"),
    col(
        "groups",
        "description",
        "varchar(512)",
        "varchar(512)",
        "varchar(512)",
    ),
    col(
        "groups",
        "group_type",
        "varchar(50) DEFAULT \"standard\"",
        "varchar(50) DEFAULT 'standard'",
        "varchar(50) DEFAULT 'standard'",
    ),
    col(
        "groups",
        "validation_endpoint",
        "varchar(255)",
        "varchar(255)",
        "varchar(255)",
    ),
    col(
        "groups",
        "sort",
        "integer DEFAULT 0",
        "bigint DEFAULT 0",
        "bigint DEFAULT 0",
    ),
    col("groups", "param_overrides", "JSON", "JSONB", "JSON"),
    col("groups", "config", "JSON", "JSONB", "JSON"),
    col("groups", "header_rules", "JSON", "JSONB", "JSON"),
    col("groups", "model_redirect_rules", "JSON", "JSONB", "JSON"),
    col(
        "groups",
        "model_redirect_strict",
        "numeric DEFAULT false",
        "boolean DEFAULT false",
        "boolean DEFAULT false",
    ),
    col(
        "groups",
        "last_validated_at",
        "datetime",
        "timestamptz",
        "datetime(3) NULL",
    ),
    col(
        "api_keys",
        "key_hash",
        "varchar(128)",
        "varchar(128)",
        "varchar(128)",
    ),
    col(
        "api_keys",
        "notes",
        "varchar(255) DEFAULT \"\"",
        "varchar(255) DEFAULT ''",
        "varchar(255) DEFAULT ''",
    ),
    col(
        "api_keys",
        "last_used_at",
        "datetime",
        "timestamptz",
        "datetime(3) NULL",
    ),
    col(
        "request_logs",
        "group_name",
        "varchar(255)",
        "varchar(255)",
        "varchar(255)",
    ),
    col(
        "request_logs",
        "parent_group_id",
        "integer",
        "bigint",
        "bigint unsigned",
    ),
    col(
        "request_logs",
        "parent_group_name",
        "varchar(255)",
        "varchar(255)",
        "varchar(255)",
    ),
    col("request_logs", "key_value", "text", "text", "text"),
    col(
        "request_logs",
        "key_hash",
        "varchar(128)",
        "varchar(128)",
        "varchar(128)",
    ),
    col(
        "request_logs",
        "model",
        "varchar(255)",
        "varchar(255)",
        "varchar(255)",
    ),
    col(
        "request_logs",
        "user_agent",
        "varchar(512)",
        "varchar(512)",
        "varchar(512)",
    ),
    col(
        "request_logs",
        "request_type",
        "varchar(20) NOT NULL DEFAULT \"final\"",
        "varchar(20) NOT NULL DEFAULT 'final'",
        "varchar(20) NOT NULL DEFAULT 'final'",
    ),
    col(
        "request_logs",
        "upstream_addr",
        "varchar(500)",
        "varchar(500)",
        "varchar(500)",
    ),
    col(
        "request_logs",
        "is_stream",
        "numeric NOT NULL DEFAULT false",
        "boolean NOT NULL DEFAULT false",
        "boolean NOT NULL DEFAULT false",
    ),
    col("request_logs", "request_body", "text", "text", "text"),
    // gpt-load's own: routing by model on the native routes (issue 19). Nullable or defaulted, so
    // GPT-Load 1.x keeps inserting groups without naming them (and GORM leaves unknown columns be).
    col("groups", "models", "text", "text", "text"),
    col(
        "groups",
        "priority",
        "integer DEFAULT 0",
        "bigint DEFAULT 0",
        "bigint DEFAULT 0",
    ),
    col(
        "groups",
        "weight",
        "integer DEFAULT 1",
        "bigint DEFAULT 1",
        "bigint DEFAULT 1",
    ),
    // gpt-load's own: the access key of a logged request (issue 19); NULL and '' for a request
    // made with a proxy key, and for the logs GPT-Load 1.x writes, naming neither column.
    col(
        "request_logs",
        "access_key_id",
        "integer",
        "bigint",
        "bigint unsigned",
    ),
    col(
        "request_logs",
        "access_key_name",
        "varchar(255) DEFAULT ''",
        "varchar(255) DEFAULT ''",
        "varchar(255) DEFAULT ''",
    ),
];

/// Applies migrations and GPT-Load's data fixes. Safe to run on every start.
pub async fn run(db: &Db, cipher: &KeyCipher) -> Result<(), sqlx::Error> {
    match db {
        Db::Sqlite(p) => SQLITE.run(p).await?,
        Db::Postgres(p) => POSTGRES.run(p).await?,
        Db::MySql(p) => MYSQL.run(p).await?,
    }
    add_missing_columns(db).await?;
    create_access_key_index(db).await?;
    drop_legacy(db).await?;
    backfill_key_hashes(db, cipher)
        .await
        .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    Ok(())
}

async fn columns_of(db: &Db, table: &str) -> Result<Vec<String>, sqlx::Error> {
    let names: Vec<String> = match db {
        Db::Sqlite(p) => {
            let sql = format!("SELECT name FROM pragma_table_info('{table}')");
            sqlx::query_scalar(&sql).fetch_all(p).await?
        }
        Db::Postgres(p) => {
            sqlx::query_scalar("SELECT column_name::text FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1")
                .bind(table)
                .fetch_all(p)
                .await?
        }
        Db::MySql(p) => {
            let rows: Vec<Vec<u8>> = sqlx::query_scalar(
                "SELECT CAST(column_name AS BINARY) FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ?",
            )
            .bind(table)
            .fetch_all(p)
            .await?;
            rows.into_iter().map(|b| String::from_utf8_lossy(&b).into_owned()).collect()
        }
    };
    Ok(names.into_iter().map(|n| n.to_ascii_lowercase()).collect())
}

async fn add_missing_columns(db: &Db) -> Result<(), sqlx::Error> {
    let idx = match db.backend() {
        Backend::Sqlite => 0,
        Backend::Postgres => 1,
        Backend::MySql => 2,
    };
    let mut cache: std::collections::HashMap<&str, Vec<String>> = Default::default();
    for c in LATER_COLUMNS {
        if !cache.contains_key(c.table) {
            cache.insert(c.table, columns_of(db, c.table).await?);
        }
        let present = cache
            .get(c.table)
            .is_some_and(|cols| cols.iter().any(|n| n == c.name));
        if !present {
            tracing::info!(
                table = c.table,
                column = c.name,
                "adding column missing from an older GPT-Load schema"
            );
            let sql = format!(
                "ALTER TABLE `{}` ADD COLUMN `{}` {}",
                c.table, c.name, c.types[idx]
            );
            let sql = db.sql(&sql).into_owned();
            with_pool!(db, p => sqlx::query(&sql).execute(p).await.map(|r| r.rows_affected()))?;
        }
    }
    Ok(())
}

/// Indexes dropped at start, as `(table, index)`.
///
/// - Unique indexes on the plaintext key value from early 1.x releases.
/// - GPT-Load's `request_logs` indexes that no query can use: the log filters on these columns
///   are `LIKE '%…%'` (which no B-tree index serves) and nothing looks logs up by group id. Each
///   one cost every logged request an index insert (measured in `docs/design/logging.md`).
/// - `request_type` alone, replaced by [`TYPE_TIME_INDEX`] (created first): on SQLite, which keeps
///   no statistics, the planner preferred it to the `timestamp` range of the dashboard's counts
///   and read every final log (a cost growing with the table), and the type-filtered log list
///   sorted every matching row.
///
/// The indexes that queries use stay: `timestamp` (ordering, ranges, retention) and `key_hash`
/// (filter, export). GPT-Load recreates the dropped ones if a database goes back to it (and
/// leaves the added one alone).
const DROPPED_INDEXES: [(&str, &str); 8] = [
    ("api_keys", "idx_group_key"),
    ("api_keys", "idx_api_keys_group_id_key_value"),
    ("request_logs", "idx_request_logs_group_id"),
    ("request_logs", "idx_request_logs_group_name"),
    ("request_logs", "idx_request_logs_parent_group_id"),
    ("request_logs", "idx_request_logs_parent_group_name"),
    ("request_logs", "idx_request_logs_model"),
    ("request_logs", "idx_request_logs_request_type"),
];

/// `request_logs (request_type, timestamp)`: serves the dashboard's counts of final logs in a
/// time range, and the log list and its count filtered by type, in time order, with or without a
/// range — the same insert cost per logged request as GPT-Load's `request_type` index it
/// replaces. Built once, on a database that lacks it (on a large table, the first start takes
/// the time to build it; PostgreSQL and MySQL build it without blocking writers).
pub(crate) const TYPE_TIME_INDEX: &str = "idx_request_logs_request_type_timestamp";

async fn mysql_has_index(
    p: &sqlx::MySqlPool,
    table: &str,
    index: &str,
) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = ? AND index_name = ?",
    )
    .bind(table)
    .bind(index)
    .fetch_one(p)
    .await?;
    Ok(n > 0)
}

async fn create_type_time_index(db: &Db) -> Result<(), sqlx::Error> {
    match db {
        Db::MySql(p) => {
            if !mysql_has_index(p, "request_logs", TYPE_TIME_INDEX).await? {
                let sql = format!(
                    "ALTER TABLE `request_logs` ADD INDEX `{TYPE_TIME_INDEX}` (`request_type`, `timestamp`), ALGORITHM=INPLACE, LOCK=NONE"
                );
                sqlx::query(&sql).execute(p).await?;
            }
        }
        Db::Postgres(p) => {
            // (Simple protocol: CONCURRENTLY must not run inside a transaction block.)
            let sql = format!(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS {TYPE_TIME_INDEX} ON request_logs (request_type, \"timestamp\")"
            );
            sqlx::raw_sql(&sql).execute(p).await?;
        }
        Db::Sqlite(p) => {
            let sql = format!(
                "CREATE INDEX IF NOT EXISTS {TYPE_TIME_INDEX} ON request_logs (request_type, `timestamp`)"
            );
            sqlx::query(&sql).execute(p).await?;
        }
    }
    Ok(())
}

/// `request_logs (access_key_id, timestamp)`: serves the log list and its count filtered by
/// access key (an exact match, unlike the name filters), in time order, without a sort. On
/// SQLite and PostgreSQL it is partial (`WHERE access_key_id IS NOT NULL`), so the requests
/// made with a proxy key, and the logs GPT-Load 1.x writes, add no index entry; MySQL and
/// MariaDB have no partial indexes, so there every log adds one. Built once, on a database that
/// lacks it; GPT-Load 1.x leaves an index it does not know alone.
pub(crate) const ACCESS_KEY_INDEX: &str = "idx_request_logs_access_key_id_timestamp";

async fn create_access_key_index(db: &Db) -> Result<(), sqlx::Error> {
    match db {
        Db::MySql(p) => {
            if !mysql_has_index(p, "request_logs", ACCESS_KEY_INDEX).await? {
                let sql = format!(
                    "ALTER TABLE `request_logs` ADD INDEX `{ACCESS_KEY_INDEX}` (`access_key_id`, `timestamp`), ALGORITHM=INPLACE, LOCK=NONE"
                );
                sqlx::query(&sql).execute(p).await?;
            }
        }
        Db::Postgres(p) => {
            // (Simple protocol: CONCURRENTLY must not run inside a transaction block.)
            let sql = format!(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS {ACCESS_KEY_INDEX} ON request_logs (access_key_id, \"timestamp\") WHERE access_key_id IS NOT NULL"
            );
            sqlx::raw_sql(&sql).execute(p).await?;
        }
        Db::Sqlite(p) => {
            let sql = format!(
                "CREATE INDEX IF NOT EXISTS {ACCESS_KEY_INDEX} ON request_logs (access_key_id, `timestamp`) WHERE access_key_id IS NOT NULL"
            );
            sqlx::query(&sql).execute(p).await?;
        }
    }
    Ok(())
}

async fn drop_legacy(db: &Db) -> Result<(), sqlx::Error> {
    // The replacement first: no moment without an index for the type filters.
    create_type_time_index(db).await?;
    for (table, index) in DROPPED_INDEXES {
        match db {
            Db::MySql(p) => {
                if mysql_has_index(p, table, index).await? {
                    // Without blocking writers of a large table meanwhile.
                    let sql = format!(
                        "ALTER TABLE `{table}` DROP INDEX `{index}`, ALGORITHM=INPLACE, LOCK=NONE"
                    );
                    sqlx::query(&sql).execute(p).await?;
                }
            }
            Db::Postgres(p) => {
                // Without an exclusive lock on a large table meanwhile.
                // (Simple protocol: it must not run inside a transaction block.)
                let sql = format!("DROP INDEX CONCURRENTLY IF EXISTS {index}");
                sqlx::raw_sql(&sql).execute(p).await?;
            }
            Db::Sqlite(p) => {
                let sql = format!("DROP INDEX IF EXISTS {index}");
                sqlx::query(&sql).execute(p).await?;
            }
        }
    }
    // v1.0.22 dropped `request_logs.retries` (NOT NULL without default: inserts would fail).
    if columns_of(db, "request_logs")
        .await?
        .iter()
        .any(|c| c == "retries")
    {
        tracing::info!("dropping legacy column request_logs.retries");
        let sql = "ALTER TABLE request_logs DROP COLUMN retries";
        with_pool!(db, p => sqlx::query(sql).execute(p).await.map(|r| r.rows_affected()))?;
    }
    Ok(())
}

/// Fills empty `key_hash` values. GPT-Load's v1.1.0 back-fill hashed the stored (possibly
/// encrypted) value with unkeyed SHA-256; we decrypt first and hash with the configured cipher, so
/// lookups by key value work afterwards.
async fn backfill_key_hashes(db: &Db, cipher: &KeyCipher) -> DbResult<()> {
    loop {
        let rows = keys::missing_hash(db, 1000).await?;
        if rows.is_empty() {
            return Ok(());
        }
        let n = rows.len();
        let updates: Vec<(i64, String, String)> = rows
            .into_iter()
            .map(|(id, stored)| {
                let plain = cipher.decrypt_or_raw(&stored);
                let hash = cipher.hash(&plain);
                // An empty key hashes to "": give it a marker so the loop terminates.
                let hash = if hash.is_empty() {
                    "-".to_owned()
                } else {
                    hash
                };
                (id, stored, hash)
            })
            .collect();
        keys::rewrite_values(db, &updates).await?;
        tracing::info!(keys = n, "back-filled key hashes");
    }
}
