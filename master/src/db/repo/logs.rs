//! `request_logs`, and the batch write that also updates hourly stats, key usage and access-key
//! usage.

use chrono::{DateTime, Utc};
use gpt_load_common::log_record::{RequestLogRecord, RequestType};
use sqlx::FromRow;

use super::{DbI64, DbTime};
use crate::db::types::DbBool;
use crate::db::{Backend, Db, DbResult};
use crate::with_pool;

pub(crate) const COLUMNS: &str = "id, `timestamp`, group_id, group_name, parent_group_id, parent_group_name, key_value, key_hash, model, \
    is_success, source_ip, status_code, request_path, duration, error_message, user_agent, request_type, upstream_addr, is_stream, request_body, \
    access_key_id, access_key_name";

/// The values of one row, in [`COLUMNS`] order.
pub(crate) const ROW_VALUES: usize = 22;

/// Adds a batch's counts to an hour's stats row (SQLite and PostgreSQL spelling).
pub(crate) const HOURLY_UPSERT: &str = "INSERT INTO group_hourly_stats (`time`, group_id, success_count, failure_count, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) \
    ON CONFLICT (`time`, group_id) DO UPDATE SET failure_count = group_hourly_stats.failure_count + excluded.failure_count, success_count = group_hourly_stats.success_count + excluded.success_count, updated_at = excluded.updated_at";

/// [`HOURLY_UPSERT`] in MySQL's spelling.
const HOURLY_UPSERT_MYSQL: &str = "INSERT INTO group_hourly_stats (`time`, group_id, success_count, failure_count, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) \
    ON DUPLICATE KEY UPDATE failure_count = group_hourly_stats.failure_count + VALUES(failure_count), success_count = group_hourly_stats.success_count + VALUES(success_count), updated_at = VALUES(updated_at)";

/// Adds a batch's successful requests to a key's usage.
pub(crate) const USAGE_UPDATE: &str = "UPDATE api_keys SET request_count = request_count + ?, \
    last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < ? THEN ? ELSE last_used_at END \
    WHERE group_id = ? AND key_hash = ?";

/// Adds a batch's requests (final logs, whatever their outcome: one per client request) to an
/// access key's usage.
pub(crate) const ACCESS_USAGE_UPDATE: &str = "UPDATE access_keys SET request_count = request_count + ?, \
    last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < ? THEN ? ELSE last_used_at END \
    WHERE id = ?";

/// Most rows per INSERT statement: [`ROW_VALUES`] binds each (2 816, far below the 32 766 of
/// SQLite and the 65 535 of PostgreSQL and MySQL), and with request bodies logged (up to 65 000
/// bytes a row; the other values are short: paths, names and addresses of at most a few hundred
/// characters, an error message of at most 2 KiB) under 9 MB, within MySQL/MariaDB's default
/// 16 MB `max_allowed_packet`.
const INSERT_CHUNK: usize = 128;

/// Splits `n` rows into INSERT sizes: full chunks, then the remainder as descending powers of
/// two. Each size is a distinct statement the driver prepares and caches, so this bounds them to
/// eight instead of one per remainder seen (re-preparing a 3 000-parameter statement costs more
/// than inserting its rows).
pub(crate) fn chunk_sizes(mut n: usize) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if n == 0 {
            return None;
        }
        let size = if n >= INSERT_CHUNK {
            INSERT_CHUNK
        } else {
            1 << n.ilog2()
        };
        n -= size;
        Some(size)
    })
}

/// `items` cut into the [`chunk_sizes`] of its length.
pub(crate) fn sized_chunks<T>(items: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    chunk_sizes(items.len()).map(move |n| {
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        chunk
    })
}

/// The INSERT of `rows` logs ([`ROW_VALUES`] values each, in [`COLUMNS`] order) that skips ids
/// already written, in each backend's spelling. SQLite's `OR IGNORE` (rather than `ON CONFLICT
/// (id) DO NOTHING`) leaves no constraint that could abort the statement halfway, so SQLite keeps
/// no statement journal (a copy of every page the statement changes) for it; every value bound is
/// non-null but `access_key_id`, whose column is nullable, so the only conflict there can be is
/// the id's.
pub(crate) fn insert_sql(backend: Backend, rows: usize) -> String {
    let (insert, conflict) = match backend {
        Backend::MySql => ("INSERT IGNORE INTO request_logs", ""),
        Backend::Sqlite => ("INSERT OR IGNORE INTO request_logs", ""),
        Backend::Postgres => ("INSERT INTO request_logs", " ON CONFLICT (id) DO NOTHING"),
    };
    let row = format!("({})", vec!["?"; ROW_VALUES].join(", "));
    let values = vec![row; rows].join(",");
    format!("{insert} ({COLUMNS}) VALUES {values}{conflict}")
}

#[derive(Debug, Clone, FromRow)]
struct LogRow {
    id: String,
    timestamp: DbTime,
    group_id: DbI64,
    group_name: Option<String>,
    parent_group_id: Option<DbI64>,
    parent_group_name: Option<String>,
    key_value: Option<String>,
    key_hash: Option<String>,
    model: Option<String>,
    is_success: DbBool,
    source_ip: Option<String>,
    status_code: DbI64,
    request_path: Option<String>,
    duration: DbI64,
    error_message: Option<String>,
    user_agent: Option<String>,
    request_type: Option<String>,
    upstream_addr: Option<String>,
    is_stream: DbBool,
    request_body: Option<String>,
    access_key_id: Option<DbI64>,
    access_key_name: Option<String>,
}

impl From<LogRow> for RequestLogRecord {
    fn from(r: LogRow) -> Self {
        Self {
            id: r.id,
            timestamp: r.timestamp.0,
            group_id: r.group_id.0,
            group_name: r.group_name.unwrap_or_default(),
            parent_group_id: r.parent_group_id.map(|v| v.0).filter(|v| *v != 0),
            parent_group_name: r.parent_group_name.unwrap_or_default(),
            key_value: r.key_value.unwrap_or_default(),
            key_hash: r.key_hash.unwrap_or_default(),
            model: r.model.unwrap_or_default(),
            is_success: r.is_success.0,
            source_ip: r.source_ip.unwrap_or_default(),
            status_code: r.status_code.0,
            request_path: r.request_path.unwrap_or_default(),
            duration_ms: r.duration.0,
            error_message: r.error_message.unwrap_or_default(),
            user_agent: r.user_agent.unwrap_or_default(),
            request_type: if r.request_type.as_deref() == Some("retry") {
                RequestType::Retry
            } else {
                RequestType::Final
            },
            upstream_addr: r.upstream_addr.unwrap_or_default(),
            is_stream: r.is_stream.0,
            request_body: r.request_body.unwrap_or_default(),
            access_key_id: r.access_key_id.map(|v| v.0),
            access_key_name: r.access_key_name.unwrap_or_default(),
        }
    }
}

/// The filters of `GET /api/logs` and its export (spec §9.3).
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub parent_group_name: Option<String>,
    pub group_name: Option<String>,
    pub key_hash: Option<String>,
    pub model: Option<String>,
    pub is_success: Option<bool>,
    pub request_type: Option<String>,
    pub status_code: Option<i64>,
    pub source_ip: Option<String>,
    pub error_contains: Option<String>,
    /// Logs of requests made with this access key.
    pub access_key_id: Option<i64>,
    /// Substring of the access key's name (as it was when the request was logged).
    pub access_key_name: Option<String>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
}

enum Arg {
    S(String),
    I(i64),
    B(bool),
    T(DbTime),
}

/// The escape character of the substring filters' `LIKE … ESCAPE '!'`. Not a backslash: MySQL
/// and MariaDB read a backslash in a string literal as an escape of the literal itself (unless
/// `NO_BACKSLASH_ESCAPES`), so `ESCAPE '\\'` would be spelled differently per backend and mode.
const LIKE_ESCAPE: char = '!';

/// A substring pattern matching `s` literally: `%`, `_` and the escape character are escaped
/// (GPT-Load 1.x passed them through as wildcards, so `group_name=_` matched every row).
fn like(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | LIKE_ESCAPE) {
            out.push(LIKE_ESCAPE);
        }
        out.push(c);
    }
    out.push('%');
    out
}

fn where_clause(f: &LogFilter) -> (String, Vec<Arg>) {
    let mut w = vec!["1 = 1".to_owned()];
    let mut a = Vec::new();
    if let Some(v) = &f.parent_group_name {
        w.push("parent_group_name LIKE ? ESCAPE '!'".into());
        a.push(Arg::S(like(v)));
    }
    if let Some(v) = &f.group_name {
        w.push("group_name LIKE ? ESCAPE '!'".into());
        a.push(Arg::S(like(v)));
    }
    if let Some(v) = &f.key_hash {
        w.push("key_hash = ?".into());
        a.push(Arg::S(v.clone()));
    }
    if let Some(v) = &f.model {
        w.push("model LIKE ? ESCAPE '!'".into());
        a.push(Arg::S(like(v)));
    }
    if let Some(v) = f.is_success {
        w.push("is_success = ?".into());
        a.push(Arg::B(v));
    }
    if let Some(v) = &f.request_type {
        w.push("request_type = ?".into());
        a.push(Arg::S(v.clone()));
    }
    if let Some(v) = f.status_code {
        w.push("status_code = ?".into());
        a.push(Arg::I(v));
    }
    if let Some(v) = &f.source_ip {
        w.push("source_ip = ?".into());
        a.push(Arg::S(v.clone()));
    }
    if let Some(v) = &f.error_contains {
        w.push("error_message LIKE ? ESCAPE '!'".into());
        a.push(Arg::S(like(v)));
    }
    if let Some(v) = f.access_key_id {
        w.push("access_key_id = ?".into());
        a.push(Arg::I(v));
    }
    if let Some(v) = &f.access_key_name {
        w.push("access_key_name LIKE ? ESCAPE '!'".into());
        a.push(Arg::S(like(v)));
    }
    if let Some(v) = f.start_time {
        w.push("`timestamp` >= ?".into());
        a.push(Arg::T(DbTime(v)));
    }
    if let Some(v) = f.end_time {
        w.push("`timestamp` <= ?".into());
        a.push(Arg::T(DbTime(v)));
    }
    (w.join(" AND "), a)
}

macro_rules! bind_args {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::S(s) => q.bind(s.clone()),
                Arg::I(i) => q.bind(DbI64(*i)),
                Arg::B(b) => q.bind(*b),
                Arg::T(t) => q.bind(*t),
            };
        }
        q
    }};
}

/// One page of logs, newest first, and the total.
pub async fn list(
    db: &Db,
    f: &LogFilter,
    limit: i64,
    offset: i64,
) -> DbResult<(Vec<RequestLogRecord>, i64)> {
    let (w, args) = where_clause(f);
    let count_sql = format!("SELECT COUNT(*) FROM request_logs WHERE {w}");
    let count_sql = db.sql(&count_sql);
    let list_sql = format!(
        "SELECT {COLUMNS} FROM request_logs WHERE {w} ORDER BY `timestamp` DESC LIMIT ? OFFSET ?"
    );
    let list_sql = db.sql(&list_sql);
    let total: DbI64 =
        with_pool!(db, p => bind_args!(sqlx::query_scalar(&count_sql), &args).fetch_one(p).await)?;
    let rows = with_pool!(db, p => bind_args!(sqlx::query_as::<_, LogRow>(&list_sql), &args)
        .bind(DbI64(limit))
        .bind(DbI64(offset))
        .fetch_all(p)
        .await)?;
    Ok((rows.into_iter().map(Into::into).collect(), total.0))
}

/// The latest `(key_value, group_name, status_code)` per distinct key hash matching the filter.
pub async fn export_keys(db: &Db, f: &LogFilter) -> DbResult<Vec<(String, String, i64)>> {
    let (w, args) = where_clause(f);
    let sql = format!(
        "SELECT key_value, group_name, status_code FROM (\
           SELECT key_value, key_hash, group_name, status_code, \
                  ROW_NUMBER() OVER (PARTITION BY key_hash ORDER BY `timestamp` DESC) AS rn \
           FROM request_logs WHERE {w} AND key_hash IS NOT NULL AND key_hash <> ''\
         ) ranked WHERE rn = 1 ORDER BY key_hash"
    );
    let sql = db.sql(&sql);
    let rows: Vec<(Option<String>, Option<String>, DbI64)> =
        with_pool!(db, p => bind_args!(sqlx::query_as(&sql), &args).fetch_all(p).await)?;
    Ok(rows
        .into_iter()
        .map(|(k, g, s)| (k.unwrap_or_default(), g.unwrap_or_default(), s.0))
        .collect())
}

/// Counts `final` logs with `from <= timestamp < to`.
pub async fn count_final_between(db: &Db, from: DateTime<Utc>, to: DateTime<Utc>) -> DbResult<i64> {
    let sql = db.sql("SELECT COUNT(*) FROM request_logs WHERE request_type = 'final' AND `timestamp` >= ? AND `timestamp` < ?");
    let n: DbI64 = with_pool!(db, p => sqlx::query_scalar(&sql).bind(DbTime(from)).bind(DbTime(to)).fetch_one(p).await)?;
    Ok(n.0)
}

/// Deletes logs older than `before`, in batches; returns how many went.
pub async fn delete_before(db: &Db, before: DateTime<Utc>) -> DbResult<u64> {
    let sql = match db.backend() {
        Backend::MySql => "DELETE FROM request_logs WHERE `timestamp` < ? LIMIT 5000",
        _ => {
            "DELETE FROM request_logs WHERE id IN (SELECT id FROM request_logs WHERE `timestamp` < ? LIMIT 5000)"
        }
    };
    let sql = db.sql(sql);
    let mut total = 0;
    loop {
        let n = with_pool!(db, p => sqlx::query(&sql).bind(DbTime(before)).execute(p).await.map(|r| r.rows_affected()))?;
        total += n;
        if n < 5000 {
            return Ok(total);
        }
    }
}

/// Hour bucket of a log (GPT-Load: `Timestamp.Truncate(time.Hour)` on the absolute time).
pub fn hour_bucket(t: DateTime<Utc>) -> DateTime<Utc> {
    let secs = t.timestamp();
    DateTime::from_timestamp(secs - secs.rem_euclid(3600), 0).unwrap_or(t)
}

/// What one flush writes besides the logs.
#[derive(Debug, Default, Clone)]
pub struct BatchSideEffects {
    /// `(hour, group_id, success, failure)`.
    pub hourly: Vec<(DateTime<Utc>, i64, i64, i64)>,
    /// `(group_id, key_hash, successful requests, last used)`.
    pub usage: Vec<(i64, String, i64, DateTime<Utc>)>,
    /// `(access_key_id, requests, last used)`, by id.
    pub access: Vec<(i64, i64, DateTime<Utc>)>,
}

/// Derives hourly counts (final attempts only, also credited to the parent aggregate), key usage
/// (successful attempts) and access-key usage (final attempts: one per client request, whatever
/// its outcome) from a batch of logs.
pub fn side_effects(logs: &[&RequestLogRecord]) -> BatchSideEffects {
    use std::collections::BTreeMap;
    let mut hourly: BTreeMap<(DateTime<Utc>, i64), (i64, i64)> = BTreeMap::new();
    let mut usage: BTreeMap<(i64, &str), (i64, DateTime<Utc>)> = BTreeMap::new();
    let mut access: BTreeMap<i64, (i64, DateTime<Utc>)> = BTreeMap::new();
    for &l in logs {
        if l.request_type == RequestType::Final {
            if let Some(id) = l.access_key_id {
                let e = access.entry(id).or_insert((0, l.timestamp));
                e.0 += 1;
                e.1 = e.1.max(l.timestamp);
            }
            let h = hour_bucket(l.timestamp);
            let mut credit = |g: i64| {
                let e = hourly.entry((h, g)).or_default();
                if l.is_success {
                    e.0 += 1;
                } else {
                    e.1 += 1;
                }
            };
            credit(l.group_id);
            if let Some(p) = l.parent_group_id.filter(|p| *p > 0) {
                credit(p);
            }
        }
        if l.is_success && !l.key_hash.is_empty() {
            let e = usage
                .entry((l.group_id, l.key_hash.as_str()))
                .or_insert((0, l.timestamp));
            e.0 += 1;
            e.1 = e.1.max(l.timestamp);
        }
    }
    BatchSideEffects {
        hourly: hourly
            .into_iter()
            .map(|((h, g), (s, f))| (h, g, s, f))
            .collect(),
        usage: usage
            .into_iter()
            .map(|((g, k), (n, t))| (g, k.to_owned(), n, t))
            .collect(),
        access: access.into_iter().map(|(id, (n, t))| (id, n, t)).collect(),
    }
}

/// Whether a batch can hold logs that were written before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Logs never written: the proxy's own queue. (A failed write rolls back whole, logs and
    /// counts, so its retry is new again.)
    New,
    /// Logs read from the Redis stream, which delivers an entry again until it is acknowledged:
    /// after a crash between the commit and the acknowledgement, or when the key states written
    /// after the logs failed. Logs already written are left out, rows and counts alike, so the
    /// hourly stats and key usage count each log once.
    Possible,
}

/// The lookup of which of `n` log ids are already written (in [`chunk_sizes`], so that few
/// distinct statements are prepared). On MySQL a locking read: it sees what other transactions
/// committed and holds the ids' index range until this one ends.
pub(crate) fn existing_sql(backend: Backend, n: usize) -> String {
    let lock = if backend == Backend::MySql {
        " FOR UPDATE"
    } else {
        ""
    };
    format!(
        "SELECT id FROM request_logs WHERE id IN ({}){lock}",
        vec!["?"; n].join(", ")
    )
}

/// Serialises the transactions that may repeat logs on PostgreSQL (two masters' flushers
/// overlap while the job lease changes hands: each would otherwise see the other's uncommitted
/// logs as not written, and both would count them); released at commit or rollback.
const REPLAY_LOCK_POSTGRES: &str = "SELECT pg_advisory_xact_lock(7370931241)";

/// The logs of `batch` to write: all of a [`Replay::New`] batch; of a [`Replay::Possible`] one,
/// those whose id is neither in `written` nor earlier in the batch.
pub(crate) fn to_write<'a>(
    batch: &'a [RequestLogRecord],
    replay: Replay,
    written: &std::collections::HashSet<String>,
) -> Vec<&'a RequestLogRecord> {
    if replay == Replay::New {
        return batch.iter().collect();
    }
    let mut seen = std::collections::HashSet::new();
    batch
        .iter()
        .filter(|l| !written.contains(&l.id) && seen.insert(l.id.as_str()))
        .collect()
}

/// Writes a batch of logs with their hourly stats, key usage and access-key usage in one
/// transaction. Log ids are UUIDs: a row already written is skipped (`ON CONFLICT DO NOTHING`),
/// and with [`Replay::Possible`] it is left out of the counts too.
pub async fn write_batch(db: &Db, batch: &[RequestLogRecord], replay: Replay) -> DbResult<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let hourly_sql = db.sql(match db.backend() {
        Backend::MySql => HOURLY_UPSERT_MYSQL,
        _ => HOURLY_UPSERT,
    });
    let usage_sql = db.sql(USAGE_UPDATE);
    let access_sql = db.sql(ACCESS_USAGE_UPDATE);
    let now = DbTime::now();
    with_pool!(db, p => {
        let mut tx = p.begin().await?;
        let mut written = std::collections::HashSet::new();
        if replay == Replay::Possible {
            if db.backend() == Backend::Postgres {
                sqlx::query(REPLAY_LOCK_POSTGRES).execute(&mut *tx).await?;
            }
            for chunk in sized_chunks(batch) {
                let sql = existing_sql(db.backend(), chunk.len());
                let sql = db.sql(&sql);
                let mut q = sqlx::query_scalar::<_, String>(&sql);
                for l in chunk {
                    q = q.bind(&l.id);
                }
                written.extend(q.fetch_all(&mut *tx).await?);
            }
        }
        let logs = to_write(batch, replay, &written);
        let fx = side_effects(&logs);
        for chunk in sized_chunks(&logs) {
            let sql = insert_sql(db.backend(), chunk.len());
            let sql = db.sql(&sql);
            let mut q = sqlx::query(&sql);
            for l in chunk {
                q = q
                    .bind(&l.id)
                    .bind(DbTime(l.timestamp))
                    .bind(DbI64(l.group_id))
                    .bind(&l.group_name)
                    .bind(DbI64(l.parent_group_id.unwrap_or(0)))
                    .bind(&l.parent_group_name)
                    .bind(&l.key_value)
                    .bind(&l.key_hash)
                    .bind(&l.model)
                    .bind(l.is_success)
                    .bind(&l.source_ip)
                    .bind(DbI64(l.status_code))
                    .bind(&l.request_path)
                    .bind(DbI64(l.duration_ms))
                    .bind(&l.error_message)
                    .bind(&l.user_agent)
                    .bind(l.request_type.as_str())
                    .bind(&l.upstream_addr)
                    .bind(l.is_stream)
                    .bind(&l.request_body)
                    .bind(l.access_key_id.map(DbI64))
                    .bind(&l.access_key_name);
            }
            q.execute(&mut *tx).await?;
        }
        for (hour, group, s, f) in &fx.hourly {
            sqlx::query(&hourly_sql)
                .bind(DbTime(*hour))
                .bind(DbI64(*group))
                .bind(DbI64(*s))
                .bind(DbI64(*f))
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        for (group, hash, n, last) in &fx.usage {
            sqlx::query(&usage_sql)
                .bind(DbI64(*n))
                .bind(DbTime(*last))
                .bind(DbTime(*last))
                .bind(DbI64(*group))
                .bind(hash)
                .execute(&mut *tx)
                .await?;
        }
        for (id, n, last) in &fx.access {
            sqlx::query(&access_sql)
                .bind(DbI64(*n))
                .bind(DbTime(*last))
                .bind(DbTime(*last))
                .bind(DbI64(*id))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn log(
        group: i64,
        parent: Option<i64>,
        ok: bool,
        kind: RequestType,
        hash: &str,
        min: u32,
    ) -> RequestLogRecord {
        RequestLogRecord {
            id: uuid::Uuid::new_v4().to_string(),
            timestamp: Utc.with_ymd_and_hms(2025, 1, 1, 10, min, 0).unwrap(),
            group_id: group,
            group_name: "g".into(),
            parent_group_id: parent,
            parent_group_name: String::new(),
            key_value: String::new(),
            key_hash: hash.into(),
            model: String::new(),
            is_success: ok,
            source_ip: String::new(),
            status_code: if ok { 200 } else { 500 },
            request_path: String::new(),
            duration_ms: 1,
            error_message: String::new(),
            user_agent: String::new(),
            request_type: kind,
            upstream_addr: String::new(),
            is_stream: false,
            request_body: String::new(),
            access_key_id: None,
            access_key_name: String::new(),
        }
    }

    /// The query plans of the dashboard's count and of the log list (and its count) filtered by
    /// type, on SQLite, which has no statistics to tell that `request_type` has two values: each
    /// must search an index on both columns' order, without a table scan or a sort. With
    /// GPT-Load's `request_type` index alone SQLite read every final log for the dashboard's
    /// count (185 ms at 830 k rows) and sorted them for the list; with only the `timestamp`
    /// index a filter on the rare type read the whole table (140 ms + 300 ms at 1 M rows).
    #[tokio::test]
    async fn log_queries_by_type_and_time_search_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let dsn = gpt_load_common::config::DatabaseDsn::Sqlite(
            dir.path().join("plan.db").to_string_lossy().into_owned(),
        );
        let db = Db::connect(&dsn).await.unwrap();
        crate::db::migrate::run(&db, &gpt_load_common::crypto::KeyCipher::new(None))
            .await
            .unwrap();
        let Db::Sqlite(pool) = &db else {
            unreachable!()
        };
        // One connection that has read the schema since the migration: EXPLAIN plans against
        // the schema a connection has cached (a real query re-reads a changed one, EXPLAIN not).
        let mut conn = pool.acquire().await.unwrap();
        sqlx::query("SELECT COUNT(*) FROM request_logs")
            .execute(&mut *conn)
            .await
            .unwrap();
        for sql in [
            "SELECT COUNT(*) FROM request_logs WHERE request_type = 'final' AND `timestamp` >= ? AND `timestamp` < ?",
            "SELECT id FROM request_logs WHERE 1 = 1 AND request_type = ? ORDER BY `timestamp` DESC LIMIT 15 OFFSET 0",
            "SELECT COUNT(*) FROM request_logs WHERE 1 = 1 AND request_type = ?",
            "SELECT id FROM request_logs WHERE 1 = 1 AND `timestamp` >= ? AND request_type = ? ORDER BY `timestamp` DESC LIMIT 15 OFFSET 0",
        ] {
            let plan: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
                    .fetch_all(&mut *conn)
                    .await
                    .unwrap();
            let plan: Vec<&str> = plan.iter().map(|r| r.3.as_str()).collect();
            assert!(
                plan.iter()
                    .all(|s| s.starts_with("SEARCH request_logs USING ")
                        && s.contains(crate::db::migrate::TYPE_TIME_INDEX)),
                "{sql}: {plan:?}"
            );
        }
    }

    /// A database of `backend` that lives for one test: a SQLite file, or a fresh PostgreSQL /
    /// MariaDB database of this machine (dropped at the end), migrated.
    struct Scratch {
        db: Db,
        server: Option<(Backend, String)>,
        _dir: tempfile::TempDir,
    }

    const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";
    const MYSQL_ADMIN: &str = "mysql://root@127.0.0.1:3306/mysql";

    impl Scratch {
        async fn new(backend: Backend) -> Self {
            use gpt_load_common::config::DatabaseDsn;
            use sqlx::Connection;
            let dir = tempfile::tempdir().unwrap();
            let name = format!("gl_repo_{}", uuid::Uuid::new_v4().simple());
            let dsn = match backend {
                Backend::Sqlite => {
                    DatabaseDsn::Sqlite(dir.path().join("t.db").to_string_lossy().into_owned())
                }
                Backend::Postgres => {
                    let mut c = sqlx::PgConnection::connect(PG_ADMIN).await.unwrap();
                    sqlx::query(&format!("CREATE DATABASE {name}"))
                        .execute(&mut c)
                        .await
                        .unwrap();
                    DatabaseDsn::Postgres(format!("postgres://postgres@127.0.0.1:5432/{name}"))
                }
                Backend::MySql => {
                    let mut c = sqlx::MySqlConnection::connect(MYSQL_ADMIN).await.unwrap();
                    sqlx::query(&format!("CREATE DATABASE {name} CHARACTER SET utf8mb4"))
                        .execute(&mut c)
                        .await
                        .unwrap();
                    DatabaseDsn::parse(&format!("mysql://root@127.0.0.1:3306/{name}")).unwrap()
                }
            };
            let db = Db::connect(&dsn).await.unwrap();
            crate::db::migrate::run(&db, &gpt_load_common::crypto::KeyCipher::new(None))
                .await
                .unwrap();
            let server = (backend != Backend::Sqlite).then_some((backend, name));
            Self {
                db,
                server,
                _dir: dir,
            }
        }

        async fn drop_db(self) {
            use sqlx::Connection;
            self.db.close().await;
            match self.server {
                Some((Backend::Postgres, name)) => {
                    let mut c = sqlx::PgConnection::connect(PG_ADMIN).await.unwrap();
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut c)
                        .await
                        .unwrap();
                }
                Some((_, name)) => {
                    let mut c = sqlx::MySqlConnection::connect(MYSQL_ADMIN).await.unwrap();
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
                        .execute(&mut c)
                        .await
                        .unwrap();
                }
                None => {}
            }
        }
    }

    /// `%`, `_`, the escape character and MySQL's default escape (`\`) in a substring filter
    /// match only themselves, on every backend; exact filters stay exact.
    async fn filters_match_literal_text(backend: Backend) {
        let s = Scratch::new(backend).await;
        let mut batch = Vec::new();
        for (i, (group, model, error, ip)) in [
            ("a_b", "m%1", r"path\to", "10.0.0.1"),
            ("axb", "m21", "pathto", "10.0.0.10"),
            ("c!d", "m!x", "50% off", "10.0.0.2"),
            ("cxd", "mxx", "50 off", "10.0.0.3"),
        ]
        .into_iter()
        .enumerate()
        {
            let mut l = log(1, None, true, RequestType::Final, "", i as u32);
            l.group_name = group.into();
            l.parent_group_name = format!("p{group}");
            l.model = model.into();
            l.error_message = error.into();
            l.source_ip = ip.into();
            batch.push(l);
        }
        write_batch(&s.db, &batch, Replay::New).await.unwrap();
        let names = |f: LogFilter| {
            let db = s.db.clone();
            async move {
                let (rows, total) = list(&db, &f, 100, 0).await.unwrap();
                let mut v: Vec<String> = rows.into_iter().map(|r| r.group_name).collect();
                v.sort();
                assert_eq!(total as usize, v.len());
                v
            }
        };
        let by = |field: &str, v: &str| {
            let mut f = LogFilter::default();
            let v = Some(v.to_owned());
            match field {
                "group_name" => f.group_name = v,
                "parent_group_name" => f.parent_group_name = v,
                "model" => f.model = v,
                "error_contains" => f.error_contains = v,
                "source_ip" => f.source_ip = v,
                _ => unreachable!(),
            }
            f
        };
        for (field, value, want) in [
            ("group_name", "_", vec!["a_b"]),
            ("group_name", "a_b", vec!["a_b"]),
            ("group_name", "%", vec![]),
            ("group_name", "!", vec!["c!d"]),
            ("group_name", "c!d", vec!["c!d"]),
            ("group_name", "x", vec!["axb", "cxd"]),
            ("parent_group_name", "p_", vec![]),
            ("parent_group_name", "pa_", vec!["a_b"]),
            ("model", "%", vec!["a_b"]),
            ("model", "m_", vec![]),
            ("model", "!x", vec!["c!d"]),
            ("error_contains", "\\", vec!["a_b"]),
            ("error_contains", "h\\t", vec!["a_b"]),
            ("error_contains", "0%", vec!["c!d"]),
            ("error_contains", "off", vec!["c!d", "cxd"]),
            ("source_ip", "10.0.0.1", vec!["a_b"]),
            ("source_ip", "10.0.0.%", vec![]),
        ] {
            assert_eq!(
                names(by(field, value)).await,
                want,
                "{backend:?}: {field}={value}"
            );
        }
        s.drop_db().await;
    }

    #[tokio::test]
    async fn filters_match_literal_text_sqlite() {
        filters_match_literal_text(Backend::Sqlite).await;
    }

    #[tokio::test]
    async fn filters_match_literal_text_postgres() {
        filters_match_literal_text(Backend::Postgres).await;
    }

    #[tokio::test]
    async fn filters_match_literal_text_mysql() {
        filters_match_literal_text(Backend::MySql).await;
    }

    #[test]
    fn an_insert_binds_one_value_per_column() {
        assert_eq!(COLUMNS.split(',').count(), ROW_VALUES);
        let sql = insert_sql(Backend::Sqlite, 3);
        assert_eq!(sql.matches('?').count(), 3 * ROW_VALUES);
    }

    #[test]
    fn inserts_use_few_distinct_statement_sizes() {
        assert_eq!(chunk_sizes(0).count(), 0);
        assert_eq!(chunk_sizes(1).collect::<Vec<_>>(), [1]);
        assert_eq!(chunk_sizes(7).collect::<Vec<_>>(), [4, 2, 1]);
        assert_eq!(
            chunk_sizes(600).collect::<Vec<_>>(),
            [128, 128, 128, 128, 64, 16, 8]
        );
        let mut sizes = std::collections::BTreeSet::new();
        for n in 0..2_000 {
            let parts: Vec<usize> = chunk_sizes(n).collect();
            assert_eq!(parts.iter().sum::<usize>(), n);
            sizes.extend(parts);
        }
        assert_eq!(sizes.len(), 8);
    }

    #[test]
    fn side_effects_count_final_attempts_and_successful_usage() {
        let mut logs = [
            log(1, None, true, RequestType::Final, "a", 1),
            log(1, None, false, RequestType::Retry, "b", 2),
            log(1, Some(9), true, RequestType::Final, "a", 3),
            log(1, None, false, RequestType::Final, "b", 4),
        ];
        // Access key 5 made one request; key 3 two (a retry then a success, and a failure).
        for (l, id) in logs.iter_mut().zip([5, 3, 3, 3]) {
            l.access_key_id = Some(id);
        }
        let fx = side_effects(&logs.iter().collect::<Vec<_>>());
        let at = |min| Utc.with_ymd_and_hms(2025, 1, 1, 10, min, 0).unwrap();
        assert_eq!(fx.access, vec![(3, 2, at(4)), (5, 1, at(1))]);
        let hour = Utc.with_ymd_and_hms(2025, 1, 1, 10, 0, 0).unwrap();
        assert_eq!(fx.hourly, vec![(hour, 1, 2, 1), (hour, 9, 1, 0)]);
        assert_eq!(
            fx.usage,
            vec![(
                1,
                "a".to_string(),
                2,
                Utc.with_ymd_and_hms(2025, 1, 1, 10, 3, 0).unwrap()
            )]
        );
    }

    /// The log list and its count filtered by access key search the access-key index, which is
    /// partial on SQLite (only logs with an access key are in it): the filter's equality must
    /// let the planner use it, and the list must come in time order without a sort.
    #[tokio::test]
    async fn log_queries_by_access_key_search_its_index() {
        let s = Scratch::new(Backend::Sqlite).await;
        let Db::Sqlite(pool) = &s.db else {
            unreachable!()
        };
        let mut conn = pool.acquire().await.unwrap();
        sqlx::query("SELECT COUNT(*) FROM request_logs")
            .execute(&mut *conn)
            .await
            .unwrap();
        let f = LogFilter {
            access_key_id: Some(3),
            start_time: Some(Utc::now()),
            ..Default::default()
        };
        let (w, _) = where_clause(&f);
        for sql in [
            format!(
                "SELECT id FROM request_logs WHERE {w} ORDER BY `timestamp` DESC LIMIT 15 OFFSET 0"
            ),
            format!("SELECT COUNT(*) FROM request_logs WHERE {w}"),
        ] {
            let plan: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
                    .fetch_all(&mut *conn)
                    .await
                    .unwrap();
            let plan: Vec<&str> = plan.iter().map(|r| r.3.as_str()).collect();
            assert!(
                plan.iter()
                    .all(|s| s.starts_with("SEARCH request_logs USING ")
                        && s.contains(crate::db::migrate::ACCESS_KEY_INDEX)),
                "{sql}: {plan:?}"
            );
        }
        drop(conn);
        s.drop_db().await;
    }

    #[test]
    fn hour_buckets_truncate_absolute_time() {
        let t = Utc.with_ymd_and_hms(2025, 1, 1, 10, 59, 59).unwrap();
        assert_eq!(
            hour_bucket(t),
            Utc.with_ymd_and_hms(2025, 1, 1, 10, 0, 0).unwrap()
        );
    }
}
