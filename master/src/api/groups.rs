//! `/api/groups…`.

use std::collections::HashSet;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{Duration as ChronoDuration, Utc};
use gpt_load_common::keystore::KeyStore;
use serde_json::{Map, Value, json};

use super::response::{ApiError, ApiJson, ApiResult, ReqLang, ok, ok_msg};
use crate::db::DbError;
use crate::db::repo::groups::{self, GroupRecord};
use crate::db::repo::keys;
use crate::db::repo::stats::{self, Scope};
use crate::i18n::{self, Lang};
use crate::service::groups as svc;
use crate::service::settings::config_options as options;
use crate::state::AppState;

pub fn parse_id(lang: Lang, raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        ApiError::i18n(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            lang,
            "validation.invalid_group_id",
        )
    })
}

fn app_url(state: &AppState) -> String {
    state.worker.snapshot().settings.app_url().to_owned()
}

fn body_object(v: Value) -> Result<Map<String, Value>, ApiError> {
    match v {
        Value::Object(o) => Ok(o),
        _ => Err(ApiError::invalid_json("request body must be a JSON object")),
    }
}

pub async fn create(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult {
    let o = body_object(body)?;
    let mut g = svc::from_create(lang, &o, state.upstream_policy())?;
    if groups::exists_name(&state.db, &g.name).await? {
        return Err(ApiError::duplicate());
    }
    g.id = groups::insert(&state.db, &g).await?;
    let g = groups::get(&state.db, g.id).await?;
    state.publish().await?;
    ok(lang, svc::response(&g, &app_url(&state)))
}

pub async fn list(State(state): State<AppState>, ReqLang(lang): ReqLang) -> ApiResult {
    let url = app_url(&state);
    let all: Vec<Value> = groups::list(&state.db)
        .await?
        .iter()
        .map(|g| svc::response(g, &url))
        .collect();
    ok(lang, all)
}

pub async fn list_lite(State(state): State<AppState>, ReqLang(lang): ReqLang) -> ApiResult {
    let all: Vec<Value> = groups::list(&state.db)
        .await?
        .iter()
        .map(svc::lite)
        .collect();
    ok(lang, all)
}

pub async fn config_options(State(state): State<AppState>, ReqLang(lang): ReqLang) -> ApiResult {
    ok(lang, options(lang, &state.worker.snapshot().settings))
}

pub async fn reorder(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult {
    let o = body_object(body)?;
    let items = match o.get("items") {
        Some(Value::Array(a)) => a.clone(),
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err(ApiError::invalid_json("field 'items' must be an array")),
    };
    let verr = |id: &str, vars: &[(&str, &str)]| {
        ApiError::i18n_vars(StatusCode::BAD_REQUEST, "VALIDATION_FAILED", lang, id, vars)
    };
    if items.is_empty() {
        return Err(verr("validation.reorder_items_required", &[]));
    }
    let mut seen = HashSet::new();
    let mut pairs = Vec::new();
    for it in &items {
        let Value::Object(io) = it else {
            return Err(ApiError::invalid_json("each item must be {id, sort}"));
        };
        let id = svc::opt_i64(io, "id")?.unwrap_or(0);
        let sort = svc::opt_i64(io, "sort")?.unwrap_or(0);
        if id <= 0 {
            return Err(verr("validation.reorder_group_id", &[]));
        }
        if sort < 0 {
            return Err(verr("validation.reorder_sort_negative", &[]));
        }
        if !seen.insert(id) {
            return Err(verr(
                "validation.reorder_duplicate_group",
                &[("id", &id.to_string())],
            ));
        }
        pairs.push((id, sort));
    }
    match groups::reorder(&state.db, &pairs).await {
        Err(DbError::NotFound) => return Err(verr("validation.reorder_group_not_found", &[])),
        r => r?,
    }
    state.publish().await?;
    ok_msg(i18n::t(lang, "success.groups_reordered"))
}

async fn membership_count(state: &AppState, id: i64) -> Result<usize, ApiError> {
    Ok(groups::parents_of(&state.db, id).await?.len())
}

pub async fn update(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult {
    let id = parse_id(lang, &id)?;
    let o = body_object(body)?;
    let mut g = groups::get(&state.db, id).await?;
    let old_name = g.name.clone();
    let members = if g.group_type == "aggregate" {
        0
    } else {
        membership_count(&state, id).await?
    };
    svc::apply_update(lang, &mut g, &o, members, state.upstream_policy())?;
    if g.name != old_name && groups::exists_name(&state.db, &g.name).await? {
        return Err(ApiError::duplicate());
    }
    groups::update(&state.db, &g).await?;
    let g = groups::get(&state.db, id).await?;
    state.publish().await?;
    ok(lang, svc::response(&g, &app_url(&state)))
}

pub async fn delete(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
    Path(id): Path<String>,
) -> ApiResult {
    let id = parse_id(lang, &id)?;
    groups::get(&state.db, id).await?;
    let _w = state.key_writes.lock().await;
    groups::delete(&state.db, id).await?;
    if state.store.remove_group(id).await.is_err() {
        return Err(ApiError::i18n(
            StatusCode::INTERNAL_SERVER_ERROR,
            "DATABASE_ERROR",
            lang,
            "error.delete_group_cache",
        ));
    }
    state.publish().await?;
    ok_msg(i18n::t(lang, "success.group_deleted"))
}

fn request_stats(total: i64, failed: i64) -> Value {
    let rate = if total > 0 {
        ((failed as f64 / total as f64) * 10_000.0).round() / 10_000.0
    } else {
        0.0
    };
    json!({"total_requests": total, "failed_requests": failed, "failure_rate": rate})
}

pub async fn stats(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
    Path(id): Path<String>,
) -> ApiResult {
    let id = parse_id(lang, &id)?;
    let g = groups::get(&state.db, id).await?;
    let (total, active, invalid) = if g.group_type == "aggregate" {
        (0, 0, 0)
    } else {
        keys::counts(&state.db, Some(id)).await?
    };
    let end = crate::db::repo::logs::hour_bucket(Utc::now()) + ChronoDuration::hours(1);
    let mut windows = Vec::new();
    for hours in [24, 24 * 7, 24 * 30] {
        let (s, f) = stats::sum(
            &state.db,
            Scope::Group(id),
            end - ChronoDuration::hours(hours),
            end,
        )
        .await?;
        windows.push(request_stats(s + f, f));
    }
    ok(
        lang,
        json!({
            "key_stats": {"total_keys": total, "active_keys": active, "invalid_keys": invalid},
            "stats_24_hour": windows[0],
            "stats_7_day": windows[1],
            "stats_30_day": windows[2],
        }),
    )
}

pub async fn copy(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult {
    let id = parse_id(lang, &id)?;
    let o = body_object(body)?;
    let mode = svc::opt_str(&o, "copy_keys")?
        .unwrap_or_default()
        .trim()
        .to_owned();
    let mode = if mode.is_empty() {
        "all".to_owned()
    } else {
        mode
    };
    if !matches!(mode.as_str(), "none" | "valid_only" | "all") {
        return Err(ApiError::i18n(
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
            lang,
            "validation.invalid_copy_keys_value",
        ));
    }
    let src = groups::get(&state.db, id).await?;
    let mut name = format!("{}_copy", src.name);
    let mut n = 2;
    while groups::exists_name(&state.db, &name).await? {
        if n > 1000 {
            return Err(ApiError::duplicate());
        }
        name = format!("{}_copy_{n}", src.name);
        n += 1;
    }
    let copy = GroupRecord {
        id: 0,
        name: name.chars().take(100).collect(),
        display_name: if src.display_name.is_empty() {
            String::new()
        } else {
            format!("{} Copy", src.display_name)
        },
        last_validated_at: None,
        ..src.clone()
    };
    // The keys are re-imported by the (single) task runner: refuse before creating anything
    // while another task runs, so a copy never silently comes without its keys.
    let mut plain = Vec::new();
    if mode != "none" && src.group_type != "aggregate" {
        let status = (mode == "valid_only").then_some("active");
        let mut after = 0;
        loop {
            let page = keys::page_after(&state.db, Some(id), status, after, 5000).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            plain.extend(
                page.iter()
                    .map(|k| state.cipher.decrypt_or_raw(&k.key_value)),
            );
        }
    }
    if !plain.is_empty() && state.tasks.is_running() {
        return Err(ApiError::task_in_progress(
            "a task is already running, please wait",
        ));
    }
    let new_id = groups::insert(&state.db, &copy).await?;
    if !plain.is_empty()
        && let Err(e) = super::keys::start_import(&state, new_id, copy.name.clone(), plain)
    {
        // A task started in between: undo the copy rather than leave it without keys.
        groups::delete(&state.db, new_id).await?;
        return Err(e);
    }
    state.publish().await?;
    let g = groups::get(&state.db, new_id).await?;
    ok(lang, json!({"group": svc::response(&g, &app_url(&state))}))
}

async fn aggregate(state: &AppState, lang: Lang, id: i64) -> Result<GroupRecord, ApiError> {
    let g = match groups::get(&state.db, id).await {
        Err(DbError::NotFound) => {
            return Err(ApiError::i18n(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                lang,
                "group.not_found",
            ));
        }
        r => r?,
    };
    if g.group_type != "aggregate" {
        return Err(ApiError::i18n(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            lang,
            "group.not_aggregate",
        ));
    }
    Ok(g)
}

pub async fn sub_groups(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
    Path(id): Path<String>,
) -> ApiResult {
    let id = parse_id(lang, &id)?;
    aggregate(&state, lang, id).await?;
    let members = groups::sub_groups_of(&state.db, id).await?;
    let ids: Vec<i64> = members.iter().map(|m| m.sub_group_id).collect();
    let recs = groups::get_many(&state.db, &ids).await?;
    let mut out = Vec::new();
    for g in &recs {
        let weight = members
            .iter()
            .find(|m| m.sub_group_id == g.id)
            .map_or(0, |m| m.weight);
        let (total, active, invalid) = keys::counts(&state.db, Some(g.id))
            .await
            .unwrap_or((0, 0, 0));
        out.push(json!({"group": svc::full_model(g), "weight": weight, "total_keys": total, "active_keys": active, "invalid_keys": invalid}));
    }
    ok(lang, out)
}

pub async fn add_sub_groups(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult {
    let id = parse_id(lang, &id)?;
    let o = body_object(body)?;
    let agg = aggregate(&state, lang, id).await?;
    let verr = |m: &str, vars: &[(&str, &str)]| {
        ApiError::i18n_vars(StatusCode::BAD_REQUEST, "VALIDATION_FAILED", lang, m, vars)
    };
    let items = match o.get("sub_groups") {
        Some(Value::Array(a)) => a.clone(),
        None | Some(Value::Null) => Vec::new(),
        Some(_) => {
            return Err(ApiError::invalid_json(
                "field 'sub_groups' must be an array",
            ));
        }
    };
    if items.is_empty() {
        return Err(verr("validation.sub_groups_required", &[]));
    }
    let mut input = Vec::new();
    for it in &items {
        let Value::Object(io) = it else {
            return Err(ApiError::invalid_json(
                "each sub-group must be {group_id, weight}",
            ));
        };
        let gid = svc::opt_i64(io, "group_id")?.unwrap_or(0);
        let weight = svc::opt_i64(io, "weight")?.unwrap_or(0);
        if gid <= 0 {
            return Err(verr("validation.invalid_sub_group_id", &[]));
        }
        if weight < 0 {
            return Err(verr("validation.sub_group_weight_negative", &[]));
        }
        if weight > 1000 {
            return Err(verr("validation.sub_group_weight_max_exceeded", &[]));
        }
        input.push((gid, weight));
    }
    let ids: Vec<i64> = input.iter().map(|(g, _)| *g).collect();
    let found = groups::get_many(&state.db, &ids).await?;
    if found.len() != ids.iter().collect::<HashSet<_>>().len() {
        return Err(verr("validation.sub_group_not_found", &[]));
    }
    let existing = groups::sub_groups_of(&state.db, id).await?;
    let existing_recs = groups::get_many(
        &state.db,
        &existing.iter().map(|e| e.sub_group_id).collect::<Vec<_>>(),
    )
    .await?;
    let mut endpoint: Option<String> = existing_recs
        .first()
        .map(svc::effective_validation_endpoint);
    for g in &found {
        if g.group_type == "aggregate" {
            return Err(verr("validation.sub_group_cannot_be_aggregate", &[]));
        }
        if g.channel_type != agg.channel_type {
            return Err(verr("validation.sub_group_channel_mismatch", &[]));
        }
        let ep = svc::effective_validation_endpoint(g);
        match &endpoint {
            Some(e) if *e != ep => {
                return Err(verr(
                    "validation.sub_group_validation_endpoint_mismatch",
                    &[],
                ));
            }
            None => endpoint = Some(ep),
            _ => {}
        }
    }
    for (gid, _) in &input {
        if existing.iter().any(|e| e.sub_group_id == *gid) {
            return Err(ApiError::i18n_vars(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                lang,
                "group.sub_group_already_exists",
                &[("sub_group_id", &gid.to_string())],
            ));
        }
    }
    groups::add_sub_groups(&state.db, id, &input).await?;
    state.publish().await?;
    ok_msg(i18n::t(lang, "success.sub_groups_added"))
}

pub async fn update_sub_group_weight(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
    Path((id, sub)): Path<(String, String)>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult {
    let id = parse_id(lang, &id)?;
    let sub = sub.parse::<i64>().ok().filter(|s| *s > 0).ok_or_else(|| {
        ApiError::i18n(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            lang,
            "validation.invalid_sub_group_id",
        )
    })?;
    let o = body_object(body)?;
    aggregate(&state, lang, id).await?;
    let weight = svc::opt_i64(&o, "weight")?.unwrap_or(0);
    if weight < 0 {
        return Err(ApiError::i18n(
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
            lang,
            "validation.sub_group_weight_negative",
        ));
    }
    if weight > 1000 {
        return Err(ApiError::i18n(
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
            lang,
            "validation.sub_group_weight_max_exceeded",
        ));
    }
    groups::update_sub_group_weight(&state.db, id, sub, weight)
        .await
        .map_err(|e| sub_group_error(lang, e))?;
    state.publish().await?;
    ok_msg(i18n::t(lang, "success.sub_group_weight_updated"))
}

pub async fn delete_sub_group(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
    Path((id, sub)): Path<(String, String)>,
) -> ApiResult {
    let id = parse_id(lang, &id)?;
    let sub = sub.parse::<i64>().ok().filter(|s| *s > 0).ok_or_else(|| {
        ApiError::i18n(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            lang,
            "validation.invalid_sub_group_id",
        )
    })?;
    aggregate(&state, lang, id).await?;
    groups::delete_sub_group(&state.db, id, sub)
        .await
        .map_err(|e| sub_group_error(lang, e))?;
    state.publish().await?;
    ok_msg(i18n::t(lang, "success.sub_group_deleted"))
}

/// A missing sub-group link is a 404; anything else is the database's error.
fn sub_group_error(lang: Lang, e: DbError) -> ApiError {
    match e {
        DbError::NotFound => ApiError::i18n(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            lang,
            "group.sub_group_not_found",
        ),
        e => e.into(),
    }
}

pub async fn parent_aggregates(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
    Path(id): Path<String>,
) -> ApiResult {
    let id = parse_id(lang, &id)?;
    let parents = groups::parents_of(&state.db, id).await?;
    let recs = groups::get_many(
        &state.db,
        &parents.iter().map(|p| p.group_id).collect::<Vec<_>>(),
    )
    .await?;
    let out: Vec<Value> = parents
        .iter()
        .filter_map(|p| {
            recs.iter()
                .find(|g| g.id == p.group_id)
                .map(|g| json!({"group_id": g.id, "name": g.name, "display_name": g.display_name, "weight": p.weight}))
        })
        .collect();
    ok(lang, out)
}
