//! `system_settings`: key/value rows, upserted on `setting_key`.

use sqlx::FromRow;

use crate::db::{Backend, Db, DbResult, DbTime};
use crate::with_pool;

#[derive(Debug, Clone, FromRow)]
pub struct SettingRow {
    pub setting_key: String,
    pub setting_value: String,
}

pub async fn list(db: &Db) -> DbResult<Vec<SettingRow>> {
    let sql = db.sql("SELECT setting_key, setting_value FROM system_settings");
    Ok(with_pool!(db, p => sqlx::query_as::<_, SettingRow>(&sql).fetch_all(p).await)?)
}

/// Inserts or replaces each `(key, value, description)` in one transaction.
pub async fn upsert(db: &Db, rows: &[(String, String, String)]) -> DbResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = match db.backend() {
        Backend::MySql => {
            "INSERT INTO system_settings (setting_key, setting_value, description, created_at, updated_at) VALUES (?, ?, ?, ?, ?) \
             ON DUPLICATE KEY UPDATE setting_value = VALUES(setting_value), updated_at = VALUES(updated_at)"
        }
        _ => {
            "INSERT INTO system_settings (setting_key, setting_value, description, created_at, updated_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (setting_key) DO UPDATE SET setting_value = excluded.setting_value, updated_at = excluded.updated_at"
        }
    };
    let sql = db.sql(sql);
    let now = DbTime::now();
    with_pool!(db, p => {
        let mut tx = p.begin().await?;
        for (k, v, d) in rows {
            sqlx::query(&sql).bind(k).bind(v).bind(d).bind(now).bind(now).execute(&mut *tx).await?;
        }
        tx.commit().await?;
    });
    Ok(())
}

/// Inserts rows whose key is missing (seeding defaults); existing values are kept.
pub async fn insert_missing(db: &Db, rows: &[(String, String, String)]) -> DbResult<usize> {
    let existing: std::collections::HashSet<String> =
        list(db).await?.into_iter().map(|r| r.setting_key).collect();
    let missing: Vec<_> = rows
        .iter()
        .filter(|(k, _, _)| !existing.contains(k))
        .cloned()
        .collect();
    let n = missing.len();
    if n > 0 {
        let sql = db.sql(
            "INSERT INTO system_settings (setting_key, setting_value, description, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        );
        let now = DbTime::now();
        with_pool!(db, p => {
            let mut tx = p.begin().await?;
            for (k, v, d) in &missing {
                sqlx::query(&sql).bind(k).bind(v).bind(d).bind(now).bind(now).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
    }
    Ok(n)
}
