//! `groups` and `group_sub_groups`.

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::{DbI64, DbJson, DbTime};
use crate::db::types::DbBool;
use crate::db::{Db, DbError, DbResult};
use crate::with_pool;

const COLUMNS: &str = "id, name, display_name, proxy_keys, description, group_type, upstreams, validation_endpoint, \
    channel_type, sort, test_model, param_overrides, config, header_rules, model_redirect_rules, \
    model_redirect_strict, last_validated_at, created_at, updated_at, models, priority, weight";

#[derive(Debug, Clone, FromRow)]
struct GroupRow {
    id: DbI64,
    name: String,
    display_name: Option<String>,
    proxy_keys: Option<String>,
    description: Option<String>,
    group_type: Option<String>,
    upstreams: Option<DbJson>,
    validation_endpoint: Option<String>,
    channel_type: String,
    sort: Option<DbI64>,
    test_model: Option<String>,
    param_overrides: Option<DbJson>,
    config: Option<DbJson>,
    header_rules: Option<DbJson>,
    model_redirect_rules: Option<DbJson>,
    model_redirect_strict: Option<DbBool>,
    last_validated_at: Option<DbTime>,
    created_at: Option<DbTime>,
    updated_at: Option<DbTime>,
    models: Option<String>,
    priority: Option<DbI64>,
    weight: Option<DbI64>,
}

/// A `groups` row. JSON columns are kept as their stored text (`None` = SQL NULL).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRecord {
    pub id: i64,
    pub name: String,
    pub display_name: String,
    pub proxy_keys: String,
    pub description: String,
    pub group_type: String,
    pub upstreams: Option<String>,
    pub validation_endpoint: String,
    pub channel_type: String,
    pub sort: i64,
    pub test_model: String,
    pub param_overrides: Option<String>,
    pub config: Option<String>,
    pub header_rules: Option<String>,
    pub model_redirect_rules: Option<String>,
    pub model_redirect_strict: bool,
    pub last_validated_at: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    /// JSON array of model names or glob patterns served on the native routes (`None` = SQL NULL,
    /// as GPT-Load 1.x leaves it: none).
    pub models: Option<String>,
    /// Routing tier on the native routes (lower first); 0 when unset.
    pub priority: i64,
    /// Share within the tier; 1 when unset.
    pub weight: i64,
}

impl From<GroupRow> for GroupRecord {
    fn from(r: GroupRow) -> Self {
        Self {
            id: r.id.0,
            name: r.name,
            display_name: r.display_name.unwrap_or_default(),
            proxy_keys: r.proxy_keys.unwrap_or_default(),
            description: r.description.unwrap_or_default(),
            group_type: r.group_type.unwrap_or_default(),
            upstreams: r.upstreams.map(|j| j.0),
            validation_endpoint: r.validation_endpoint.unwrap_or_default(),
            channel_type: r.channel_type,
            sort: r.sort.map(|s| s.0).unwrap_or(0),
            test_model: r.test_model.unwrap_or_default(),
            param_overrides: r.param_overrides.map(|j| j.0),
            config: r.config.map(|j| j.0),
            header_rules: r.header_rules.map(|j| j.0),
            model_redirect_rules: r.model_redirect_rules.map(|j| j.0),
            model_redirect_strict: r.model_redirect_strict.is_some_and(|b| b.0),
            last_validated_at: r.last_validated_at.map(|t| t.0),
            created_at: r.created_at.map(|t| t.0),
            updated_at: r.updated_at.map(|t| t.0),
            models: r.models,
            priority: r.priority.map(|p| p.0).unwrap_or(0),
            weight: r.weight.map(|w| w.0).unwrap_or(1),
        }
    }
}

fn json(v: &Option<String>) -> Option<DbJson> {
    v.as_ref().map(|s| DbJson(s.clone()))
}

/// Every group, `sort ASC, id DESC` (GPT-Load's list order).
pub async fn list(db: &Db) -> DbResult<Vec<GroupRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM `groups` ORDER BY sort ASC, id DESC");
    let sql = db.sql(&sql);
    let rows = with_pool!(db, p => sqlx::query_as::<_, GroupRow>(&sql).fetch_all(p).await)?;
    Ok(rows.into_iter().map(Into::into).collect())
}

pub async fn get(db: &Db, id: i64) -> DbResult<GroupRecord> {
    let sql = format!("SELECT {COLUMNS} FROM `groups` WHERE id = ?");
    let sql = db.sql(&sql);
    let row = with_pool!(db, p => sqlx::query_as::<_, GroupRow>(&sql).bind(DbI64(id)).fetch_optional(p).await)?;
    row.map(Into::into).ok_or(DbError::NotFound)
}

pub async fn get_many(db: &Db, ids: &[i64]) -> DbResult<Vec<GroupRecord>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders = vec!["?"; ids.len()].join(",");
    let sql =
        format!("SELECT {COLUMNS} FROM `groups` WHERE id IN ({placeholders}) ORDER BY id ASC");
    let sql = db.sql(&sql);
    let rows = with_pool!(db, p => {
        let mut q = sqlx::query_as::<_, GroupRow>(&sql);
        for id in ids {
            q = q.bind(DbI64(*id));
        }
        q.fetch_all(p).await
    })?;
    Ok(rows.into_iter().map(Into::into).collect())
}

pub async fn exists_name(db: &Db, name: &str) -> DbResult<bool> {
    let sql = db.sql("SELECT COUNT(*) FROM `groups` WHERE name = ?");
    let n: DbI64 = with_pool!(db, p => sqlx::query_scalar(&sql).bind(name).fetch_one(p).await)?;
    Ok(n.0 > 0)
}

/// Inserts a group; returns its id.
pub async fn insert(db: &Db, g: &GroupRecord) -> DbResult<i64> {
    let now = DbTime::now();
    let cols = "name, display_name, proxy_keys, description, group_type, upstreams, validation_endpoint, channel_type, sort, \
                test_model, param_overrides, config, header_rules, model_redirect_rules, model_redirect_strict, last_validated_at, created_at, updated_at, \
                models, priority, weight";
    let values = "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?";
    macro_rules! bind_all {
        ($q:expr) => {
            $q.bind(&g.name)
                .bind(&g.display_name)
                .bind(&g.proxy_keys)
                .bind(&g.description)
                .bind(&g.group_type)
                .bind(DbJson(g.upstreams.clone().unwrap_or_else(|| "[]".into())))
                .bind(&g.validation_endpoint)
                .bind(&g.channel_type)
                .bind(DbI64(g.sort))
                .bind(&g.test_model)
                .bind(json(&g.param_overrides))
                .bind(json(&g.config))
                .bind(json(&g.header_rules))
                .bind(json(&g.model_redirect_rules))
                .bind(g.model_redirect_strict)
                .bind(g.last_validated_at.map(DbTime))
                .bind(now)
                .bind(now)
                .bind(&g.models)
                .bind(DbI64(g.priority))
                .bind(DbI64(g.weight))
        };
    }
    match db {
        Db::MySql(p) => {
            let sql = format!("INSERT INTO `groups` ({cols}) VALUES ({values})");
            let r = bind_all!(sqlx::query(&sql)).execute(p).await?;
            Ok(r.last_insert_id() as i64)
        }
        Db::Sqlite(p) => {
            let sql = format!("INSERT INTO `groups` ({cols}) VALUES ({values}) RETURNING id");
            let id: DbI64 = bind_all!(sqlx::query_scalar(&sql)).fetch_one(p).await?;
            Ok(id.0)
        }
        Db::Postgres(p) => {
            let sql = format!("INSERT INTO `groups` ({cols}) VALUES ({values}) RETURNING id");
            let sql = db.sql(&sql);
            let id: DbI64 = bind_all!(sqlx::query_scalar(&sql)).fetch_one(p).await?;
            Ok(id.0)
        }
    }
}

/// Saves every column of an existing group.
pub async fn update(db: &Db, g: &GroupRecord) -> DbResult<()> {
    let sql = db.sql(
        "UPDATE `groups` SET name = ?, display_name = ?, proxy_keys = ?, description = ?, group_type = ?, upstreams = ?, \
         validation_endpoint = ?, channel_type = ?, sort = ?, test_model = ?, param_overrides = ?, config = ?, header_rules = ?, \
         model_redirect_rules = ?, model_redirect_strict = ?, models = ?, priority = ?, weight = ?, updated_at = ? WHERE id = ?",
    );
    let r = with_pool!(db, p => sqlx::query(&sql)
        .bind(&g.name)
        .bind(&g.display_name)
        .bind(&g.proxy_keys)
        .bind(&g.description)
        .bind(&g.group_type)
        .bind(DbJson(g.upstreams.clone().unwrap_or_else(|| "[]".into())))
        .bind(&g.validation_endpoint)
        .bind(&g.channel_type)
        .bind(DbI64(g.sort))
        .bind(&g.test_model)
        .bind(json(&g.param_overrides))
        .bind(json(&g.config))
        .bind(json(&g.header_rules))
        .bind(json(&g.model_redirect_rules))
        .bind(g.model_redirect_strict)
        .bind(&g.models)
        .bind(DbI64(g.priority))
        .bind(DbI64(g.weight))
        .bind(DbTime::now())
        .bind(DbI64(g.id))
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
    if r == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

pub async fn set_last_validated(db: &Db, id: i64, at: DateTime<Utc>) -> DbResult<()> {
    let sql = db.sql("UPDATE `groups` SET last_validated_at = ? WHERE id = ?");
    with_pool!(db, p => sqlx::query(&sql).bind(DbTime(at)).bind(DbI64(id)).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Deletes a group, its keys and its sub-group memberships (both directions) in one transaction.
/// Keys go first: PostgreSQL and MySQL enforce GORM's `fk_groups_api_keys`.
pub async fn delete(db: &Db, id: i64) -> DbResult<()> {
    let s1 = db.sql("DELETE FROM group_sub_groups WHERE group_id = ? OR sub_group_id = ?");
    let s2 = db.sql("DELETE FROM api_keys WHERE group_id = ?");
    let s3 = db.sql("DELETE FROM `groups` WHERE id = ?");
    let affected = with_pool!(db, p => {
        let mut tx = p.begin().await?;
        sqlx::query(&s1).bind(DbI64(id)).bind(DbI64(id)).execute(&mut *tx).await?;
        sqlx::query(&s2).bind(DbI64(id)).execute(&mut *tx).await?;
        let n = sqlx::query(&s3).bind(DbI64(id)).execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        n
    });
    if affected == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

/// Sets `sort` for each `(id, sort)`; fails with `NotFound` (rolling back) when an id is missing.
pub async fn reorder(db: &Db, items: &[(i64, i64)]) -> DbResult<()> {
    let sql = db.sql("UPDATE `groups` SET sort = ?, updated_at = ? WHERE id = ?");
    let now = DbTime::now();
    with_pool!(db, p => {
        let mut tx = p.begin().await?;
        for (id, sort) in items {
            let n = sqlx::query(&sql).bind(DbI64(*sort)).bind(now).bind(DbI64(*id)).execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                tx.rollback().await?;
                return Err(DbError::NotFound);
            }
        }
        tx.commit().await?;
    });
    Ok(())
}

/// One `group_sub_groups` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubGroupRow {
    pub group_id: i64,
    pub sub_group_id: i64,
    pub weight: i64,
}

#[derive(FromRow)]
struct SubRow {
    group_id: DbI64,
    sub_group_id: DbI64,
    weight: Option<DbI64>,
}

pub async fn all_sub_groups(db: &Db) -> DbResult<Vec<SubGroupRow>> {
    let sql = db.sql("SELECT group_id, sub_group_id, weight FROM group_sub_groups ORDER BY id ASC");
    let rows = with_pool!(db, p => sqlx::query_as::<_, SubRow>(&sql).fetch_all(p).await)?;
    Ok(rows
        .into_iter()
        .map(|r| SubGroupRow {
            group_id: r.group_id.0,
            sub_group_id: r.sub_group_id.0,
            weight: r.weight.map(|w| w.0).unwrap_or(0),
        })
        .collect())
}

pub async fn sub_groups_of(db: &Db, aggregate_id: i64) -> DbResult<Vec<SubGroupRow>> {
    Ok(all_sub_groups(db)
        .await?
        .into_iter()
        .filter(|r| r.group_id == aggregate_id)
        .collect())
}

pub async fn parents_of(db: &Db, sub_group_id: i64) -> DbResult<Vec<SubGroupRow>> {
    let sql = db.sql("SELECT group_id, sub_group_id, weight FROM group_sub_groups WHERE sub_group_id = ? ORDER BY id ASC");
    let rows = with_pool!(db, p => sqlx::query_as::<_, SubRow>(&sql).bind(DbI64(sub_group_id)).fetch_all(p).await)?;
    Ok(rows
        .into_iter()
        .map(|r| SubGroupRow {
            group_id: r.group_id.0,
            sub_group_id: r.sub_group_id.0,
            weight: r.weight.map(|w| w.0).unwrap_or(0),
        })
        .collect())
}

pub async fn add_sub_groups(db: &Db, aggregate_id: i64, members: &[(i64, i64)]) -> DbResult<()> {
    let sql = db.sql("INSERT INTO group_sub_groups (group_id, sub_group_id, weight, created_at, updated_at) VALUES (?, ?, ?, ?, ?)");
    let now = DbTime::now();
    with_pool!(db, p => {
        let mut tx = p.begin().await?;
        for (sub, weight) in members {
            sqlx::query(&sql).bind(DbI64(aggregate_id)).bind(DbI64(*sub)).bind(DbI64(*weight)).bind(now).bind(now).execute(&mut *tx).await?;
        }
        tx.commit().await?;
    });
    Ok(())
}

pub async fn update_sub_group_weight(
    db: &Db,
    aggregate_id: i64,
    sub_group_id: i64,
    weight: i64,
) -> DbResult<()> {
    let sql = db.sql("UPDATE group_sub_groups SET weight = ?, updated_at = ? WHERE group_id = ? AND sub_group_id = ?");
    let n = with_pool!(db, p => sqlx::query(&sql).bind(DbI64(weight)).bind(DbTime::now()).bind(DbI64(aggregate_id)).bind(DbI64(sub_group_id)).execute(p).await.map(|r| r.rows_affected()))?;
    if n == 0 {
        // MySQL reports 0 affected rows when the value is unchanged: check the row exists.
        let exists = sub_groups_of(db, aggregate_id)
            .await?
            .iter()
            .any(|r| r.sub_group_id == sub_group_id);
        if !exists {
            return Err(DbError::NotFound);
        }
    }
    Ok(())
}

pub async fn delete_sub_group(db: &Db, aggregate_id: i64, sub_group_id: i64) -> DbResult<()> {
    let sql = db.sql("DELETE FROM group_sub_groups WHERE group_id = ? AND sub_group_id = ?");
    let n = with_pool!(db, p => sqlx::query(&sql).bind(DbI64(aggregate_id)).bind(DbI64(sub_group_id)).execute(p).await.map(|r| r.rows_affected()))?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}
