//! `access_keys`: gpt-load's own table (GPT-Load 1.x has none). `key_value` holds the key as the
//! key cipher stores it, `key_hash` the cipher's hash of it (unique); `filters`, `allowed_ips` and
//! `limits` are JSON text the service writes and reads.

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::{DbI64, DbTime};
use crate::db::{Db, DbError, DbResult};
use crate::with_pool;

const COLUMNS: &str = "id, name, key_value, key_hash, status, filters, expires_at, allowed_ips, limits, \
    request_count, last_used_at, created_at, updated_at";

#[derive(Debug, Clone, FromRow)]
struct AccessKeyRow {
    id: DbI64,
    name: String,
    key_value: String,
    key_hash: String,
    status: Option<String>,
    filters: Option<String>,
    expires_at: Option<DbTime>,
    allowed_ips: Option<String>,
    limits: Option<String>,
    request_count: Option<DbI64>,
    last_used_at: Option<DbTime>,
    created_at: Option<DbTime>,
    updated_at: Option<DbTime>,
}

/// An `access_keys` row; `key_value` as stored (ciphertext when encryption is on).
#[derive(Debug, Clone, PartialEq)]
pub struct AccessKeyRecord {
    pub id: i64,
    pub name: String,
    pub key_value: String,
    pub key_hash: String,
    /// `active` or `disabled`.
    pub status: String,
    /// JSON `{"groups":[…],"models":[…],"protocols":[…]}` (`None` = SQL NULL: no restriction).
    pub filters: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    /// JSON array of addresses and CIDRs (`None` = SQL NULL: any).
    pub allowed_ips: Option<String>,
    /// Reserved for limits and budgets (JSON; not read yet).
    pub limits: Option<String>,
    pub request_count: i64,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<AccessKeyRow> for AccessKeyRecord {
    fn from(r: AccessKeyRow) -> Self {
        Self {
            id: r.id.0,
            name: r.name,
            key_value: r.key_value,
            key_hash: r.key_hash,
            status: r.status.unwrap_or_else(|| "active".into()),
            filters: r.filters,
            expires_at: r.expires_at.map(|t| t.0),
            allowed_ips: r.allowed_ips,
            limits: r.limits,
            request_count: r.request_count.map(|v| v.0).unwrap_or(0),
            last_used_at: r.last_used_at.map(|t| t.0),
            created_at: r.created_at.map(|t| t.0),
            updated_at: r.updated_at.map(|t| t.0),
        }
    }
}

/// Every access key, oldest first.
pub async fn list(db: &Db) -> DbResult<Vec<AccessKeyRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM access_keys ORDER BY id ASC");
    let sql = db.sql(&sql);
    let rows = with_pool!(db, p => sqlx::query_as::<_, AccessKeyRow>(&sql).fetch_all(p).await)?;
    Ok(rows.into_iter().map(Into::into).collect())
}

pub async fn get(db: &Db, id: i64) -> DbResult<AccessKeyRecord> {
    let sql = format!("SELECT {COLUMNS} FROM access_keys WHERE id = ?");
    let sql = db.sql(&sql);
    let row = with_pool!(db, p => sqlx::query_as::<_, AccessKeyRow>(&sql).bind(DbI64(id)).fetch_optional(p).await)?;
    row.map(Into::into).ok_or(DbError::NotFound)
}

/// Whether a key with this hash exists.
pub async fn exists_hash(db: &Db, key_hash: &str) -> DbResult<bool> {
    let sql = db.sql("SELECT COUNT(*) FROM access_keys WHERE key_hash = ?");
    let n: DbI64 = with_pool!(db, p => sqlx::query_scalar(&sql).bind(key_hash).fetch_one(p).await)?;
    Ok(n.0 > 0)
}

/// Inserts a key (`id`, counters and times of `k` are ignored); returns its id. A hash already
/// stored is [`DbError::Duplicate`].
pub async fn insert(db: &Db, k: &AccessKeyRecord) -> DbResult<i64> {
    let now = DbTime::now();
    let cols = "name, key_value, key_hash, status, filters, expires_at, allowed_ips, limits, request_count, created_at, updated_at";
    let values = "?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?";
    macro_rules! bind_all {
        ($q:expr) => {
            $q.bind(&k.name)
                .bind(&k.key_value)
                .bind(&k.key_hash)
                .bind(&k.status)
                .bind(&k.filters)
                .bind(k.expires_at.map(DbTime))
                .bind(&k.allowed_ips)
                .bind(&k.limits)
                .bind(now)
                .bind(now)
        };
    }
    match db {
        Db::MySql(p) => {
            let sql = format!("INSERT INTO access_keys ({cols}) VALUES ({values})");
            let r = bind_all!(sqlx::query(&sql)).execute(p).await?;
            Ok(r.last_insert_id() as i64)
        }
        Db::Sqlite(p) => {
            let sql = format!("INSERT INTO access_keys ({cols}) VALUES ({values}) RETURNING id");
            let id: DbI64 = bind_all!(sqlx::query_scalar(&sql)).fetch_one(p).await?;
            Ok(id.0)
        }
        Db::Postgres(p) => {
            let sql = format!("INSERT INTO access_keys ({cols}) VALUES ({values}) RETURNING id");
            let sql = db.sql(&sql);
            let id: DbI64 = bind_all!(sqlx::query_scalar(&sql)).fetch_one(p).await?;
            Ok(id.0)
        }
    }
}

/// Saves the editable columns of an existing key (name, status, filters, expiry, addresses,
/// limits). The key itself never changes.
pub async fn update(db: &Db, k: &AccessKeyRecord) -> DbResult<()> {
    let sql = db.sql(
        "UPDATE access_keys SET name = ?, status = ?, filters = ?, expires_at = ?, allowed_ips = ?, limits = ?, \
         updated_at = ? WHERE id = ?",
    );
    with_pool!(db, p => sqlx::query(&sql)
        .bind(&k.name)
        .bind(&k.status)
        .bind(&k.filters)
        .bind(k.expires_at.map(DbTime))
        .bind(&k.allowed_ips)
        .bind(&k.limits)
        .bind(DbTime::now())
        .bind(DbI64(k.id))
        .execute(p)
        .await
        .map(|_| ()))?;
    // MySQL counts unchanged rows as unaffected: whether the row exists is read back instead.
    get(db, k.id).await.map(|_| ())
}

pub async fn delete(db: &Db, id: i64) -> DbResult<()> {
    let sql = db.sql("DELETE FROM access_keys WHERE id = ?");
    let n = with_pool!(db, p => sqlx::query(&sql).bind(DbI64(id)).execute(p).await.map(|r| r.rows_affected()))?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

/// `(id, stored key_value, key_hash)` of up to `limit` keys with an id above `after`, by id.
pub async fn page_after(db: &Db, after: i64, limit: i64) -> DbResult<Vec<(i64, String, String)>> {
    let sql = db.sql(
        "SELECT id, key_value, key_hash FROM access_keys WHERE id > ? ORDER BY id ASC LIMIT ?",
    );
    let rows: Vec<(DbI64, String, String)> = with_pool!(db, p => sqlx::query_as(&sql).bind(DbI64(after)).bind(DbI64(limit)).fetch_all(p).await)?;
    Ok(rows.into_iter().map(|(i, v, h)| (i.0, v, h)).collect())
}

/// Sets `(id, key_value, key_hash)` for each row, in one transaction (re-encryption).
pub async fn rewrite_values(db: &Db, rows: &[(i64, String, String)]) -> DbResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = db.sql("UPDATE access_keys SET key_value = ?, key_hash = ? WHERE id = ?");
    with_pool!(db, p => {
        let mut tx = p.begin().await?;
        for (id, value, hash) in rows {
            sqlx::query(&sql).bind(value).bind(hash).bind(DbI64(*id)).execute(&mut *tx).await?;
        }
        tx.commit().await?;
    });
    Ok(())
}
