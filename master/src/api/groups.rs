//! `/api/groups…`.

use std::collections::HashSet;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{Duration as ChronoDuration, Utc};
use gpt_load_common::keystore::KeyStore;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::response::{ApiError, ApiJson, ApiResult, Msg, ReqLang, ok, ok_msg};
use super::schema::{Envelope, ErrorResponse, MessageResponse};
use crate::db::DbError;
use crate::db::repo::groups::{self, GroupRecord};
use crate::db::repo::keys;
use crate::db::repo::stats::{self, Scope};
use crate::service::groups::{self as svc, GroupLite, GroupModel, GroupRequest, GroupResponse};
use crate::service::lenient;
use crate::service::settings::{ConfigOption, config_options as options};
use crate::state::AppState;

pub fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        ApiError::i18n(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "validation.invalid_group_id",
        )
    })
}

/// The new order: each group's `sort`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReorderRequest {
    pub items: Option<Vec<ReorderItem>>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ReorderItem {
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub id: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    #[schema(minimum = 0)]
    pub sort: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RequestStats {
    pub total_requests: i64,
    pub failed_requests: i64,
    /// 0–1, four decimals.
    pub failure_rate: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyStats {
    pub total_keys: i64,
    pub active_keys: i64,
    pub invalid_keys: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupStats {
    pub key_stats: KeyStats,
    pub stats_24_hour: RequestStats,
    pub stats_7_day: RequestStats,
    pub stats_30_day: RequestStats,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CopyGroupRequest {
    /// `all` (default), `valid_only` or `none`.
    pub copy_keys: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CopyGroupResponse {
    pub group: GroupResponse,
}

/// A member of an aggregate group, with its key counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubGroup {
    pub group: GroupModel,
    pub weight: i64,
    pub total_keys: i64,
    pub active_keys: i64,
    pub invalid_keys: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AddSubGroupsRequest {
    pub sub_groups: Option<Vec<SubGroupInput>>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SubGroupInput {
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub group_id: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    #[schema(minimum = 0, maximum = 1000)]
    pub weight: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct WeightRequest {
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    #[schema(minimum = 0, maximum = 1000)]
    pub weight: Option<i64>,
}

/// An aggregate group this group is a member of.
#[derive(Debug, Serialize, ToSchema)]
pub struct ParentAggregate {
    pub group_id: i64,
    pub name: String,
    pub display_name: String,
    pub weight: i64,
}

fn app_url(state: &AppState) -> String {
    state.worker.snapshot().settings.app_url().to_owned()
}

#[utoipa::path(post, path = "/api/groups", tag = "groups", operation_id = "createGroup",
    summary = "Create a group", request_body = GroupRequest,
    responses((status = 200, body = Envelope<GroupResponse>), (status = 409, body = ErrorResponse)))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<GroupRequest>,
) -> ApiResult<GroupResponse> {
    let mut g = svc::from_create(&body, state.upstream_policy())?;
    if groups::exists_name(&state.db, &g.name).await? {
        return Err(ApiError::duplicate());
    }
    g.id = groups::insert(&state.db, &g).await?;
    let g = groups::get(&state.db, g.id).await?;
    state.publish().await?;
    ok(svc::response(&g, &app_url(&state)))
}

#[utoipa::path(get, path = "/api/groups", tag = "groups", operation_id = "listGroups",
    summary = "All groups, by sort order",
    responses((status = 200, body = Envelope<Vec<GroupResponse>>)))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Vec<GroupResponse>> {
    let url = app_url(&state);
    let all = groups::list(&state.db).await?;
    ok(all.iter().map(|g| svc::response(g, &url)).collect())
}

#[utoipa::path(get, path = "/api/groups/list", tag = "groups", operation_id = "listGroupNames",
    summary = "Ids and names of all groups",
    responses((status = 200, body = Envelope<Vec<GroupLite>>)))]
pub async fn list_lite(State(state): State<AppState>) -> ApiResult<Vec<GroupLite>> {
    let all = groups::list(&state.db).await?;
    ok(all.iter().map(svc::lite).collect())
}

#[utoipa::path(get, path = "/api/groups/config-options", tag = "groups",
    operation_id = "groupConfigOptions", summary = "The settings a group may override",
    responses((status = 200, body = Envelope<Vec<ConfigOption>>)))]
pub async fn config_options(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
) -> ApiResult<Vec<ConfigOption>> {
    ok(options(lang, &state.worker.snapshot().settings))
}

#[utoipa::path(put, path = "/api/groups/reorder", tag = "groups", operation_id = "reorderGroups",
    summary = "Set the sort order of groups", request_body = ReorderRequest,
    responses((status = 200, body = MessageResponse)))]
pub async fn reorder(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ReorderRequest>,
) -> ApiResult {
    let verr = |id: &'static str, vars: &[(&'static str, &str)]| {
        ApiError::i18n_vars(StatusCode::BAD_REQUEST, "VALIDATION_FAILED", id, vars)
    };
    let items = body.items.unwrap_or_default();
    if items.is_empty() {
        return Err(verr("validation.reorder_items_required", &[]));
    }
    let mut seen = HashSet::new();
    let mut pairs = Vec::new();
    for it in &items {
        let id = it.id.unwrap_or(0);
        let sort = it.sort.unwrap_or(0);
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
    ok_msg(Msg::id("success.groups_reordered"))
}

async fn membership_count(state: &AppState, id: i64) -> Result<usize, ApiError> {
    Ok(groups::parents_of(&state.db, id).await?.len())
}

#[utoipa::path(put, path = "/api/groups/{id}", tag = "groups", operation_id = "updateGroup",
    summary = "Update a group (absent fields keep their value)", params(GroupId),
    request_body = GroupRequest,
    responses((status = 200, body = Envelope<GroupResponse>), (status = 404, body = ErrorResponse),
        (status = 409, body = ErrorResponse)))]
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<GroupRequest>,
) -> ApiResult<GroupResponse> {
    let id = parse_id(&id)?;
    let mut g = groups::get(&state.db, id).await?;
    let old_name = g.name.clone();
    let members = if g.group_type == "aggregate" {
        0
    } else {
        membership_count(&state, id).await?
    };
    svc::apply_update(&mut g, &body, members, state.upstream_policy())?;
    if g.name != old_name && groups::exists_name(&state.db, &g.name).await? {
        return Err(ApiError::duplicate());
    }
    groups::update(&state.db, &g).await?;
    let g = groups::get(&state.db, id).await?;
    state.publish().await?;
    ok(svc::response(&g, &app_url(&state)))
}

#[utoipa::path(delete, path = "/api/groups/{id}", tag = "groups", operation_id = "deleteGroup",
    summary = "Delete a group and its keys", params(GroupId),
    responses((status = 200, body = MessageResponse), (status = 404, body = ErrorResponse)))]
pub async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    groups::get(&state.db, id).await?;
    let _w = state.key_writes.lock().await;
    groups::delete(&state.db, id).await?;
    if state.store.remove_group(id).await.is_err() {
        return Err(ApiError::i18n(
            StatusCode::INTERNAL_SERVER_ERROR,
            "DATABASE_ERROR",
            "error.delete_group_cache",
        ));
    }
    state.publish().await?;
    ok_msg(Msg::id("success.group_deleted"))
}

fn request_stats(total: i64, failed: i64) -> RequestStats {
    let rate = if total > 0 {
        ((failed as f64 / total as f64) * 10_000.0).round() / 10_000.0
    } else {
        0.0
    };
    RequestStats {
        total_requests: total,
        failed_requests: failed,
        failure_rate: rate,
    }
}

#[utoipa::path(get, path = "/api/groups/{id}/stats", tag = "groups", operation_id = "groupStats",
    summary = "Key counts and request statistics of a group", params(GroupId),
    responses((status = 200, body = Envelope<GroupStats>), (status = 404, body = ErrorResponse)))]
pub async fn stats(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<GroupStats> {
    let id = parse_id(&id)?;
    let g = groups::get(&state.db, id).await?;
    let (total, active, invalid) = if g.group_type == "aggregate" {
        (0, 0, 0)
    } else {
        keys::counts(&state.db, Some(id)).await?
    };
    let end = crate::db::repo::logs::hour_bucket(Utc::now()) + ChronoDuration::hours(1);
    let window = async |hours: i64| -> Result<RequestStats, ApiError> {
        let (s, f) = stats::sum(
            &state.db,
            Scope::Group(id),
            end - ChronoDuration::hours(hours),
            end,
        )
        .await?;
        Ok(request_stats(s + f, f))
    };
    ok(GroupStats {
        key_stats: KeyStats {
            total_keys: total,
            active_keys: active,
            invalid_keys: invalid,
        },
        stats_24_hour: window(24).await?,
        stats_7_day: window(24 * 7).await?,
        stats_30_day: window(24 * 30).await?,
    })
}

#[utoipa::path(post, path = "/api/groups/{id}/copy", tag = "groups", operation_id = "copyGroup",
    summary = "Copy a group (its keys are imported by a task)", params(GroupId),
    request_body = CopyGroupRequest,
    responses((status = 200, body = Envelope<CopyGroupResponse>), (status = 404, body = ErrorResponse),
        (status = 409, body = ErrorResponse)))]
pub async fn copy(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CopyGroupRequest>,
) -> ApiResult<CopyGroupResponse> {
    let id = parse_id(&id)?;
    let mode = body.copy_keys.unwrap_or_default().trim().to_owned();
    let mode = if mode.is_empty() {
        "all".to_owned()
    } else {
        mode
    };
    if !matches!(mode.as_str(), "none" | "valid_only" | "all") {
        return Err(ApiError::i18n(
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
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
    ok(CopyGroupResponse {
        group: svc::response(&g, &app_url(&state)),
    })
}

async fn aggregate(state: &AppState, id: i64) -> Result<GroupRecord, ApiError> {
    let g = match groups::get(&state.db, id).await {
        Err(DbError::NotFound) => {
            return Err(ApiError::i18n(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "group.not_found",
            ));
        }
        r => r?,
    };
    if g.group_type != "aggregate" {
        return Err(ApiError::i18n(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "group.not_aggregate",
        ));
    }
    Ok(g)
}

#[utoipa::path(get, path = "/api/groups/{id}/sub-groups", tag = "aggregates",
    operation_id = "listSubGroups", summary = "The members of an aggregate group", params(GroupId),
    responses((status = 200, body = Envelope<Vec<SubGroup>>), (status = 404, body = ErrorResponse)))]
pub async fn sub_groups(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Vec<SubGroup>> {
    let id = parse_id(&id)?;
    aggregate(&state, id).await?;
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
        out.push(SubGroup {
            group: svc::full_model(g),
            weight,
            total_keys: total,
            active_keys: active,
            invalid_keys: invalid,
        });
    }
    ok(out)
}

#[utoipa::path(post, path = "/api/groups/{id}/sub-groups", tag = "aggregates",
    operation_id = "addSubGroups", summary = "Add members to an aggregate group", params(GroupId),
    request_body = AddSubGroupsRequest,
    responses((status = 200, body = MessageResponse), (status = 404, body = ErrorResponse)))]
pub async fn add_sub_groups(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AddSubGroupsRequest>,
) -> ApiResult {
    let id = parse_id(&id)?;
    let agg = aggregate(&state, id).await?;
    let verr = |m: &'static str| ApiError::i18n(StatusCode::BAD_REQUEST, "VALIDATION_FAILED", m);
    let items = body.sub_groups.unwrap_or_default();
    if items.is_empty() {
        return Err(verr("validation.sub_groups_required"));
    }
    let mut input = Vec::new();
    for it in &items {
        let gid = it.group_id.unwrap_or(0);
        let weight = it.weight.unwrap_or(0);
        if gid <= 0 {
            return Err(verr("validation.invalid_sub_group_id"));
        }
        if weight < 0 {
            return Err(verr("validation.sub_group_weight_negative"));
        }
        if weight > 1000 {
            return Err(verr("validation.sub_group_weight_max_exceeded"));
        }
        input.push((gid, weight));
    }
    let ids: Vec<i64> = input.iter().map(|(g, _)| *g).collect();
    let found = groups::get_many(&state.db, &ids).await?;
    if found.len() != ids.iter().collect::<HashSet<_>>().len() {
        return Err(verr("validation.sub_group_not_found"));
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
            return Err(verr("validation.sub_group_cannot_be_aggregate"));
        }
        if g.channel_type != agg.channel_type {
            return Err(verr("validation.sub_group_channel_mismatch"));
        }
        let ep = svc::effective_validation_endpoint(g);
        match &endpoint {
            Some(e) if *e != ep => {
                return Err(verr("validation.sub_group_validation_endpoint_mismatch"));
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
                "group.sub_group_already_exists",
                &[("sub_group_id", &gid.to_string())],
            ));
        }
    }
    groups::add_sub_groups(&state.db, id, &input).await?;
    state.publish().await?;
    ok_msg(Msg::id("success.sub_groups_added"))
}

fn parse_sub_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|s| *s > 0).ok_or_else(|| {
        ApiError::i18n(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "validation.invalid_sub_group_id",
        )
    })
}

#[utoipa::path(put, path = "/api/groups/{id}/sub-groups/{sub}/weight", tag = "aggregates",
    operation_id = "updateSubGroupWeight", summary = "Change a member's weight",
    params(GroupId, SubGroupId), request_body = WeightRequest,
    responses((status = 200, body = MessageResponse), (status = 404, body = ErrorResponse)))]
pub async fn update_sub_group_weight(
    State(state): State<AppState>,
    Path((id, sub)): Path<(String, String)>,
    ApiJson(body): ApiJson<WeightRequest>,
) -> ApiResult {
    let id = parse_id(&id)?;
    let sub = parse_sub_id(&sub)?;
    aggregate(&state, id).await?;
    let weight = body.weight.unwrap_or(0);
    if weight < 0 {
        return Err(ApiError::i18n(
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
            "validation.sub_group_weight_negative",
        ));
    }
    if weight > 1000 {
        return Err(ApiError::i18n(
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
            "validation.sub_group_weight_max_exceeded",
        ));
    }
    groups::update_sub_group_weight(&state.db, id, sub, weight)
        .await
        .map_err(sub_group_error)?;
    state.publish().await?;
    ok_msg(Msg::id("success.sub_group_weight_updated"))
}

#[utoipa::path(delete, path = "/api/groups/{id}/sub-groups/{sub}", tag = "aggregates",
    operation_id = "deleteSubGroup", summary = "Remove a member from an aggregate group",
    params(GroupId, SubGroupId),
    responses((status = 200, body = MessageResponse), (status = 404, body = ErrorResponse)))]
pub async fn delete_sub_group(
    State(state): State<AppState>,
    Path((id, sub)): Path<(String, String)>,
) -> ApiResult {
    let id = parse_id(&id)?;
    let sub = parse_sub_id(&sub)?;
    aggregate(&state, id).await?;
    groups::delete_sub_group(&state.db, id, sub)
        .await
        .map_err(sub_group_error)?;
    state.publish().await?;
    ok_msg(Msg::id("success.sub_group_deleted"))
}

/// A missing sub-group link is a 404; anything else is the database's error.
fn sub_group_error(e: DbError) -> ApiError {
    match e {
        DbError::NotFound => ApiError::i18n(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "group.sub_group_not_found",
        ),
        e => e.into(),
    }
}

#[utoipa::path(get, path = "/api/groups/{id}/parent-aggregate-groups", tag = "aggregates",
    operation_id = "listParentAggregates", summary = "The aggregate groups this group is in",
    params(GroupId), responses((status = 200, body = Envelope<Vec<ParentAggregate>>)))]
pub async fn parent_aggregates(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Vec<ParentAggregate>> {
    let id = parse_id(&id)?;
    let parents = groups::parents_of(&state.db, id).await?;
    let recs = groups::get_many(
        &state.db,
        &parents.iter().map(|p| p.group_id).collect::<Vec<_>>(),
    )
    .await?;
    let out = parents
        .iter()
        .filter_map(|p| {
            recs.iter()
                .find(|g| g.id == p.group_id)
                .map(|g| ParentAggregate {
                    group_id: g.id,
                    name: g.name.clone(),
                    display_name: g.display_name.clone(),
                    weight: p.weight,
                })
        })
        .collect();
    ok(out)
}

/// The models a group's upstream lists.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiscoveredModels {
    /// Model ids, sorted.
    pub models: Vec<String>,
}

/// Asks the group's upstream for its model list with one of the group's active keys. Nothing is
/// stored: the caller puts what it wants into the group's `models`.
#[utoipa::path(post, path = "/api/groups/{id}/models/discover", tag = "groups",
    operation_id = "discoverGroupModels",
    summary = "The models the group's upstream lists, fetched with one of its keys",
    params(GroupId),
    responses((status = 200, body = Envelope<DiscoveredModels>), (status = 404, body = ErrorResponse),
        (status = 502, description = "The upstream refused or failed (`UPSTREAM_ERROR`); `message` says why",
            body = ErrorResponse)))]
pub async fn discover_models(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<DiscoveredModels> {
    let id = parse_id(&id)?;
    let g = groups::get(&state.db, id).await?;
    if g.group_type == "aggregate" {
        return Err(ApiError::validation(
            "aggregate groups have no upstream of their own to ask",
        ));
    }
    let rt = super::keys::group_runtime(&state, id)?;
    let key = match state.store.select(id, None).await {
        Ok(gpt_load_common::keystore::Selection::Key(k)) => k.key.value.clone(),
        Ok(_) => {
            return Err(ApiError::validation(
                "the group has no usable key to ask its upstream with",
            ));
        }
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "STORE_UNAVAILABLE",
                "Key store unavailable, retry shortly",
            ));
        }
    };
    let models = gpt_load_worker::discover::discover_models(&rt, &key)
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "UPSTREAM_ERROR", e))?;
    ok(DiscoveredModels { models })
}

/// A group's id in the path.
#[derive(utoipa::IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
#[expect(dead_code, reason = "read only by the OpenAPI derive")]
pub struct GroupId(#[param(minimum = 1)] i64);

/// A member group's id in the path.
#[derive(utoipa::IntoParams)]
#[into_params(names("sub"), parameter_in = Path)]
#[expect(dead_code, reason = "read only by the OpenAPI derive")]
pub struct SubGroupId(#[param(minimum = 1)] i64);
