//! `/api/keys…`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::response::{
    ApiError, ApiJson, ApiQuery, ApiResult, Page, ReqLang, go_time, go_time_opt, ok, ok_msg,
};
use crate::db::DbError;
use crate::db::repo::groups::{self, GroupRecord};
use crate::db::repo::keys::{self, KeyFilter};
use crate::i18n::{self, Lang};
use crate::service::keys as svc;
use crate::service::tasks::{KEY_DELETE, KEY_IMPORT, KEY_VALIDATION};
use crate::service::validation;
use crate::state::AppState;

type Q = ApiQuery;

fn group_id_from_query(lang: Lang, q: &HashMap<String, String>) -> Result<i64, ApiError> {
    let raw = q.get("group_id").map(|s| s.trim()).unwrap_or("");
    if raw.is_empty() {
        return Err(ApiError::i18n(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            lang,
            "validation.group_id_required",
        ));
    }
    raw.parse::<i64>().ok().filter(|g| *g > 0).ok_or_else(|| {
        ApiError::i18n(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            lang,
            "validation.invalid_group_id_format",
        )
    })
}

async fn find_group(state: &AppState, id: i64) -> Result<GroupRecord, ApiError> {
    Ok(groups::get(&state.db, id).await?)
}

fn key_json(state: &AppState, k: &keys::KeyRecord) -> Value {
    let plain = state
        .cipher
        .decrypt(&k.key_value)
        .unwrap_or_else(|_| "failed-to-decrypt".into());
    json!({
        "id": k.id,
        "key_value": plain,
        "key_hash": k.key_hash,
        "group_id": k.group_id,
        "status": k.status,
        "notes": k.notes,
        "request_count": k.request_count,
        "failure_count": k.failure_count,
        "last_used_at": go_time_opt(k.last_used_at),
        "created_at": k.created_at.map(go_time).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
        "updated_at": k.updated_at.map(go_time).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
    })
}

fn status_filter(
    lang: Lang,
    raw: Option<&String>,
    allow_all: bool,
) -> Result<Option<String>, ApiError> {
    match raw.map(|s| s.trim()) {
        None | Some("") => Ok(None),
        Some("all") if allow_all => Ok(None),
        Some(s @ ("active" | "invalid")) => Ok(Some(s.to_owned())),
        Some(_) => Err(ApiError::i18n(
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
            lang,
            "validation.invalid_status_filter",
        )),
    }
}

pub async fn list(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
    ApiQuery(q): Q,
) -> ApiResult {
    let group_id = group_id_from_query(lang, &q)?;
    let key_hash = super::logs::bounded_param(&q, "key_value", svc::MAX_KEY_BYTES)?
        .map(|s| state.cipher.hash(&s));
    find_group(&state, group_id).await?;
    let status = status_filter(lang, q.get("status"), false)?;
    let page = Page::from_query(
        q.get("page").map(String::as_str),
        q.get("page_size").map(String::as_str),
    );
    let f = KeyFilter {
        group_id,
        status,
        key_hash,
    };
    let (rows, total) = keys::list(&state.db, &f, page.page_size, page.offset()).await?;
    let items: Vec<Value> = rows.iter().map(|k| key_json(&state, k)).collect();
    ok(lang, page.wrap(Value::Array(items), total))
}

/// Streams a group's keys as text, one per line (downloads use the Authorization header).
pub async fn export(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
    ApiQuery(q): Q,
) -> Result<Response, ApiError> {
    let group_id = group_id_from_query(lang, &q)?;
    let status_raw = q
        .get("status")
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "all".into());
    let status = status_filter(lang, Some(&status_raw), true)?;
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

/// `{group_id, keys_text}` with clear errors for missing or mistyped fields.
/// Takes the body by value: the text is moved out, not copied (it may be 64 MiB).
fn key_text_request(body: Value) -> Result<(i64, String), ApiError> {
    let Value::Object(mut o) = body else {
        return Err(ApiError::invalid_json("request body must be a JSON object"));
    };
    let group_id = required_group_id(&o)?;
    let text = match o.remove("keys_text") {
        Some(Value::String(s)) => s,
        None | Some(Value::Null) => {
            return Err(ApiError::invalid_json("field 'keys_text' is required"));
        }
        Some(_) => return Err(ApiError::invalid_json("field 'keys_text' must be a string")),
    };
    Ok((group_id, text))
}

fn required_group_id(o: &Map<String, Value>) -> Result<i64, ApiError> {
    match o.get("group_id") {
        Some(Value::Number(n)) => n
            .as_i64()
            .filter(|g| *g > 0)
            .ok_or_else(|| ApiError::invalid_json("field 'group_id' must be a positive integer")),
        None | Some(Value::Null) => Err(ApiError::invalid_json("field 'group_id' is required")),
        Some(_) => Err(ApiError::invalid_json(
            "field 'group_id' must be a positive integer",
        )),
    }
}

fn parse_batch(lang: Lang, text: &str, limit: Option<usize>) -> Result<Vec<String>, ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::i18n(
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
            lang,
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

pub async fn add_multiple(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult {
    let (group_id, text) = key_text_request(body)?;
    let g = find_group(&state, group_id).await?;
    if g.group_type == "aggregate" {
        return Err(ApiError::validation(
            "aggregate groups hold no keys of their own",
        ));
    }
    let keys = parse_batch(lang, &text, Some(svc::MAX_SYNC_KEYS))?;
    let r = svc::add(&state, group_id, &keys, |_| {}).await?;
    ok(lang, r)
}

/// Starts the import task; returns its initial status or 409 when another task runs.
pub fn start_import(
    state: &AppState,
    group_id: i64,
    group_name: String,
    keys: Vec<String>,
) -> Result<Value, ApiError> {
    let handle = state
        .tasks
        .try_start(KEY_IMPORT, &group_name, keys.len() as u64)
        .map_err(|_| ApiError::task_in_progress("a task is already running, please wait"))?;
    let initial = serde_json::to_value(handle.snapshot()).map_err(|_| ApiError::internal())?;
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

pub async fn add_async(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
    req: Request,
) -> ApiResult {
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
                lang,
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
                            lang,
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
                lang,
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
                    lang,
                    "validation.invalid_group_id_format",
                )
            })?;
        let Some((name, data)) = file else {
            return Err(ApiError::i18n(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                lang,
                "validation.file_required",
            ));
        };
        if !name.to_ascii_lowercase().ends_with(".txt") {
            return Err(ApiError::i18n(
                StatusCode::BAD_REQUEST,
                "VALIDATION_FAILED",
                lang,
                "validation.only_txt_supported",
            ));
        }
        let text = String::from_utf8(data)
            .map_err(|_| ApiError::validation("the file is not UTF-8 text"))?;
        (gid, text)
    } else {
        let ApiJson(body) = ApiJson::<Value>::from_request(req, &state).await?;
        key_text_request(body)?
    };
    let g = find_group(&state, group_id).await?;
    if g.group_type == "aggregate" {
        return Err(ApiError::validation(
            "aggregate groups hold no keys of their own",
        ));
    }
    let keys = parse_batch(lang, &text, None)?;
    let initial = start_import(&state, group_id, g.name, keys)?;
    ok(lang, initial)
}

pub async fn delete_multiple(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult {
    let (group_id, text) = key_text_request(body)?;
    find_group(&state, group_id).await?;
    let keys = parse_batch(lang, &text, Some(svc::MAX_SYNC_KEYS))?;
    ok(lang, svc::delete(&state, group_id, &keys, |_| {}).await?)
}

pub async fn delete_async(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult {
    let (group_id, text) = key_text_request(body)?;
    let g = find_group(&state, group_id).await?;
    let keys = parse_batch(lang, &text, None)?;
    let handle = state
        .tasks
        .try_start(KEY_DELETE, &g.name, keys.len() as u64)
        .map_err(|_| ApiError::task_in_progress("a task is already running, please wait"))?;
    let initial = serde_json::to_value(handle.snapshot()).map_err(|_| ApiError::internal())?;
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
    ok(lang, initial)
}

pub async fn restore_multiple(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult {
    let (group_id, text) = key_text_request(body)?;
    find_group(&state, group_id).await?;
    let keys = parse_batch(lang, &text, Some(svc::MAX_SYNC_KEYS))?;
    ok(lang, svc::restore(&state, group_id, &keys).await?)
}

fn group_id_request(body: &Value) -> Result<i64, ApiError> {
    match body {
        Value::Object(o) => required_group_id(o),
        _ => Err(ApiError::invalid_json("request body must be a JSON object")),
    }
}

pub async fn restore_all_invalid(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult {
    let group_id = group_id_request(&body)?;
    find_group(&state, group_id).await?;
    let n = svc::restore_all_invalid(&state, group_id).await?;
    ok_msg(i18n::tf(
        lang,
        "success.keys_restored",
        &[("count", &n.to_string())],
    ))
}

pub async fn clear_all_invalid(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult {
    let group_id = group_id_request(&body)?;
    find_group(&state, group_id).await?;
    let n = svc::clear(&state, group_id, Some("invalid")).await?;
    ok_msg(i18n::tf(
        lang,
        "success.invalid_keys_cleared",
        &[("count", &n.to_string())],
    ))
}

pub async fn clear_all(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult {
    let group_id = group_id_request(&body)?;
    find_group(&state, group_id).await?;
    let n = svc::clear(&state, group_id, None).await?;
    ok_msg(i18n::tf(
        lang,
        "success.all_keys_cleared",
        &[("count", &n.to_string())],
    ))
}

fn group_runtime(
    state: &AppState,
    lang: Lang,
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
                lang,
                "validation.group_not_found",
            )
        })
}

pub async fn validate_group(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult {
    let Value::Object(o) = &body else {
        return Err(ApiError::invalid_json("request body must be a JSON object"));
    };
    let group_id = required_group_id(o)?;
    let status = match o.get("status") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) if s == "active" || s == "invalid" => Some(s.clone()),
        Some(_) => {
            return Err(ApiError::i18n(
                StatusCode::BAD_REQUEST,
                "VALIDATION_FAILED",
                lang,
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
    let rt = group_runtime(&state, lang, group_id)?;
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
    let initial = serde_json::to_value(handle.snapshot()).map_err(|_| ApiError::internal())?;
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
    ok(lang, initial)
}

pub async fn test_multiple(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult {
    let start = std::time::Instant::now();
    let (group_id, text) = key_text_request(body)?;
    find_group(&state, group_id).await?;
    let rt = group_runtime(&state, lang, group_id)?;
    let input = parse_batch(lang, &text, Some(svc::MAX_SYNC_KEYS))?;
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
    let results: Vec<Value> = futures::stream::iter(jobs.into_iter().map(|(k, id)| {
        let state = state.clone();
        let rt = rt.clone();
        async move {
            match id {
                None => json!({"key_value": k, "is_valid": false, "error": "Key does not exist in this group or has been removed."}),
                Some((id, invalid)) => match validation::validate_and_apply(&state, &rt, id, &k, invalid).await {
                    Ok(()) => json!({"key_value": k, "is_valid": true}),
                    Err(e) => json!({"key_value": k, "is_valid": false, "error": e}),
                },
            }
        }
    }))
    .buffered(concurrency)
    .collect()
    .await;
    ok(
        lang,
        json!({"results": results, "total_duration": start.elapsed().as_millis() as i64}),
    )
}

pub async fn update_notes(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult {
    let id = id
        .parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(|| ApiError::bad_request("invalid key ID format"))?;
    let notes = match &body {
        Value::Object(o) => match o.get("notes") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.trim().to_owned(),
            Some(_) => return Err(ApiError::invalid_json("field 'notes' must be a string")),
        },
        _ => return Err(ApiError::invalid_json("request body must be a JSON object")),
    };
    if notes.chars().count() > 255 {
        return Err(ApiError::validation(
            "notes length must be <= 255 characters",
        ));
    }
    match keys::update_notes(&state.db, id, &notes).await {
        Err(DbError::NotFound) => return Err(ApiError::resource_not_found()),
        r => r?,
    }
    ok_msg(i18n::t(lang, "common.success"))
}
