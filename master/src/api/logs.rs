//! `/api/logs` and its CSV export.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use chrono::{DateTime, Utc};
use gpt_load_common::log_record::RequestLogRecord;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::response::{ApiError, ApiQuery, ApiResult, Page, Paged, go_time, ok};
use super::schema::{Envelope, RequestType};
use crate::db::repo::logs::{self, LogFilter};
use crate::state::AppState;

fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn parse_time(name: &str, s: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::validation(format!(
                "{name} must be an RFC 3339 time, e.g. 2025-01-02T15:04:05Z"
            ))
        })
}

/// Longest text filter, in characters. Far above any group name, model, address or error
/// fragment anyone searches for, and far below SQLite's LIKE pattern limit (50 000 bytes, which
/// answered 500 before): the substring filters are `LIKE` patterns, escaped, so up to twice as
/// long and four bytes a character.
pub const MAX_FILTER_CHARS: usize = 1024;

/// A query value, trimmed, `None` when empty; a 400 naming the field when longer than `max`
/// characters.
pub fn bounded(field: &str, v: Option<&str>, max: usize) -> Result<Option<String>, ApiError> {
    let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.chars().count() > max {
        return Err(ApiError::validation(format!(
            "{field} must be at most {max} characters"
        )));
    }
    Ok(Some(v.to_owned()))
}

/// The log filters (spec §9.3), as text; every one optional.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    #[param(value_type = Option<i64>, minimum = 1)]
    pub page: Option<String>,
    /// 1–1000, 15 by default.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    pub page_size: Option<String>,
    /// Substring.
    pub parent_group_name: Option<String>,
    /// Substring.
    pub group_name: Option<String>,
    /// An exact key (matched by its hash).
    pub key_value: Option<String>,
    /// Substring.
    pub model: Option<String>,
    #[param(value_type = Option<RequestType>)]
    pub request_type: Option<String>,
    /// Substring.
    pub source_ip: Option<String>,
    /// Substring of the error message.
    pub error_contains: Option<String>,
    #[param(value_type = Option<bool>)]
    pub is_success: Option<String>,
    #[param(value_type = Option<i64>)]
    pub status_code: Option<String>,
    /// The id of the access key the requests were made with.
    #[param(value_type = Option<i64>)]
    pub access_key_id: Option<String>,
    /// Substring of the access key's name (as it was when the request was logged).
    pub access_key_name: Option<String>,
    /// RFC 3339.
    pub start_time: Option<String>,
    /// RFC 3339.
    pub end_time: Option<String>,
}

/// The filters from the query string; a malformed or overlong value is a 400.
pub fn filter(state: &AppState, q: &LogQuery) -> Result<LogFilter, ApiError> {
    let s = |k: &str, v: &Option<String>| bounded(k, v.as_deref(), MAX_FILTER_CHARS);
    let mut f = LogFilter {
        parent_group_name: s("parent_group_name", &q.parent_group_name)?,
        group_name: s("group_name", &q.group_name)?,
        // A key is matched by its hash, so it may be as long as a key may be.
        key_hash: bounded(
            "key_value",
            q.key_value.as_deref(),
            crate::service::keys::MAX_KEY_BYTES,
        )?
        .map(|k| state.cipher.hash(&k)),
        model: s("model", &q.model)?,
        request_type: match s("request_type", &q.request_type)? {
            // The only two types there are (GPT-Load 1.x matched any value, so a typo showed
            // no logs instead of saying so).
            Some(t) if t == "retry" || t == "final" => Some(t),
            Some(_) => {
                return Err(ApiError::validation("request_type must be retry or final"));
            }
            None => None,
        },
        source_ip: s("source_ip", &q.source_ip)?,
        error_contains: s("error_contains", &q.error_contains)?,
        access_key_name: s("access_key_name", &q.access_key_name)?,
        ..Default::default()
    };
    if let Some(v) = s("is_success", &q.is_success)? {
        f.is_success = Some(
            parse_go_bool(&v)
                .ok_or_else(|| ApiError::validation("is_success must be true or false"))?,
        );
    }
    if let Some(v) = s("status_code", &q.status_code)? {
        f.status_code = Some(
            v.parse()
                .map_err(|_| ApiError::validation("status_code must be an integer"))?,
        );
    }
    if let Some(v) = s("access_key_id", &q.access_key_id)? {
        f.access_key_id = Some(
            v.parse()
                .map_err(|_| ApiError::validation("access_key_id must be an integer"))?,
        );
    }
    if let Some(v) = s("start_time", &q.start_time)? {
        f.start_time = Some(parse_time("start_time", &v)?);
    }
    if let Some(v) = s("end_time", &q.end_time)? {
        f.end_time = Some(parse_time("end_time", &v)?);
    }
    Ok(f)
}

/// A request log row.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RequestLog)]
pub struct LogResponse {
    /// A UUID.
    pub id: String,
    /// RFC 3339 (local offset).
    pub timestamp: String,
    pub group_id: i64,
    pub group_name: String,
    /// 0 when none.
    pub parent_group_id: i64,
    pub parent_group_name: String,
    /// The decrypted upstream key; empty when none was used.
    pub key_value: String,
    pub key_hash: String,
    pub model: String,
    pub is_success: bool,
    pub source_ip: String,
    pub status_code: i64,
    pub request_path: String,
    pub duration_ms: i64,
    pub error_message: String,
    pub user_agent: String,
    #[schema(value_type = RequestType)]
    pub request_type: &'static str,
    pub upstream_addr: String,
    pub is_stream: bool,
    pub request_body: String,
    /// The access key the request was made with; `null` for a proxy key (and in logs written
    /// before access keys were logged).
    pub access_key_id: Option<i64>,
    /// The access key's name when the request was logged; empty without one.
    pub access_key_name: String,
}

fn log_response(state: &AppState, l: &RequestLogRecord) -> LogResponse {
    let key = if l.key_value.is_empty() {
        String::new()
    } else {
        state
            .cipher
            .decrypt(&l.key_value)
            .unwrap_or_else(|_| "failed-to-decrypt".into())
    };
    LogResponse {
        id: l.id.clone(),
        timestamp: go_time(l.timestamp),
        group_id: l.group_id,
        group_name: l.group_name.clone(),
        parent_group_id: l.parent_group_id.unwrap_or(0),
        parent_group_name: l.parent_group_name.clone(),
        key_value: key,
        key_hash: l.key_hash.clone(),
        model: l.model.clone(),
        is_success: l.is_success,
        source_ip: l.source_ip.clone(),
        status_code: l.status_code,
        request_path: l.request_path.clone(),
        duration_ms: l.duration_ms,
        error_message: l.error_message.clone(),
        user_agent: l.user_agent.clone(),
        request_type: l.request_type.as_str(),
        upstream_addr: l.upstream_addr.clone(),
        is_stream: l.is_stream,
        request_body: l.request_body.clone(),
        access_key_id: l.access_key_id,
        access_key_name: l.access_key_name.clone(),
    }
}

#[utoipa::path(get, path = "/api/logs", tag = "logs", operation_id = "listLogs",
    summary = "A page of request logs, newest first", params(LogQuery),
    responses((status = 200, body = Envelope<Paged<LogResponse>>)))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> ApiResult<Paged<LogResponse>> {
    let f = filter(&state, &q)?;
    let page = Page::from_query(q.page.as_deref(), q.page_size.as_deref());
    let (rows, total) = logs::list(&state.db, &f, page.page_size, page.offset()).await?;
    ok(page.wrap(
        rows.iter().map(|l| log_response(&state, l)).collect(),
        total,
    ))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// One row per distinct key (the latest use), `key_value,group_name,status_code`.
#[utoipa::path(get, path = "/api/logs/export", tag = "logs", operation_id = "exportLogKeys",
    summary = "The keys of the matching logs as CSV (the latest use of each)", params(LogQuery),
    responses((status = 200, description = "`key_value,group_name,status_code` rows",
        content_type = "text/csv", body = String)))]
pub async fn export(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> Result<Response, ApiError> {
    let f = filter(&state, &q)?;
    let rows = logs::export_keys(&state.db, &f).await?;
    let mut out = String::from("key_value,group_name,status_code\n");
    for (k, g, s) in rows {
        let key = state
            .cipher
            .decrypt(&k)
            .unwrap_or_else(|_| "failed-to-decrypt".into());
        out.push_str(&format!("{},{},{}\n", csv_field(&key), csv_field(&g), s));
    }
    let mut resp = Response::new(axum::body::Body::from(out));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    let name = format!(
        "attachment; filename=log_keys_export_{}.csv",
        chrono::Local::now().format("%Y%m%d%H%M%S")
    );
    if let Ok(v) = HeaderValue::from_str(&name) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}
