//! GPT-Load's response envelope and error shape, the language of a request, and JSON extraction
//! whose rejections use the same shape.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Local, SecondsFormat, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::db::DbError;
use crate::i18n::{self, Lang};

/// The request's language (GPT-Load: first `Accept-Language` tag, Chinese by default).
#[derive(Debug, Clone, Copy)]
pub struct ReqLang(pub Lang);

impl<S: Send + Sync> FromRequestParts<S> for ReqLang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let h = parts
            .headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Ok(ReqLang(Lang::from_accept_language(h)))
    }
}

/// An API error: HTTP status, GPT-Load code string and a message safe to show.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "VALIDATION_FAILED", message)
    }

    pub fn invalid_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_JSON", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    pub fn resource_not_found() -> Self {
        Self::not_found("Resource not found")
    }

    pub fn duplicate() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "DUPLICATE_RESOURCE",
            "Resource already exists",
        )
    }

    pub fn task_in_progress(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "TASK_IN_PROGRESS", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "Authentication failed",
        )
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_SERVER_ERROR",
            "An unexpected error occurred",
        )
    }

    pub fn database() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "DATABASE_ERROR",
            "Database operation failed",
        )
    }

    /// A localised error.
    pub fn i18n(status: StatusCode, code: &'static str, lang: Lang, id: &str) -> Self {
        Self::new(status, code, i18n::t(lang, id))
    }

    /// A localised error with template variables.
    pub fn i18n_vars(
        status: StatusCode,
        code: &'static str,
        lang: Lang,
        id: &str,
        vars: &[(&str, &str)],
    ) -> Self {
        Self::new(status, code, i18n::tf(lang, id, vars))
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound => ApiError::resource_not_found(),
            DbError::Duplicate => ApiError::duplicate(),
            err @ (DbError::Other(_) | DbError::Sqlite(_)) => {
                // Logged once here; the client sees nothing internal.
                tracing::error!(error = %err, "database error");
                ApiError::database()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(serde_json::json!({"code": self.code, "message": self.message})),
        )
            .into_response()
    }
}

pub type ApiResult = Result<Response, ApiError>;

/// `200 {"code":0,"message":<common.success>,"data":data}`.
pub fn ok<T: Serialize>(lang: Lang, data: T) -> ApiResult {
    ok_msg_data(i18n::t(lang, "common.success"), data)
}

/// `200 {"code":0,"message":message,"data":data}`.
pub fn ok_msg_data<T: Serialize>(message: String, data: T) -> ApiResult {
    let data = serde_json::to_value(data).map_err(|_| ApiError::internal())?;
    Ok(
        axum::Json(serde_json::json!({"code": 0, "message": message, "data": data}))
            .into_response(),
    )
}

/// `200 {"code":0,"message":message}` (no `data`).
pub fn ok_msg(message: String) -> ApiResult {
    Ok(axum::Json(serde_json::json!({"code": 0, "message": message})).into_response())
}

/// The query string as GPT-Load (gin's `c.Query`) reads it: a repeated parameter counts with
/// its first value (axum's `Query<HashMap>` keeps the last, so `?groupId=x&groupId=1` was
/// accepted where GPT-Load refuses it); a query that cannot be decoded is a 400 in the envelope.
#[derive(Debug, Clone, Default)]
pub struct ApiQuery(pub std::collections::HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for ApiQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(pairs) =
            axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
                .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
        let mut q = std::collections::HashMap::with_capacity(pairs.len());
        for (k, v) in pairs {
            q.entry(k).or_insert(v);
        }
        Ok(ApiQuery(q))
    }
}

/// JSON body extraction whose failures answer 400 `INVALID_JSON` with the reason.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rej) => Err(json_rejection(rej)),
        }
    }
}

fn json_rejection(rej: JsonRejection) -> ApiError {
    match rej {
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::invalid_json("Expected a JSON body with Content-Type: application/json")
        }
        JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "REQUEST_TOO_LARGE",
                "Request body too large",
            )
        }
        JsonRejection::JsonSyntaxError(e) => ApiError::invalid_json(format!(
            "Invalid JSON: {}",
            e.body_text()
                .trim_start_matches("Failed to parse the request body as JSON: ")
        )),
        JsonRejection::JsonDataError(e) => ApiError::invalid_json(e.body_text().replace(
            "Failed to deserialize the JSON body into the target type: ",
            "",
        )),
        other => ApiError::invalid_json(other.body_text()),
    }
}

/// Pagination query (`page` default 1, `page_size` default 15, max 1000).
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub page: i64,
    pub page_size: i64,
}

impl Page {
    pub fn from_query(page: Option<&str>, page_size: Option<&str>) -> Self {
        let page = page
            .and_then(|p| p.parse::<i64>().ok())
            .filter(|p| *p >= 1)
            .unwrap_or(1);
        let page_size = page_size
            .and_then(|p| p.parse::<i64>().ok())
            .filter(|p| *p >= 1)
            .unwrap_or(15)
            .min(1000);
        Self { page, page_size }
    }

    pub fn offset(&self) -> i64 {
        (self.page - 1).saturating_mul(self.page_size)
    }

    /// `{items, pagination:{page, page_size, total_items, total_pages}}`.
    pub fn wrap(&self, items: Value, total: i64) -> Value {
        let total_pages = if total == 0 {
            0
        } else {
            (total + self.page_size - 1) / self.page_size
        };
        serde_json::json!({
            "items": items,
            "pagination": {"page": self.page, "page_size": self.page_size, "total_items": total, "total_pages": total_pages}
        })
    }
}

/// A time as Go's `encoding/json` writes it: RFC 3339 in local time, fraction trimmed.
pub fn go_time(t: DateTime<Utc>) -> String {
    let local = t.with_timezone(&Local);
    let s = local.to_rfc3339_opts(SecondsFormat::Nanos, true);
    // Trim trailing zeros of the fraction (Go's RFC3339Nano).
    if let Some(dot) = s.find('.') {
        let end = s[dot..]
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .map_or(s.len(), |i| dot + i);
        let frac = s[dot + 1..end].trim_end_matches('0');
        let mut out = s[..dot].to_owned();
        if !frac.is_empty() {
            out.push('.');
            out.push_str(frac);
        }
        out.push_str(&s[end..]);
        return out;
    }
    s
}

pub fn go_time_opt(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| Value::String(go_time(t)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn pagination_defaults_and_clamps() {
        let p = Page::from_query(None, None);
        assert_eq!((p.page, p.page_size), (1, 15));
        let p = Page::from_query(Some("0"), Some("5000"));
        assert_eq!((p.page, p.page_size), (1, 1000));
        let p = Page::from_query(Some("x"), Some("-3"));
        assert_eq!((p.page, p.page_size), (1, 15));
        let v = Page::from_query(Some("2"), Some("10")).wrap(serde_json::json!([]), 21);
        assert_eq!(v["pagination"]["total_pages"], 3);
        assert_eq!(
            Page::from_query(None, None).wrap(serde_json::json!([]), 0)["pagination"]["total_pages"],
            0
        );
    }

    #[test]
    fn go_times_trim_fractions() {
        let t = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap()
            + chrono::Duration::milliseconds(120);
        let s = go_time(t);
        assert!(s.contains(":05.12"), "{s}");
        assert!(!s.contains(".120"), "{s}");
        let whole = go_time(Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap());
        assert!(!whole.contains('.'), "{whole}");
    }
}
