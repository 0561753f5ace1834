//! `/api/keys…`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::response::{
    ApiError, ApiJson, ApiQuery, ApiResult, Msg, Page, Paged, go_time_opt, go_time_or_zero, ok,
    ok_msg,
};
use super::schema::{Envelope, ErrorResponse, KeyStatus, MessageResponse};
use crate::db::DbError;
use crate::db::repo::groups::{self, GroupRecord};
use crate::db::repo::keys::{self, KeyFilter};
use crate::service::keys::{self as svc, AddResult, DeleteResult, RestoreResult};
use crate::service::tasks::{KEY_DELETE, KEY_IMPORT, KEY_VALIDATION, TaskStatus};
use crate::service::validation;
use crate::state::AppState;

fn group_id_from_query(raw: Option<&str>) -> Result<i64, ApiError> {
    let raw = raw.map(str::trim).unwrap_or("");
    if raw.is_empty() {
        return Err(ApiError::i18n(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "validation.group_id_required",
        ));
    }
    raw.parse::<i64>().ok().filter(|g| *g > 0).ok_or_else(|| {
        ApiError::i18n(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "validation.invalid_group_id_format",
        )
    })
}

async fn find_group(state: &AppState, id: i64) -> Result<GroupRecord, ApiError> {
    Ok(groups::get(&state.db, id).await?)
}

/// An upstream key as the API shows it (decrypted).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Key)]
pub struct KeyResponse {
    pub id: i64,
    pub key_value: String,
    pub key_hash: String,
    pub group_id: i64,
    #[schema(value_type = KeyStatus)]
    pub status: String,
    pub notes: String,
    pub request_count: i64,
    pub failure_count: i64,
    pub last_used_at: Option<String>,
    /// RFC 3339 (local offset); `0001-01-01T00:00:00Z` when unknown.
    pub created_at: String,
    /// RFC 3339 (local offset); `0001-01-01T00:00:00Z` when unknown.
    pub updated_at: String,
}

fn key_response(state: &AppState, k: &keys::KeyRecord) -> KeyResponse {
    KeyResponse {
        id: k.id,
        key_value: state
            .cipher
            .decrypt(&k.key_value)
            .unwrap_or_else(|_| "failed-to-decrypt".into()),
        key_hash: k.key_hash.clone(),
        group_id: k.group_id,
        status: k.status.clone(),
        notes: k.notes.clone(),
        request_count: k.request_count,
        failure_count: k.failure_count,
        last_used_at: go_time_opt(k.last_used_at),
        created_at: go_time_or_zero(k.created_at),
        updated_at: go_time_or_zero(k.updated_at),
    }
}

fn status_filter(raw: Option<&str>, allow_all: bool) -> Result<Option<String>, ApiError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some("all") if allow_all => Ok(None),
        Some(s @ ("active" | "invalid")) => Ok(Some(s.to_owned())),
        Some(_) => Err(ApiError::i18n(
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
            "validation.invalid_status_filter",
        )),
    }
}

/// `GET /api/keys` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeyListQuery {
    #[param(required = true, value_type = i64, minimum = 1)]
    pub group_id: Option<String>,
    #[param(value_type = Option<i64>, minimum = 1)]
    pub page: Option<String>,
    /// 1–1000, 15 by default.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    pub page_size: Option<String>,
    #[param(value_type = Option<KeyStatus>)]
    pub status: Option<String>,
    /// An exact key (matched by its hash).
    pub key_value: Option<String>,
}

#[utoipa::path(get, path = "/api/keys", tag = "keys", operation_id = "listKeys",
    summary = "A page of a group's keys", params(KeyListQuery),
    responses((status = 200, body = Envelope<Paged<KeyResponse>>), (status = 404, body = ErrorResponse)))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<KeyListQuery>,
) -> ApiResult<Paged<KeyResponse>> {
    let group_id = group_id_from_query(q.group_id.as_deref())?;
    let key_hash = super::logs::bounded("key_value", q.key_value.as_deref(), svc::MAX_KEY_BYTES)?
        .map(|s| state.cipher.hash(&s));
    find_group(&state, group_id).await?;
    let status = status_filter(q.status.as_deref(), false)?;
    let page = Page::from_query(q.page.as_deref(), q.page_size.as_deref());
    let f = KeyFilter {
        group_id,
        status,
        key_hash,
    };
    let (rows, total) = keys::list(&state.db, &f, page.page_size, page.offset()).await?;
    let items = rows.iter().map(|k| key_response(&state, k)).collect();
    ok(page.wrap(items, total))
}

/// `GET /api/keys/export` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeyExportQuery {
    #[param(required = true, value_type = i64, minimum = 1)]
    pub group_id: Option<String>,
    /// `all` (default), `active` or `invalid`.
    pub status: Option<String>,
}

/// Streams a group's keys as text, one per line (downloads use the Authorization header).
#[utoipa::path(get, path = "/api/keys/export", tag = "keys", operation_id = "exportKeys",
    summary = "A group's keys as text, one per line", params(KeyExportQuery),
    responses((status = 200, description = "The keys", content_type = "text/plain", body = String),
        (status = 404, body = ErrorResponse)))]
pub async fn export(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<KeyExportQuery>,
) -> Result<Response, ApiError> {
    let group_id = group_id_from_query(q.group_id.as_deref())?;
    let status_raw = q
        .status
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("all")
        .to_owned();
    let status = status_filter(Some(&status_raw), true)?;
    let g = find_group(&state, group_id).await?;
    let stream = futures::stream::unfold(Some(0i64), move |after| {
        let state = state.clone();
        let status = status.clone();
        async move {
            let after = after?;
            match keys::page_after(&state.db, Some(group_id), status.as_deref(), after, 500).await {
                Ok(page) if page.is_empty() => None,
                Ok(page) => {
                    let next = page.last().map(|k| k.id);
                    let mut out = String::new();
                    for k in &page {
                        if let Ok(p) = state.cipher.decrypt(&k.key_value) {
                            out.push_str(&p);
                            out.push('\n');
                        }
                    }
                    Some((Ok::<_, std::io::Error>(bytes::Bytes::from(out)), next))
                }
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=keys-{}-{}.txt",
        g.name, status_raw
    )) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// Keys of a group, as text: one per line, or separated by commas or spaces.
#[derive(Debug, Deserialize, ToSchema)]
pub struct KeysTextRequest {
    #[schema(minimum = 1)]
    pub group_id: i64,
    pub keys_text: String,
}

/// A group, named by its id.
#[derive(Debug, Deserialize, ToSchema)]
pub struct GroupIdRequest {
    #[schema(minimum = 1)]
    pub group_id: i64,
}

fn positive_group_id(id: i64) -> Result<i64, ApiError> {
    if id > 0 {
        Ok(id)
    } else {
        Err(ApiError::invalid_json(
            "field 'group_id' must be a positive integer",
        ))
    }
}

fn parse_batch(text: &str, limit: Option<usize>) -> Result<Vec<String>, ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::i18n(
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
            "validation.keys_text_empty",
        ));
    }
    let keys = svc::parse_keys(text);
    if let Some(e) = svc::find_too_long(text, &keys) {
        return Err(ApiError::validation(e.to_string()));
    }
    if let Some(limit) = limit
        && keys.len() > limit
    {
        return Err(ApiError::validation(format!(
            "batch size exceeds the limit of {limit} keys, got {}",
            keys.len()
        )));
    }
    if keys.is_empty() {
        return Err(ApiError::validation(
            "no valid keys found in the input text",
        ));
    }
    Ok(keys)
}

#[utoipa::path(post, path = "/api/keys/add-multiple", tag = "keys", operation_id = "addKeys",
    summary = "Add up to 5000 keys at once", request_body = KeysTextRequest,
    responses((status = 200, body = Envelope<AddResult>), (status = 404, body = ErrorResponse)))]
pub async fn add_multiple(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<KeysTextRequest>,
) -> ApiResult<AddResult> {
    let group_id = positive_group_id(body.group_id)?;
    let g = find_group(&state, group_id).await?;
    if g.group_type == "aggregate" {
        return Err(ApiError::validation(
            "aggregate groups hold no keys of their own",
        ));
    }
    let keys = parse_batch(&body.keys_text, Some(svc::MAX_SYNC_KEYS))?;
    ok(svc::add(&state, group_id, &keys, |_| {}).await?)
}

/// Starts the import task; returns its initial status or 409 when another task runs.
pub fn start_import(
    state: &AppState,
    group_id: i64,
    group_name: String,
    keys: Vec<String>,
) -> Result<TaskStatus, ApiError> {
    let handle = state
        .tasks
        .try_start(KEY_IMPORT, &group_name, keys.len() as u64)
        .map_err(|_| ApiError::task_in_progress("a task is already running, please wait"))?;
    let initial = handle.snapshot();
    let state = state.clone();
    tokio::spawn(async move {
        let h = &handle;
        match svc::add(&state, group_id, &keys, |done| h.progress(done as u64)).await {
            Ok(r) => {
                handle.progress(keys.len() as u64);
                handle.finish(
                    json!({"added_count": r.added_count, "ignored_count": r.ignored_count}),
                );
            }
            Err(DbError::NotFound) => {
                handle.fail("the group was deleted during the import".into());
            }
            Err(e) => {
                tracing::error!(error = %e, "key import failed");
                handle.fail(e.to_string());
            }
        }
    });
    Ok(initial)
}

#[utoipa::path(post, path = "/api/keys/add-async", tag = "keys", operation_id = "importKeys",
    summary = "Import any number of keys in a task (JSON, or multipart with `group_id` and a .txt `file`)",
    request_body = KeysTextRequest,
    responses((status = 200, body = Envelope<TaskStatus>), (status = 404, body = ErrorResponse),
        (status = 409, body = ErrorResponse)))]
pub async fn add_async(State(state): State<AppState>, req: Request) -> ApiResult<TaskStatus> {
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let (group_id, text) = if is_multipart {
        let mut mp = Multipart::from_request(req, &state)
            .await
            .map_err(|e| ApiError::bad_request(format!("invalid multipart body: {e}")))?;
        let mut group_id: Option<String> = None;
        let mut file: Option<(String, Vec<u8>)> = None;
        while let Some(field) = mp.next_field().await.map_err(|_| {
            ApiError::i18n(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "validation.failed_to_read_file",
            )
        })? {
            match field.name() {
                Some("group_id") => group_id = Some(field.text().await.unwrap_or_default()),
                Some("file") => {
                    let name = field.file_name().unwrap_or_default().to_owned();
                    let data = field.bytes().await.map_err(|_| {
                        ApiError::i18n(
                            StatusCode::BAD_REQUEST,
                            "BAD_REQUEST",
                            "validation.failed_to_read_file",
                        )
                    })?;
                    file = Some((name, data.to_vec()));
                }
                _ => {}
            }
        }
        let raw = group_id.unwrap_or_default();
        if raw.trim().is_empty() {
            return Err(ApiError::i18n(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "validation.group_id_required",
            ));
        }
        let gid = raw
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|g| *g > 0)
            .ok_or_else(|| {
                ApiError::i18n(
                    StatusCode::BAD_REQUEST,
                    "BAD_REQUEST",
                    "validation.invalid_group_id_format",
                )
            })?;
        let Some((name, data)) = file else {
            return Err(ApiError::i18n(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "validation.file_required",
            ));
        };
        if !name.to_ascii_lowercase().ends_with(".txt") {
            return Err(ApiError::i18n(
                StatusCode::BAD_REQUEST,
                "VALIDATION_FAILED",
                "validation.only_txt_supported",
            ));
        }
        let text = String::from_utf8(data)
            .map_err(|_| ApiError::validation("the file is not UTF-8 text"))?;
        (gid, text)
    } else {
        let ApiJson(body) = ApiJson::<KeysTextRequest>::from_request(req, &state).await?;
        (positive_group_id(body.group_id)?, body.keys_text)
    };
    let g = find_group(&state, group_id).await?;
    if g.group_type == "aggregate" {
        return Err(ApiError::validation(
            "aggregate groups hold no keys of their own",
        ));
    }
    let keys = parse_batch(&text, None)?;
    ok(start_import(&state, group_id, g.name, keys)?)
}

#[utoipa::path(post, path = "/api/keys/delete-multiple", tag = "keys",
    operation_id = "deleteKeys", summary = "Delete up to 5000 keys at once",
    request_body = KeysTextRequest,
    responses((status = 200, body = Envelope<DeleteResult>), (status = 404, body = ErrorResponse)))]
pub async fn delete_multiple(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<KeysTextRequest>,
) -> ApiResult<DeleteResult> {
    let group_id = positive_group_id(body.group_id)?;
    find_group(&state, group_id).await?;
    let keys = parse_batch(&body.keys_text, Some(svc::MAX_SYNC_KEYS))?;
    ok(svc::delete(&state, group_id, &keys, |_| {}).await?)
}

#[utoipa::path(post, path = "/api/keys/delete-async", tag = "keys",
    operation_id = "deleteKeysTask", summary = "Delete any number of keys in a task",
    request_body = KeysTextRequest,
    responses((status = 200, body = Envelope<TaskStatus>), (status = 404, body = ErrorResponse),
        (status = 409, body = ErrorResponse)))]
pub async fn delete_async(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<KeysTextRequest>,
) -> ApiResult<TaskStatus> {
    let group_id = positive_group_id(body.group_id)?;
    let g = find_group(&state, group_id).await?;
    let keys = parse_batch(&body.keys_text, None)?;
    let handle = state
        .tasks
        .try_start(KEY_DELETE, &g.name, keys.len() as u64)
        .map_err(|_| ApiError::task_in_progress("a task is already running, please wait"))?;
    let initial = handle.snapshot();
    let st = state.clone();
    tokio::spawn(async move {
        let h = &handle;
        match svc::delete(&st, group_id, &keys, |done| h.progress(done as u64)).await {
            Ok(r) => {
                handle.progress(keys.len() as u64);
                handle.finish(
                    json!({"deleted_count": r.deleted_count, "ignored_count": r.ignored_count}),
                );
            }
            Err(e) => handle.fail(e.to_string()),
        }
    });
    ok(initial)
}

#[utoipa::path(post, path = "/api/keys/restore-multiple", tag = "keys",
    operation_id = "restoreKeys", summary = "Mark up to 5000 keys active again",
    request_body = KeysTextRequest,
    responses((status = 200, body = Envelope<RestoreResult>), (status = 404, body = ErrorResponse)))]
pub async fn restore_multiple(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<KeysTextRequest>,
) -> ApiResult<RestoreResult> {
    let group_id = positive_group_id(body.group_id)?;
    find_group(&state, group_id).await?;
    let keys = parse_batch(&body.keys_text, Some(svc::MAX_SYNC_KEYS))?;
    ok(svc::restore(&state, group_id, &keys).await?)
}

#[utoipa::path(post, path = "/api/keys/restore-all-invalid", tag = "keys",
    operation_id = "restoreAllInvalidKeys", summary = "Mark every invalid key of a group active",
    request_body = GroupIdRequest,
    responses((status = 200, body = MessageResponse), (status = 404, body = ErrorResponse)))]
pub async fn restore_all_invalid(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<GroupIdRequest>,
) -> ApiResult {
    let group_id = positive_group_id(body.group_id)?;
    find_group(&state, group_id).await?;
    let n = svc::restore_all_invalid(&state, group_id).await?;
    ok_msg(Msg::with(
        "success.keys_restored",
        &[("count", &n.to_string())],
    ))
}

#[utoipa::path(post, path = "/api/keys/clear-all-invalid", tag = "keys",
    operation_id = "clearInvalidKeys", summary = "Delete every invalid key of a group",
    request_body = GroupIdRequest,
    responses((status = 200, body = MessageResponse), (status = 404, body = ErrorResponse)))]
pub async fn clear_all_invalid(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<GroupIdRequest>,
) -> ApiResult {
    let group_id = positive_group_id(body.group_id)?;
    find_group(&state, group_id).await?;
    let n = svc::clear(&state, group_id, Some("invalid")).await?;
    ok_msg(Msg::with(
        "success.invalid_keys_cleared",
        &[("count", &n.to_string())],
    ))
}

#[utoipa::path(post, path = "/api/keys/clear-all", tag = "keys", operation_id = "clearAllKeys",
    summary = "Delete every key of a group", request_body = GroupIdRequest,
    responses((status = 200, body = MessageResponse), (status = 404, body = ErrorResponse)))]
pub async fn clear_all(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<GroupIdRequest>,
) -> ApiResult {
    let group_id = positive_group_id(body.group_id)?;
    find_group(&state, group_id).await?;
    let n = svc::clear(&state, group_id, None).await?;
    ok_msg(Msg::with(
        "success.all_keys_cleared",
        &[("count", &n.to_string())],
    ))
}

/// The serving runtime of group `id` (404 when the snapshot has none).
pub(super) fn group_runtime(
    state: &AppState,
    id: i64,
) -> Result<Arc<gpt_load_worker::state::GroupRuntime>, ApiError> {
    state
        .worker
        .runtime()
        .group_by_id(id)
        .cloned()
        .ok_or_else(|| {
            ApiError::i18n(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "validation.group_not_found",
            )
        })
}

/// Which keys of a group to validate.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ValidateGroupRequest {
    #[schema(minimum = 1)]
    pub group_id: i64,
    /// `active` or `invalid`; absent or empty: all keys.
    pub status: Option<String>,
}

#[utoipa::path(post, path = "/api/keys/validate-group", tag = "keys",
    operation_id = "validateGroupKeys", summary = "Validate a group's keys in a task",
    request_body = ValidateGroupRequest,
    responses((status = 200, body = Envelope<TaskStatus>), (status = 404, body = ErrorResponse),
        (status = 409, body = ErrorResponse)))]
pub async fn validate_group(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ValidateGroupRequest>,
) -> ApiResult<TaskStatus> {
    let group_id = positive_group_id(body.group_id)?;
    let status = match body.status.as_deref() {
        None | Some("") => None,
        Some(s @ ("active" | "invalid")) => Some(s.to_owned()),
        Some(_) => {
            return Err(ApiError::i18n(
                StatusCode::BAD_REQUEST,
                "VALIDATION_FAILED",
                "validation.invalid_status_value",
            ));
        }
    };
    let g = find_group(&state, group_id).await?;
    if g.group_type == "aggregate" {
        return Err(ApiError::validation(
            "aggregate groups hold no keys of their own",
        ));
    }
    let rt = group_runtime(&state, group_id)?;
    let (total, active, invalid) = keys::counts(&state.db, Some(group_id)).await?;
    let n = match status.as_deref() {
        Some("active") => active,
        Some(_) => invalid,
        None => total,
    };
    if n == 0 {
        return Err(ApiError::task_in_progress(format!(
            "no keys to validate in group {}",
            g.name
        )));
    }
    let handle = state
        .tasks
        .try_start(KEY_VALIDATION, &g.name, n as u64)
        .map_err(|_| ApiError::task_in_progress("a task is already running, please wait"))?;
    let initial = handle.snapshot();
    let st = state.clone();
    tokio::spawn(async move {
        let h = &handle;
        match validation::validate_group(&st, rt, status.as_deref(), |done| h.progress(done as u64))
            .await
        {
            Ok(s) => {
                handle.set_total(s.total_keys as u64);
                handle.progress(s.total_keys as u64);
                handle.finish(serde_json::to_value(s).unwrap_or(Value::Null));
            }
            Err(e) => handle.fail(e.to_string()),
        }
    });
    ok(initial)
}

/// The outcome of testing one key.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyTestResult {
    pub key_value: String,
    pub is_valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyTestResponse {
    pub results: Vec<KeyTestResult>,
    /// Milliseconds.
    pub total_duration: i64,
}

#[utoipa::path(post, path = "/api/keys/test-multiple", tag = "keys", operation_id = "testKeys",
    summary = "Validate up to 5000 of a group's keys now", request_body = KeysTextRequest,
    responses((status = 200, body = Envelope<KeyTestResponse>), (status = 404, body = ErrorResponse)))]
pub async fn test_multiple(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<KeysTextRequest>,
) -> ApiResult<KeyTestResponse> {
    let start = std::time::Instant::now();
    let group_id = positive_group_id(body.group_id)?;
    find_group(&state, group_id).await?;
    let rt = group_runtime(&state, group_id)?;
    let input = parse_batch(&body.keys_text, Some(svc::MAX_SYNC_KEYS))?;
    let hashes: Vec<String> = input.iter().map(|k| state.cipher.hash(k)).collect();
    let found = keys::find_by_hashes(&state.db, group_id, &hashes).await?;
    let by_hash: HashMap<String, (i64, bool)> = found
        .into_iter()
        .map(|(id, h, st)| (h, (id, st == "invalid")))
        .collect();
    let concurrency = rt.group.config.key_validation_concurrency.max(1);
    use futures::StreamExt;
    let jobs: Vec<(String, Option<(i64, bool)>)> = input
        .into_iter()
        .zip(hashes)
        .map(|(k, h)| (k, by_hash.get(&h).copied()))
        .collect();
    let results: Vec<KeyTestResult> = futures::stream::iter(jobs.into_iter().map(|(k, id)| {
        let state = state.clone();
        let rt = rt.clone();
        async move {
            let error = match id {
                None => Some("Key does not exist in this group or has been removed.".to_owned()),
                Some((id, invalid)) => validation::validate_and_apply(&state, &rt, id, &k, invalid)
                    .await
                    .err(),
            };
            KeyTestResult {
                key_value: k,
                is_valid: error.is_none(),
                error,
            }
        }
    }))
    .buffered(concurrency)
    .collect()
    .await;
    ok(KeyTestResponse {
        results,
        total_duration: start.elapsed().as_millis() as i64,
    })
}

/// A key's notes (at most 255 characters).
#[derive(Debug, Deserialize, ToSchema)]
pub struct NotesRequest {
    pub notes: Option<String>,
}

#[utoipa::path(put, path = "/api/keys/{id}/notes", tag = "keys", operation_id = "updateKeyNotes",
    summary = "Change a key's notes", params(("id" = i64, Path, minimum = 1, description = "Key id")),
    request_body = NotesRequest,
    responses((status = 200, body = MessageResponse), (status = 404, body = ErrorResponse)))]
pub async fn update_notes(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NotesRequest>,
) -> ApiResult {
    let id = id
        .parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(|| ApiError::bad_request("invalid key ID format"))?;
    let notes = body.notes.unwrap_or_default().trim().to_owned();
    if notes.chars().count() > 255 {
        return Err(ApiError::validation(
            "notes length must be <= 255 characters",
        ));
    }
    match keys::update_notes(&state.db, id, &notes).await {
        Err(DbError::NotFound) => return Err(ApiError::resource_not_found()),
        r => r?,
    }
    ok_msg(Msg::id("common.success"))
}
