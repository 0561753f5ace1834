//! Request logs on a SQLite file, written by a thread with a connection of its own.
//!
//! Every proxied request leaves a `request_logs` row, so on a busy single node writing them is a
//! large share of the process's CPU. Through sqlx each row's values were encoded into an
//! argument buffer on the async runtime, then copied into owned values for the driver's worker
//! thread before SQLite copied them once more. Here a dedicated thread owns a connection to the
//! same file, binds each row straight from the record into the same multi-row statements
//! (prepared once each) and commits the batch with its hourly stats and key usage in one
//! transaction: the same SQL and the same values as [`logs::write_batch`], which PostgreSQL,
//! MySQL and in-memory SQLite keep using. (Single-row statements cost SQLite more: every row
//! opened a cursor per index and descended from the root, where a multi-row statement appends
//! to the cursor's last page.)
//!
//! The connection is configured as the pool's (WAL, `synchronous = NORMAL`, the same cache and
//! checkpoint settings, a 5 s busy timeout) and takes the write lock at `BEGIN`, so it queues
//! behind the pool's writers, and they behind it, as the pool's connections do among themselves.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use gpt_load_common::log_record::RequestLogRecord;
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, Statement, ToSql, TransactionBehavior, params};
use tokio::sync::oneshot;

use crate::db::repo::logs::{self, Replay};
use crate::db::{Backend, DbError, DbResult, DbTime};

/// A batch to write, whether it may repeat logs, and where its outcome goes (with the batch,
/// handed back unchanged).
type Job = (Vec<RequestLogRecord>, Replay, oneshot::Sender<Done>);
type Done = (Vec<RequestLogRecord>, DbResult<()>);

/// The handle of the writing thread. [`SqliteLogWriter::close`] (or dropping it) ends the thread
/// once the batch in hand is written, and the thread closes its connection.
#[derive(Debug)]
pub struct SqliteLogWriter {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl SqliteLogWriter {
    /// Opens the database file at `path` (which must exist and be migrated) and starts the thread.
    pub fn open(path: &Path) -> DbResult<Self> {
        let mut conn = open(path)?;
        let (jobs, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("gpt-load-log-writer".into())
            .spawn(move || {
                while let Ok((batch, replay, reply)) = rx.recv() {
                    // A panic must neither lose the batch (it is only borrowed here; the
                    // transaction rolls back as it unwinds) nor end the writing for good.
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        write(&mut conn, &batch, replay)
                    }));
                    let r = match r {
                        Ok(r) => r.map_err(DbError::from),
                        Err(_) => Err(stopped()),
                    };
                    let _ = reply.send((batch, r));
                }
            })
            .map_err(|e| DbError::Other(sqlx::Error::Io(e)))?;
        Ok(Self {
            jobs: Mutex::new(Some(jobs)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Writes `batch` in one transaction, as [`logs::write_batch`]. The batch is moved to the
    /// writing thread and put back unchanged, so the caller keeps it (to clear, or to retry after
    /// an error).
    pub async fn write(&self, batch: &mut Vec<RequestLogRecord>, replay: Replay) -> DbResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        let sent = match self.jobs.lock().as_ref() {
            Some(jobs) => jobs.send((std::mem::take(batch), replay, tx)),
            None => return Err(stopped()),
        };
        if let Err(mpsc::SendError((back, _, _))) = sent {
            *batch = back;
            return Err(stopped());
        }
        // The thread always answers with the batch (`catch_unwind` above), unless the process
        // is going down.
        let (back, r) = rx.await.map_err(|_| stopped())?;
        *batch = back;
        r
    }

    /// Ends the thread after the batch in hand and waits for it, so that its connection is
    /// closed before the pool's (the last connection to close checkpoints the WAL into the
    /// database file). Later writes fail.
    pub async fn close(&self) {
        drop(self.jobs.lock().take());
        let thread = self.thread.lock().take();
        if let Some(t) = thread {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

/// The writing thread is gone (closed, or it panicked on this batch).
fn stopped() -> DbError {
    gpt_load_common::metrics::metrics().database_error();
    DbError::Other(sqlx::Error::WorkerCrashed)
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // Up to eight INSERT sizes and eight id-lookup sizes, the hourly and the two usage
    // statements: all stay prepared (the default keeps 16).
    conn.set_prepared_statement_cache_capacity(32);
    // As the pool's connections (`Db::connect`); the journal mode (WAL) is the file's own.
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF; PRAGMA cache_size = -65536; \
         PRAGMA mmap_size = 268435456; PRAGMA wal_autocheckpoint = 4000; \
         PRAGMA journal_size_limit = 67108864; PRAGMA temp_store = memory;",
    )?;
    Ok(conn)
}

fn write(
    conn: &mut Connection,
    batch: &[RequestLogRecord],
    replay: Replay,
) -> rusqlite::Result<()> {
    let now = DbTime::now().to_sqlite_text();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        // The write lock is held from `BEGIN IMMEDIATE`: no other writer runs between this
        // lookup and the inserts.
        let mut written = std::collections::HashSet::new();
        if replay == Replay::Possible {
            for chunk in logs::sized_chunks(batch) {
                let mut q = tx.prepare_cached(&logs::existing_sql(Backend::Sqlite, chunk.len()))?;
                for (i, l) in chunk.iter().enumerate() {
                    q.raw_bind_parameter(i + 1, &l.id)?;
                }
                let mut rows = q.raw_query();
                while let Some(row) = rows.next()? {
                    written.insert(row.get::<_, String>(0)?);
                }
            }
        }
        let batch = logs::to_write(batch, replay, &written);
        let fx = logs::side_effects(&batch);
        // The pool's statements: many rows each (one cursor per index for all of them, so each
        // row's index entries are appended without a descent from the root), in at most eight
        // sizes, each prepared once.
        for chunk in logs::sized_chunks(&batch) {
            let mut insert = tx.prepare_cached(&logs::insert_sql(Backend::Sqlite, chunk.len()))?;
            for (i, l) in chunk.iter().enumerate() {
                bind_row(&mut insert, i * logs::ROW_VALUES, l)?;
            }
            insert.raw_execute()?;
        }
        let mut hourly = tx.prepare_cached(logs::HOURLY_UPSERT)?;
        for (hour, group, success, failure) in &fx.hourly {
            hourly.execute(params![
                DbTime(*hour).to_sqlite_text(),
                group,
                success,
                failure,
                now,
                now
            ])?;
        }
        let mut usage = tx.prepare_cached(logs::USAGE_UPDATE)?;
        for (group, hash, count, last) in &fx.usage {
            let last = DbTime(*last).to_sqlite_text();
            usage.execute(params![count, last, last, group, hash])?;
        }
        let mut access = tx.prepare_cached(logs::ACCESS_USAGE_UPDATE)?;
        for (id, count, last) in &fx.access {
            let last = DbTime(*last).to_sqlite_text();
            access.execute(params![count, last, last, id])?;
        }
    }
    tx.commit()
}

/// Binds one log's [`logs::ROW_VALUES`] values, in [`logs::COLUMNS`] order, after the first
/// `base` parameters.
fn bind_row(stmt: &mut Statement<'_>, base: usize, l: &RequestLogRecord) -> rusqlite::Result<()> {
    let values: [&dyn ToSql; logs::ROW_VALUES] = [
        &l.id,
        &DbTime(l.timestamp).to_sqlite_text(),
        &l.group_id,
        &l.group_name,
        &l.parent_group_id.unwrap_or(0),
        &l.parent_group_name,
        &l.key_value,
        &l.key_hash,
        &l.model,
        &l.is_success,
        &l.source_ip,
        &l.status_code,
        &l.request_path,
        &l.duration_ms,
        &l.error_message,
        &l.user_agent,
        &l.request_type.as_str(),
        &l.upstream_addr,
        &l.is_stream,
        &l.request_body,
        &l.access_key_id,
        &l.access_key_name,
    ];
    for (i, v) in values.into_iter().enumerate() {
        stmt.raw_bind_parameter(base + i + 1, v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Db, LogWriter, migrate};
    use chrono::{TimeZone, Utc};
    use gpt_load_common::config::DatabaseDsn;
    use gpt_load_common::crypto::KeyCipher;
    use gpt_load_common::log_record::RequestType;

    async fn migrated(path: &Path) -> Db {
        let dsn = DatabaseDsn::Sqlite(path.to_string_lossy().into_owned());
        let db = Db::connect(&dsn).await.expect("connect");
        migrate::run(&db, &KeyCipher::new(None))
            .await
            .expect("migrate");
        let Db::Sqlite(pool) = &db else {
            unreachable!("a SQLite DSN")
        };
        sqlx::query(
            "INSERT INTO api_keys (key_value, key_hash, group_id, request_count, created_at, updated_at) \
             VALUES ('sk-a', 'hash-a', 1, 5, '2025-01-01 00:00:00+00:00', '2025-01-01 00:00:00+00:00')",
        )
        .execute(pool)
        .await
        .expect("a key");
        sqlx::query(
            "INSERT OR IGNORE INTO access_keys (id, name, key_value, key_hash, request_count, created_at, updated_at) \
             VALUES (1, 'team', 'enc:sk-gl-team', 'hash-team', 5, '2025-01-01 00:00:00+00:00', '2025-01-01 00:00:00+00:00')",
        )
        .execute(pool)
        .await
        .expect("an access key");
        db
    }

    fn record(
        id: &str,
        min: u32,
        ok: bool,
        kind: RequestType,
        parent: Option<i64>,
    ) -> RequestLogRecord {
        RequestLogRecord {
            id: id.into(),
            timestamp: Utc.with_ymd_and_hms(2025, 3, 4, 10, min, 7).unwrap(),
            group_id: 1,
            group_name: "grüppe".into(),
            parent_group_id: parent,
            parent_group_name: if parent.is_some() {
                "agg".into()
            } else {
                String::new()
            },
            key_value: "enc:sk-a".into(),
            key_hash: "hash-a".into(),
            model: "gpt-4o-mini".into(),
            is_success: ok,
            source_ip: "127.0.0.1".into(),
            status_code: if ok { 200 } else { 503 },
            request_path: "/proxy/g/v1/chat/completions?x='1'".into(),
            duration_ms: 42,
            error_message: if ok {
                String::new()
            } else {
                "upstream \"busy\"".into()
            },
            user_agent: "test/1.0".into(),
            request_type: kind,
            upstream_addr: "http://127.0.0.1:1/v1/chat/completions".into(),
            is_stream: !ok,
            request_body: "{\"model\":\"gpt-4o-mini\"}".into(),
            access_key_id: Some(1),
            access_key_name: "tëam".into(),
        }
    }

    /// A migrated database file `name` in `dir` and a writer on it.
    async fn writer_on(dir: &tempfile::TempDir, name: &str) -> (Db, SqliteLogWriter) {
        let path = dir.path().join(name);
        let db = migrated(&path).await;
        let writer = SqliteLogWriter::open(&path).expect("open the writer");
        (db, writer)
    }

    fn batch() -> Vec<RequestLogRecord> {
        vec![
            record(
                "0190a000-0000-7000-8000-000000000001",
                1,
                false,
                RequestType::Retry,
                None,
            ),
            record(
                "0190a000-0000-7000-8000-000000000002",
                1,
                true,
                RequestType::Final,
                None,
            ),
            record(
                "0190a000-0000-7000-8000-000000000003",
                59,
                true,
                RequestType::Final,
                Some(9),
            ),
        ]
    }

    /// Every row of `table` as the SQL literals SQLite holds (type included), without the columns
    /// that hold the time of the write.
    async fn dump(db: &Db, table: &str) -> Vec<String> {
        let Db::Sqlite(pool) = db else {
            unreachable!("a SQLite DSN")
        };
        let cols: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT name FROM pragma_table_info('{table}') WHERE name NOT IN ('created_at', 'updated_at')"
        ))
        .fetch_all(pool)
        .await
        .expect("columns");
        let expr = cols
            .iter()
            .map(|c| format!("quote(`{c}`)"))
            .collect::<Vec<_>>()
            .join(" || '|' || ");
        sqlx::query_scalar(&format!("SELECT {expr} FROM {table} ORDER BY 1"))
            .fetch_all(pool)
            .await
            .expect("rows")
    }

    #[tokio::test]
    async fn the_writer_stores_what_the_pool_stores() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let by_pool = migrated(&dir.path().join("pool.db")).await;
        let (by_thread, writer) = writer_on(&dir, "thread.db").await;

        let mut a = batch();
        LogWriter::Pool(by_pool.clone())
            .write_batch(&mut a, Replay::New)
            .await
            .expect("written by the pool");
        let mut b = batch();
        writer
            .write(&mut b, Replay::New)
            .await
            .expect("written by the thread");
        assert_eq!(b, batch(), "the batch comes back as it was");

        for table in [
            "request_logs",
            "group_hourly_stats",
            "api_keys",
            "access_keys",
        ] {
            let rows = dump(&by_thread, table).await;
            assert_eq!(rows, dump(&by_pool, table).await, "{table}");
            assert!(!rows.is_empty(), "{table} has rows");
        }
        // The key's usage: two successes added to 5, the last one's time.
        let keys = dump(&by_thread, "api_keys").await;
        assert!(keys[0].contains("|7|"), "{keys:?}");
        assert!(keys[0].contains("'2025-03-04 "), "{keys:?}");
        // The access key's: two requests (the final logs) added to 5, the last one's time.
        let access = dump(&by_thread, "access_keys").await;
        assert!(access[0].contains("|7|'2025-03-04 10:59:07"), "{access:?}");
        let logs = dump(&by_thread, "request_logs").await;
        assert!(logs.iter().all(|l| l.ends_with("|1|'tëam'")), "{logs:?}");

        // A replayed batch adds no row.
        writer.write(&mut b, Replay::New).await.expect("replayed");
        assert_eq!(dump(&by_thread, "request_logs").await.len(), 3);
    }

    /// A batch that may repeat logs (read again from the Redis stream) stores and counts only
    /// the logs not written before, and each once: both writers end where writing each log once
    /// ends.
    #[tokio::test]
    async fn logs_written_before_are_neither_stored_nor_counted_again() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut later = record(
            "0190a000-0000-7000-8000-000000000004",
            30,
            true,
            RequestType::Final,
            None,
        );
        later.key_hash = "hash-a".into();
        let once = migrated(&dir.path().join("once.db")).await;
        let mut all = batch();
        all.push(later.clone());
        LogWriter::Pool(once.clone())
            .write_batch(&mut all, Replay::New)
            .await
            .expect("each log once");

        let by_pool = migrated(&dir.path().join("pool.db")).await;
        let (by_thread, thread) = writer_on(&dir, "thread.db").await;
        let writers = [
            (&by_pool, LogWriter::Pool(by_pool.clone())),
            (&by_thread, LogWriter::Sqlite(thread)),
        ];
        for (db, writer) in &writers {
            let mut first = batch();
            writer
                .write_batch(&mut first, Replay::Possible)
                .await
                .expect("the first delivery");
            // Again, with a new log, and the new log twice.
            let mut again = batch();
            again.push(later.clone());
            again.push(later.clone());
            writer
                .write_batch(&mut again, Replay::Possible)
                .await
                .expect("the second delivery");
            assert_eq!(again.len(), 5, "the batch comes back whole");
            for table in [
                "request_logs",
                "group_hourly_stats",
                "api_keys",
                "access_keys",
            ] {
                assert_eq!(dump(db, table).await, dump(&once, table).await, "{table}");
            }
        }
    }

    #[tokio::test]
    async fn closing_ends_the_thread_and_hands_later_batches_back() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (db, writer) = writer_on(&dir, "close.db").await;
        let mut b = batch();
        writer.write(&mut b, Replay::New).await.expect("written");
        writer.close().await;
        assert!(writer.write(&mut b, Replay::New).await.is_err(), "closed");
        assert_eq!(b, batch(), "the refused batch is kept");
        // With the writer's connection closed, the pool's is the last: closing it checkpoints
        // the WAL into the database file and removes it.
        db.close().await;
        // sqlx's connections close on their own worker threads, which may not have finished
        // when `close` returns (seen once on a loaded machine).
        let wal = dir.path().join("close.db-wal");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while wal.exists() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!wal.exists(), "the WAL is left");
        let reopened = migrated(&dir.path().join("close.db")).await;
        assert_eq!(dump(&reopened, "request_logs").await.len(), 3);
    }

    #[tokio::test]
    async fn the_writer_waits_for_a_pool_transaction_instead_of_failing() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (db, writer) = writer_on(&dir, "busy.db").await;
        let Db::Sqlite(pool) = &db else {
            unreachable!("a SQLite DSN")
        };
        let mut tx = pool.begin().await.expect("begin");
        sqlx::query("UPDATE api_keys SET notes = 'held'")
            .execute(&mut *tx)
            .await
            .expect("take the write lock");
        let held = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            tx.commit().await.expect("commit");
        });
        let mut b = batch();
        let started = std::time::Instant::now();
        writer
            .write(&mut b, Replay::New)
            .await
            .expect("written once the lock is free");
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "written while the pool held the write lock"
        );
        held.await.expect("the holder");
        assert_eq!(dump(&db, "request_logs").await.len(), 3);
    }
}
