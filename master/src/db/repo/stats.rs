//! `group_hourly_stats` reads for the dashboard and group stats.

use chrono::{DateTime, Utc};

use super::{DbI64, DbTime};
use crate::db::{Db, DbResult};
use crate::with_pool;

/// Which groups a sum covers.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    /// One group (an aggregate shows its parent-attributed counts).
    Group(i64),
    /// Every group except aggregates (avoids double counting).
    AllStandard,
}

fn scope_sql(s: Scope) -> &'static str {
    match s {
        Scope::Group(_) => " AND group_id = ?",
        Scope::AllStandard => {
            " AND group_id NOT IN (SELECT id FROM `groups` WHERE group_type = 'aggregate')"
        }
    }
}

/// `(success, failure)` over `from <= time < to`.
pub async fn sum(
    db: &Db,
    scope: Scope,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> DbResult<(i64, i64)> {
    let sql = format!(
        "SELECT {}, {} FROM group_hourly_stats WHERE `time` >= ? AND `time` < ?{}",
        db.int_expr("COALESCE(SUM(success_count), 0)"),
        db.int_expr("COALESCE(SUM(failure_count), 0)"),
        scope_sql(scope)
    );
    let sql = db.sql(&sql);
    let (s, f): (DbI64, DbI64) = with_pool!(db, p => {
        let mut q = sqlx::query_as(&sql).bind(DbTime(from)).bind(DbTime(to));
        if let Scope::Group(g) = scope {
            q = q.bind(DbI64(g));
        }
        q.fetch_one(p).await
    })?;
    Ok((s.0, f.0))
}

/// Per-hour `(hour, success, failure)` over `from <= time < to`.
pub async fn hourly(
    db: &Db,
    scope: Scope,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> DbResult<Vec<(DateTime<Utc>, i64, i64)>> {
    let sql = format!(
        "SELECT `time`, success_count, failure_count FROM group_hourly_stats WHERE `time` >= ? AND `time` < ?{}",
        scope_sql(scope)
    );
    let sql = db.sql(&sql);
    let rows: Vec<(DbTime, DbI64, DbI64)> = with_pool!(db, p => {
        let mut q = sqlx::query_as(&sql).bind(DbTime(from)).bind(DbTime(to));
        if let Scope::Group(g) = scope {
            q = q.bind(DbI64(g));
        }
        q.fetch_all(p).await
    })?;
    Ok(rows.into_iter().map(|(t, s, f)| (t.0, s.0, f.0)).collect())
}
