//! `api_keys`.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::{DbI64, DbTime};
use crate::db::{Backend, Db, DbError, DbResult};
use crate::with_pool;

/// Rows per statement for bulk work (also keeps every IN list and bind count small).
pub const CHUNK: usize = 500;

const COLUMNS: &str = "id, key_value, key_hash, group_id, status, notes, request_count, failure_count, last_used_at, created_at, updated_at";

#[derive(Debug, Clone, FromRow)]
struct KeyRowRaw {
    id: DbI64,
    key_value: String,
    key_hash: Option<String>,
    group_id: DbI64,
    status: Option<String>,
    notes: Option<String>,
    request_count: Option<DbI64>,
    failure_count: Option<DbI64>,
    last_used_at: Option<DbTime>,
    created_at: Option<DbTime>,
    updated_at: Option<DbTime>,
}

/// An `api_keys` row; `key_value` as stored (ciphertext when encryption is on).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    pub id: i64,
    pub key_value: String,
    pub key_hash: String,
    pub group_id: i64,
    pub status: String,
    pub notes: String,
    pub request_count: i64,
    pub failure_count: i64,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<KeyRowRaw> for KeyRecord {
    fn from(r: KeyRowRaw) -> Self {
        Self {
            id: r.id.0,
            key_value: r.key_value,
            key_hash: r.key_hash.unwrap_or_default(),
            group_id: r.group_id.0,
            status: r.status.unwrap_or_else(|| "active".into()),
            notes: r.notes.unwrap_or_default(),
            request_count: r.request_count.map(|v| v.0).unwrap_or(0),
            failure_count: r.failure_count.map(|v| v.0).unwrap_or(0),
            last_used_at: r.last_used_at.map(|t| t.0),
            created_at: r.created_at.map(|t| t.0),
            updated_at: r.updated_at.map(|t| t.0),
        }
    }
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(",")
}

/// Inserts keys `(stored value, hash)` of a group, `CHUNK` rows per statement, in one transaction.
/// Returns `(id, hash)` of the inserted rows.
pub async fn insert(
    db: &Db,
    group_id: i64,
    keys: &[(String, String)],
) -> DbResult<Vec<(i64, String)>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let now = DbTime::now();
    let mut out = Vec::with_capacity(keys.len());
    with_pool!(db, p => {
        let mut tx = p.begin().await?;
        for chunk in keys.chunks(CHUNK) {
            let rows = vec!["(?, ?, ?, 'active', '', 0, 0, ?, ?)"; chunk.len()].join(",");
            let sql = format!(
                "INSERT INTO api_keys (key_value, key_hash, group_id, status, notes, request_count, failure_count, created_at, updated_at) VALUES {rows}"
            );
            let sql = db.sql(&sql);
            let mut q = sqlx::query(&sql);
            for (value, hash) in chunk {
                q = q.bind(value).bind(hash).bind(DbI64(group_id)).bind(now).bind(now);
            }
            q.execute(&mut *tx).await?;
            let sel = format!(
                "SELECT id, key_hash FROM api_keys WHERE group_id = ? AND key_hash IN ({})",
                placeholders(chunk.len())
            );
            let sel = db.sql(&sel);
            let mut q = sqlx::query_as::<_, (DbI64, Option<String>)>(&sel).bind(DbI64(group_id));
            for (_, hash) in chunk {
                q = q.bind(hash);
            }
            for (id, hash) in q.fetch_all(&mut *tx).await? {
                out.push((id.0, hash.unwrap_or_default()));
            }
        }
        tx.commit().await?;
    });
    Ok(out)
}

/// Which of `hashes` already exist in the group.
pub async fn existing_hashes(
    db: &Db,
    group_id: i64,
    hashes: &[String],
) -> DbResult<HashSet<String>> {
    let mut found = HashSet::new();
    for chunk in hashes.chunks(CHUNK) {
        let sql = format!(
            "SELECT key_hash FROM api_keys WHERE group_id = ? AND key_hash IN ({})",
            placeholders(chunk.len())
        );
        let sql = db.sql(&sql);
        let rows: Vec<Option<String>> = with_pool!(db, p => {
            let mut q = sqlx::query_scalar(&sql).bind(DbI64(group_id));
            for h in chunk {
                q = q.bind(h);
            }
            q.fetch_all(p).await
        })?;
        found.extend(rows.into_iter().flatten());
    }
    Ok(found)
}

/// `(id, hash, status)` of the group's keys whose hash is in `hashes`.
pub async fn find_by_hashes(
    db: &Db,
    group_id: i64,
    hashes: &[String],
) -> DbResult<Vec<(i64, String, String)>> {
    let mut out = Vec::new();
    for chunk in hashes.chunks(CHUNK) {
        let sql = format!(
            "SELECT id, key_hash, status FROM api_keys WHERE group_id = ? AND key_hash IN ({})",
            placeholders(chunk.len())
        );
        let sql = db.sql(&sql);
        let rows: Vec<(DbI64, Option<String>, Option<String>)> = with_pool!(db, p => {
            let mut q = sqlx::query_as(&sql).bind(DbI64(group_id));
            for h in chunk {
                q = q.bind(h);
            }
            q.fetch_all(p).await
        })?;
        out.extend(
            rows.into_iter()
                .map(|(id, h, s)| (id.0, h.unwrap_or_default(), s.unwrap_or_default())),
        );
    }
    Ok(out)
}

/// Filters of the key list.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    pub group_id: i64,
    pub status: Option<String>,
    pub key_hash: Option<String>,
}

fn filter_sql(f: &KeyFilter) -> String {
    let mut w = String::from("group_id = ?");
    if f.status.is_some() {
        w.push_str(" AND status = ?");
    }
    if f.key_hash.is_some() {
        w.push_str(" AND key_hash = ?");
    }
    w
}

macro_rules! bind_filter {
    ($q:expr, $f:expr) => {{
        let mut q = $q.bind(DbI64($f.group_id));
        if let Some(s) = &$f.status {
            q = q.bind(s);
        }
        if let Some(h) = &$f.key_hash {
            q = q.bind(h);
        }
        q
    }};
}

/// One page of keys, `last_used_at DESC, id DESC` (never-used keys last), and the total.
pub async fn list(
    db: &Db,
    f: &KeyFilter,
    limit: i64,
    offset: i64,
) -> DbResult<(Vec<KeyRecord>, i64)> {
    let w = filter_sql(f);
    let order = match db.backend() {
        Backend::Postgres => "last_used_at DESC NULLS LAST, id DESC",
        _ => "last_used_at DESC, id DESC",
    };
    let count_sql = format!("SELECT COUNT(*) FROM api_keys WHERE {w}");
    let count_sql = db.sql(&count_sql);
    let list_sql =
        format!("SELECT {COLUMNS} FROM api_keys WHERE {w} ORDER BY {order} LIMIT ? OFFSET ?");
    let list_sql = db.sql(&list_sql);
    let total: DbI64 =
        with_pool!(db, p => bind_filter!(sqlx::query_scalar(&count_sql), f).fetch_one(p).await)?;
    let rows = with_pool!(db, p => bind_filter!(sqlx::query_as::<_, KeyRowRaw>(&list_sql), f)
        .bind(DbI64(limit))
        .bind(DbI64(offset))
        .fetch_all(p)
        .await)?;
    Ok((rows.into_iter().map(Into::into).collect(), total.0))
}

/// Keys of a group with `id > after`, ascending, for streaming exports and reloads.
pub async fn page_after(
    db: &Db,
    group_id: Option<i64>,
    status: Option<&str>,
    after: i64,
    limit: i64,
) -> DbResult<Vec<KeyRecord>> {
    let mut w = String::from("id > ?");
    if group_id.is_some() {
        w.push_str(" AND group_id = ?");
    }
    if status.is_some() {
        w.push_str(" AND status = ?");
    }
    let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE {w} ORDER BY id ASC LIMIT ?");
    let sql = db.sql(&sql);
    let rows = with_pool!(db, p => {
        let mut q = sqlx::query_as::<_, KeyRowRaw>(&sql).bind(DbI64(after));
        if let Some(g) = group_id {
            q = q.bind(DbI64(g));
        }
        if let Some(s) = status {
            q = q.bind(s);
        }
        q.bind(DbI64(limit)).fetch_all(p).await
    })?;
    Ok(rows.into_iter().map(Into::into).collect())
}

pub async fn get(db: &Db, id: i64) -> DbResult<KeyRecord> {
    let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?");
    let sql = db.sql(&sql);
    let row = with_pool!(db, p => sqlx::query_as::<_, KeyRowRaw>(&sql).bind(DbI64(id)).fetch_optional(p).await)?;
    row.map(Into::into).ok_or(DbError::NotFound)
}

/// `(total, active, invalid)` of one group, or of all groups when `group_id` is `None`.
pub async fn counts(db: &Db, group_id: Option<i64>) -> DbResult<(i64, i64, i64)> {
    let sql = match group_id {
        Some(_) => "SELECT status, COUNT(*) FROM api_keys WHERE group_id = ? GROUP BY status",
        None => "SELECT status, COUNT(*) FROM api_keys GROUP BY status",
    };
    let sql = db.sql(sql);
    let rows: Vec<(Option<String>, DbI64)> = with_pool!(db, p => {
        let mut q = sqlx::query_as(&sql);
        if let Some(g) = group_id {
            q = q.bind(DbI64(g));
        }
        q.fetch_all(p).await
    })?;
    let (mut active, mut invalid) = (0, 0);
    for (status, n) in rows {
        match status.as_deref() {
            Some("invalid") => invalid += n.0,
            _ => active += n.0,
        }
    }
    Ok((active + invalid, active, invalid))
}

/// `(group_id, total, active)` for every group with keys.
pub async fn counts_by_group(db: &Db) -> DbResult<Vec<(i64, i64, i64)>> {
    let sql = db.sql("SELECT group_id, status, COUNT(*) FROM api_keys GROUP BY group_id, status");
    let rows: Vec<(DbI64, Option<String>, DbI64)> =
        with_pool!(db, p => sqlx::query_as(&sql).fetch_all(p).await)?;
    let mut map: std::collections::BTreeMap<i64, (i64, i64)> = Default::default();
    for (g, status, n) in rows {
        let e = map.entry(g.0).or_default();
        e.0 += n.0;
        if status.as_deref() != Some("invalid") {
            e.1 += n.0;
        }
    }
    Ok(map.into_iter().map(|(g, (t, a))| (g, t, a)).collect())
}

/// Ids of a group's keys, optionally by status.
pub async fn ids(db: &Db, group_id: i64, status: Option<&str>) -> DbResult<Vec<i64>> {
    let sql = match status {
        Some(_) => "SELECT id FROM api_keys WHERE group_id = ? AND status = ?",
        None => "SELECT id FROM api_keys WHERE group_id = ?",
    };
    let sql = db.sql(sql);
    let rows: Vec<DbI64> = with_pool!(db, p => {
        let mut q = sqlx::query_scalar(&sql).bind(DbI64(group_id));
        if let Some(s) = status {
            q = q.bind(s);
        }
        q.fetch_all(p).await
    })?;
    Ok(rows.into_iter().map(|i| i.0).collect())
}

/// Deletes keys by id (chunked, one transaction); returns the number deleted.
pub async fn delete_ids(db: &Db, ids: &[i64]) -> DbResult<u64> {
    let mut n = 0;
    with_pool!(db, p => {
        let mut tx = p.begin().await?;
        for chunk in ids.chunks(CHUNK) {
            let sql = format!("DELETE FROM api_keys WHERE id IN ({})", placeholders(chunk.len()));
            let sql = db.sql(&sql);
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(DbI64(*id));
            }
            n += q.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
    });
    Ok(n)
}

/// Sets the status of keys; `active` also resets `failure_count` to 0.
pub async fn set_status(db: &Db, ids: &[i64], status: &str) -> DbResult<u64> {
    let mut n = 0;
    let now = DbTime::now();
    with_pool!(db, p => {
        let mut tx = p.begin().await?;
        for chunk in ids.chunks(CHUNK) {
            let set = if status == "active" { "status = ?, failure_count = 0" } else { "status = ?" };
            let sql = format!("UPDATE api_keys SET {set}, updated_at = ? WHERE id IN ({})", placeholders(chunk.len()));
            let sql = db.sql(&sql);
            let mut q = sqlx::query(&sql).bind(status).bind(now);
            for id in chunk {
                q = q.bind(DbI64(*id));
            }
            n += q.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
    });
    Ok(n)
}

pub async fn update_notes(db: &Db, id: i64, notes: &str) -> DbResult<()> {
    let sql = db.sql("UPDATE api_keys SET notes = ?, updated_at = ? WHERE id = ?");
    let n = with_pool!(db, p => sqlx::query(&sql).bind(notes).bind(DbTime::now()).bind(DbI64(id)).execute(p).await.map(|r| r.rows_affected()))?;
    if n == 0 {
        get(db, id).await?;
    }
    Ok(())
}

/// Live key state reconciled into the database: `(key_id, failure_count, status)`.
pub async fn apply_states(db: &Db, states: &[(i64, i64, &str)]) -> DbResult<()> {
    if states.is_empty() {
        return Ok(());
    }
    let sql =
        db.sql("UPDATE api_keys SET failure_count = ?, status = ?, updated_at = ? WHERE id = ?");
    let now = DbTime::now();
    with_pool!(db, p => {
        let mut tx = p.begin().await?;
        for (id, failures, status) in states {
            sqlx::query(&sql).bind(DbI64(*failures)).bind(*status).bind(now).bind(DbI64(*id)).execute(&mut *tx).await?;
        }
        tx.commit().await?;
    });
    Ok(())
}

/// Replaces `key_value`/`key_hash` of keys (re-encryption, hash back-fill), one transaction.
pub async fn rewrite_values(db: &Db, rows: &[(i64, String, String)]) -> DbResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = db.sql("UPDATE api_keys SET key_value = ?, key_hash = ? WHERE id = ?");
    with_pool!(db, p => {
        let mut tx = p.begin().await?;
        for (id, value, hash) in rows {
            sqlx::query(&sql).bind(value).bind(hash).bind(DbI64(*id)).execute(&mut *tx).await?;
        }
        tx.commit().await?;
    });
    Ok(())
}

/// Keys whose `key_hash` is missing: `(id, key_value)`.
pub async fn missing_hash(db: &Db, limit: i64) -> DbResult<Vec<(i64, String)>> {
    let sql = db.sql("SELECT id, key_value FROM api_keys WHERE key_hash IS NULL OR key_hash = '' ORDER BY id ASC LIMIT ?");
    let rows: Vec<(DbI64, String)> =
        with_pool!(db, p => sqlx::query_as(&sql).bind(DbI64(limit)).fetch_all(p).await)?;
    Ok(rows.into_iter().map(|(i, v)| (i.0, v)).collect())
}

/// A sample of `(key_value, key_hash)` with a hash, for the encryption-mismatch detector.
pub async fn sample(db: &Db, n: i64) -> DbResult<Vec<(String, String)>> {
    let sql = db.sql("SELECT key_value, key_hash FROM api_keys WHERE key_hash IS NOT NULL AND key_hash <> '' LIMIT ?");
    let rows: Vec<(String, Option<String>)> =
        with_pool!(db, p => sqlx::query_as(&sql).bind(DbI64(n)).fetch_all(p).await)?;
    Ok(rows
        .into_iter()
        .map(|(v, h)| (v, h.unwrap_or_default()))
        .collect())
}
