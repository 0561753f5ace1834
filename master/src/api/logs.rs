//! `/api/logs` and its CSV export.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use chrono::{DateTime, Utc};
use gpt_load_common::log_record::RequestLogRecord;
use serde_json::{Value, json};

use super::response::{ApiError, ApiQuery, ApiResult, Page, ReqLang, go_time, ok};
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
pub fn bounded_param(
    q: &HashMap<String, String>,
    field: &str,
    max: usize,
) -> Result<Option<String>, ApiError> {
    let Some(v) = q.get(field).map(|v| v.trim()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.chars().count() > max {
        return Err(ApiError::validation(format!(
            "{field} must be at most {max} characters"
        )));
    }
    Ok(Some(v.to_owned()))
}

/// The filters of spec §9.3 from the query string; a malformed or overlong value is a 400.
pub fn filter(state: &AppState, q: &HashMap<String, String>) -> Result<LogFilter, ApiError> {
    let s = |k: &str| bounded_param(q, k, MAX_FILTER_CHARS);
    let mut f = LogFilter {
        parent_group_name: s("parent_group_name")?,
        group_name: s("group_name")?,
        // A key is matched by its hash, so it may be as long as a key may be.
        key_hash: bounded_param(q, "key_value", crate::service::keys::MAX_KEY_BYTES)?
            .map(|k| state.cipher.hash(&k)),
        model: s("model")?,
        request_type: match s("request_type")? {
            // The only two types there are (GPT-Load 1.x matched any value, so a typo showed
            // no logs instead of saying so).
            Some(t) if t == "retry" || t == "final" => Some(t),
            Some(_) => {
                return Err(ApiError::validation("request_type must be retry or final"));
            }
            None => None,
        },
        source_ip: s("source_ip")?,
        error_contains: s("error_contains")?,
        ..Default::default()
    };
    if let Some(v) = s("is_success")? {
        f.is_success = Some(
            parse_go_bool(&v)
                .ok_or_else(|| ApiError::validation("is_success must be true or false"))?,
        );
    }
    if let Some(v) = s("status_code")? {
        f.status_code = Some(
            v.parse()
                .map_err(|_| ApiError::validation("status_code must be an integer"))?,
        );
    }
    if let Some(v) = s("start_time")? {
        f.start_time = Some(parse_time("start_time", &v)?);
    }
    if let Some(v) = s("end_time")? {
        f.end_time = Some(parse_time("end_time", &v)?);
    }
    Ok(f)
}

fn log_json(state: &AppState, l: &RequestLogRecord) -> Value {
    let key = if l.key_value.is_empty() {
        String::new()
    } else {
        state
            .cipher
            .decrypt(&l.key_value)
            .unwrap_or_else(|_| "failed-to-decrypt".into())
    };
    json!({
        "id": l.id,
        "timestamp": go_time(l.timestamp),
        "group_id": l.group_id,
        "group_name": l.group_name,
        "parent_group_id": l.parent_group_id.unwrap_or(0),
        "parent_group_name": l.parent_group_name,
        "key_value": key,
        "key_hash": l.key_hash,
        "model": l.model,
        "is_success": l.is_success,
        "source_ip": l.source_ip,
        "status_code": l.status_code,
        "request_path": l.request_path,
        "duration_ms": l.duration_ms,
        "error_message": l.error_message,
        "user_agent": l.user_agent,
        "request_type": l.request_type.as_str(),
        "upstream_addr": l.upstream_addr,
        "is_stream": l.is_stream,
        "request_body": l.request_body,
    })
}

pub async fn list(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
    ApiQuery(q): ApiQuery,
) -> ApiResult {
    let f = filter(&state, &q)?;
    let page = Page::from_query(
        q.get("page").map(String::as_str),
        q.get("page_size").map(String::as_str),
    );
    let (rows, total) = logs::list(&state.db, &f, page.page_size, page.offset()).await?;
    let items: Vec<Value> = rows.iter().map(|l| log_json(&state, l)).collect();
    ok(lang, page.wrap(Value::Array(items), total))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// One row per distinct key (the latest use), `key_value,group_name,status_code`.
pub async fn export(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery,
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
