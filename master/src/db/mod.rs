//! The SQL database: one pool per backend (SQLite, PostgreSQL, MySQL/MariaDB) chosen from
//! `DATABASE_DSN`, migrations applied at start, and the repositories that hold all SQL.
//!
//! Repositories are written once: SQL uses MySQL's spelling (`?` placeholders, backtick-quoted
//! identifiers) and [`Db::sql`] rewrites it for PostgreSQL; [`with_pool!`] expands a body once per
//! backend so every query is type-checked against all three drivers.

pub mod migrate;
pub mod repo;
pub mod sqlite_logs;
pub mod types;

pub use types::{DbBool, DbI64, DbJson, DbTime};

use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use gpt_load_common::config::DatabaseDsn;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// A connection pool to one of the supported backends.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// Which backend a [`Db`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

/// Runs `$body` with `$pool` bound to the concrete pool of `$db`, once per backend.
#[macro_export]
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => $body,
            $crate::db::Db::Postgres($pool) => $body,
            $crate::db::Db::MySql($pool) => $body,
        }
    };
}

/// A database failure, classified for the API layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("record not found")]
    NotFound,
    #[error("duplicate record")]
    Duplicate,
    #[error("database error: {0}")]
    Other(#[source] sqlx::Error),
    /// From the SQLite request-log writer's own connection ([`sqlite_logs`]).
    #[error("database error: {0}")]
    Sqlite(#[source] rusqlite::Error),
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        gpt_load_common::metrics::metrics().database_error();
        DbError::Sqlite(e)
    }
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => DbError::NotFound,
            sqlx::Error::Database(d) => {
                let code = d.code().unwrap_or_default();
                // PostgreSQL 23505, MySQL error 1062 (its code is the SQLSTATE class 23000,
                // shared with other constraint failures), SQLite 2067/1555 (UNIQUE / PRIMARY KEY).
                let mysql_duplicate = d
                    .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                    .is_some_and(|m| m.number() == 1062);
                if code == "23505"
                    || mysql_duplicate
                    || code == "2067"
                    || code == "1555"
                    || d.message()
                        .to_ascii_lowercase()
                        .contains("unique constraint failed")
                {
                    DbError::Duplicate
                } else {
                    gpt_load_common::metrics::metrics().database_error();
                    DbError::Other(e)
                }
            }
            _ => {
                gpt_load_common::metrics::metrics().database_error();
                DbError::Other(e)
            }
        }
    }
}

pub type DbResult<T> = Result<T, DbError>;

impl Db {
    /// Connects per `DATABASE_DSN`; a SQLite file and its directory are created when missing.
    pub async fn connect(dsn: &DatabaseDsn) -> Result<Self, sqlx::Error> {
        match dsn {
            DatabaseDsn::Sqlite(path) => {
                let opts = if path == ":memory:" {
                    SqliteConnectOptions::from_str("sqlite::memory:")?
                } else {
                    if let Some(dir) = Path::new(path)
                        .parent()
                        .filter(|d| !d.as_os_str().is_empty())
                    {
                        std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
                    }
                    SqliteConnectOptions::new()
                        .filename(path)
                        .create_if_missing(true)
                };
                let opts = opts
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(5))
                    .foreign_keys(false)
                    // Request logs are write-heavy: a bigger page cache, memory-mapped reads and
                    // less frequent checkpoints keep the cost per row low.
                    .pragma("cache_size", "-65536")
                    .pragma("mmap_size", "268435456")
                    .pragma("wal_autocheckpoint", "4000")
                    .pragma("journal_size_limit", "67108864")
                    .pragma("temp_store", "memory");
                let max = if path == ":memory:" { 1 } else { 8 };
                let pool = SqlitePoolOptions::new()
                    .max_connections(max)
                    .min_connections(1)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(opts)
                    .await?;
                Ok(Db::Sqlite(pool))
            }
            DatabaseDsn::Postgres(url) => {
                let opts = PgConnectOptions::from_str(url)?;
                let pool = PgPoolOptions::new()
                    .max_connections(50)
                    .acquire_timeout(Duration::from_secs(30))
                    .max_lifetime(Duration::from_secs(3600))
                    .connect_with(opts)
                    .await?;
                Ok(Db::Postgres(pool))
            }
            DatabaseDsn::MySql { url, .. } => {
                let opts = MySqlConnectOptions::from_str(url)?.charset("utf8mb4");
                let pool = MySqlPoolOptions::new()
                    .max_connections(50)
                    .acquire_timeout(Duration::from_secs(30))
                    .max_lifetime(Duration::from_secs(3600))
                    .connect_with(opts)
                    .await?;
                Ok(Db::MySql(pool))
            }
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
            Db::MySql(_) => "mysql",
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
            Db::MySql(_) => Backend::MySql,
        }
    }

    /// Rewrites MySQL-spelled SQL for this backend: `?` → `$n` and backticks → double quotes on
    /// PostgreSQL. SQL passed here must not contain `?` or backticks inside string literals.
    pub fn sql<'a>(&self, sql: &'a str) -> Cow<'a, str> {
        match self {
            Db::Postgres(_) => Cow::Owned(to_postgres(sql)),
            _ => Cow::Borrowed(sql),
        }
    }

    /// Casts an integer-valued expression (e.g. a `SUM`, which PostgreSQL and MySQL return as
    /// NUMERIC/DECIMAL) to a 64-bit integer.
    pub fn int_expr(&self, expr: &str) -> String {
        match self {
            Db::Postgres(_) => format!("CAST({expr} AS BIGINT)"),
            Db::MySql(_) => format!("CAST({expr} AS SIGNED)"),
            Db::Sqlite(_) => expr.to_owned(),
        }
    }

    pub async fn close(&self) {
        with_pool!(self, p => p.close().await)
    }
}

/// Where request-log batches go: a SQLite file through a writing thread of its own
/// ([`sqlite_logs`]), every other database (and in-memory SQLite) through the pool.
#[derive(Debug)]
pub enum LogWriter {
    Pool(Db),
    Sqlite(sqlite_logs::SqliteLogWriter),
}

impl LogWriter {
    /// The writer for `db`, opened from `dsn` (after the migrations).
    pub fn open(db: &Db, dsn: &DatabaseDsn) -> DbResult<Self> {
        match dsn {
            DatabaseDsn::Sqlite(path) if path != ":memory:" => Ok(Self::Sqlite(
                sqlite_logs::SqliteLogWriter::open(Path::new(path))?,
            )),
            _ => Ok(Self::Pool(db.clone())),
        }
    }

    /// Writes `batch` with its hourly stats and key usage in one transaction; the batch is left
    /// as it was (the caller clears it once written, or keeps it to retry). With
    /// [`Replay::Possible`](repo::logs::Replay) logs already written are neither stored nor
    /// counted again.
    pub async fn write_batch(
        &self,
        batch: &mut Vec<gpt_load_common::log_record::RequestLogRecord>,
        replay: repo::logs::Replay,
    ) -> DbResult<()> {
        match self {
            Self::Pool(db) => repo::logs::write_batch(db, batch, replay).await,
            Self::Sqlite(w) => w.write(batch, replay).await,
        }
    }

    /// Stops writing; a writing thread's connection is closed when this returns.
    pub async fn close(&self) {
        if let Self::Sqlite(w) = self {
            w.close().await;
        }
    }
}

fn to_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for ch in sql.chars() {
        match ch {
            '?' => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            '`' => out.push('"'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_rewrite() {
        assert_eq!(
            to_postgres("SELECT * FROM `groups` WHERE id = ? AND name = ?"),
            "SELECT * FROM \"groups\" WHERE id = $1 AND name = $2"
        );
    }
}
