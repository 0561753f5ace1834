//! GPT-Load's response envelope and error shape, localised once per answer by [`localise`], and
//! JSON extraction whose rejections use the same shape.

use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Local, SecondsFormat, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::db::DbError;
use crate::i18n::{self, Lang};
pub use crate::service::error::{Msg, ServiceError};

/// The request's language (GPT-Load: first `Accept-Language` tag, Chinese by default), for
/// handlers whose data itself is localised (setting names and descriptions).
#[derive(Debug, Clone, Copy)]
pub struct ReqLang(pub Lang);

impl ReqLang {
    fn of(headers: &axum::http::HeaderMap) -> Lang {
        let h = headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Lang::from_accept_language(h)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ReqLang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ReqLang(ReqLang::of(&parts.headers)))
    }
}

/// An API error: HTTP status, GPT-Load code string and a message, localised by [`localise`].
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: Msg,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: Msg::text(message),
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

    /// A catalog message.
    pub fn i18n(status: StatusCode, code: &'static str, id: &'static str) -> Self {
        Self {
            status,
            code,
            message: Msg::id(id),
        }
    }

    /// A catalog message with template values.
    pub fn i18n_vars(
        status: StatusCode,
        code: &'static str,
        id: &'static str,
        vars: &[(&'static str, &str)],
    ) -> Self {
        Self {
            status,
            code,
            message: Msg::with(id, vars),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let (status, code, message) = match e {
            ServiceError::Invalid(m) => (StatusCode::BAD_REQUEST, "VALIDATION_FAILED", m),
            ServiceError::BadRequest(m) => (StatusCode::BAD_REQUEST, "BAD_REQUEST", m),
            ServiceError::NotFound(m) => (StatusCode::NOT_FOUND, "NOT_FOUND", m),
            ServiceError::Busy(m) => (StatusCode::CONFLICT, "TASK_IN_PROGRESS", m),
            ServiceError::Duplicate => return ApiError::duplicate(),
            ServiceError::Database => return ApiError::database(),
            ServiceError::Internal => return ApiError::internal(),
        };
        Self {
            status,
            code,
            message,
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        ServiceError::from(e).into()
    }
}

/// An answer whose message still needs the request's language; [`localise`] writes its body.
#[derive(Debug, Clone)]
enum Pending {
    /// `{"code":0,"message":…}` plus `"data"` when there is some.
    Ok {
        message: Msg,
        data: Option<Box<RawValue>>,
    },
    /// `{"code":"<CODE>","message":…}`.
    Err { code: &'static str, message: Msg },
    /// The login answer, `{"success":…,"message":…}`.
    Login { success: bool, message: Msg },
}

fn pending(status: StatusCode, p: Pending) -> Response {
    let mut r = status.into_response();
    r.extensions_mut().insert(p);
    r
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        pending(
            self.status,
            Pending::Err {
                code: self.code,
                message: self.message,
            },
        )
    }
}

/// A success in GPT-Load's envelope: a message and, unless `T` is `()`, `data`.
#[derive(Debug)]
pub struct Reply<T> {
    message: Msg,
    data: Option<T>,
}

impl<T: Serialize> IntoResponse for Reply<T> {
    fn into_response(self) -> Response {
        let data = match self.data.as_ref().map(serde_json::value::to_raw_value) {
            None => None,
            Some(Ok(raw)) => Some(raw),
            Some(Err(e)) => {
                tracing::error!(error = %e, "an admin answer could not be serialised");
                return ApiError::internal().into_response();
            }
        };
        pending(
            StatusCode::OK,
            Pending::Ok {
                message: self.message,
                data,
            },
        )
    }
}

/// The login answer (`{success, message}`, not the envelope), with its status.
#[derive(Debug)]
pub struct LoginReply {
    pub status: StatusCode,
    pub success: bool,
    pub message: Msg,
}

impl IntoResponse for LoginReply {
    fn into_response(self) -> Response {
        pending(
            self.status,
            Pending::Login {
                success: self.success,
                message: self.message,
            },
        )
    }
}

pub type ApiResult<T = ()> = Result<Reply<T>, ApiError>;

/// `200 {"code":0,"message":<common.success>,"data":data}`.
pub fn ok<T: Serialize>(data: T) -> ApiResult<T> {
    Ok(Reply {
        message: Msg::id("common.success"),
        data: Some(data),
    })
}

/// `200 {"code":0,"message":message}` (no `data`).
pub fn ok_msg(message: Msg) -> ApiResult {
    Ok(Reply {
        message,
        data: None,
    })
}

/// A message in a language.
pub fn render(lang: Lang, m: &Msg) -> String {
    match m {
        Msg::Text(t) => t.clone(),
        Msg::Id(id, vars) if vars.is_empty() => i18n::t(lang, id),
        Msg::Id(id, vars) => {
            let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
            i18n::tf(lang, id, &vars)
        }
    }
}

#[derive(Serialize)]
struct OkBody<'a> {
    code: u8,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct ErrBody {
    code: &'static str,
    message: String,
}

#[derive(Serialize)]
struct LoginBody {
    success: bool,
    message: String,
}

/// Writes the bodies of the answers above in the request's language: the one place the admin
/// API localises a message.
pub async fn localise(req: Request, next: Next) -> Response {
    let lang = ReqLang::of(req.headers());
    let mut resp = next.run(req).await;
    let Some(p) = resp.extensions_mut().remove::<Pending>() else {
        return resp;
    };
    let body = match &p {
        Pending::Ok { message, data } => serde_json::to_vec(&OkBody {
            code: 0,
            message: render(lang, message),
            data: data.as_deref(),
        }),
        Pending::Err { code, message } => serde_json::to_vec(&ErrBody {
            code,
            message: render(lang, message),
        }),
        Pending::Login { success, message } => serde_json::to_vec(&LoginBody {
            success: *success,
            message: render(lang, message),
        }),
    };
    let Ok(body) = body else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let (mut parts, _) = resp.into_parts();
    parts.headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// The query string as GPT-Load (gin's `c.Query`) reads it: a repeated parameter counts with
/// its first value (axum's `Query` keeps the last, so `?groupId=x&groupId=1` was accepted where
/// GPT-Load refuses it); a query that cannot be decoded is a 400 in the envelope. `T` holds the
/// parameters as text (`Option<String>` fields): handlers parse them with GPT-Load's rules.
#[derive(Debug, Clone, Default)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(pairs) =
            axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
                .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
        let mut q = serde_json::Map::with_capacity(pairs.len());
        for (k, v) in pairs {
            q.entry(k).or_insert(serde_json::Value::String(v));
        }
        T::deserialize(serde_json::Value::Object(q))
            .map(ApiQuery)
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))
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
    pub fn wrap<T>(&self, items: Vec<T>, total: i64) -> Paged<T> {
        let total_pages = if total == 0 {
            0
        } else {
            (total + self.page_size - 1) / self.page_size
        };
        Paged {
            items,
            pagination: Pagination {
                page: self.page,
                page_size: self.page_size,
                total_items: total,
                total_pages,
            },
        }
    }
}

/// Where a page sits in the whole list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Pagination {
    pub page: i64,
    pub page_size: i64,
    pub total_items: i64,
    pub total_pages: i64,
}

/// A page of a list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub pagination: Pagination,
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

pub fn go_time_opt(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(go_time)
}

/// A time that Go writes as its zero time when unset.
pub fn go_time_or_zero(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "0001-01-01T00:00:00Z".to_owned(), go_time)
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
        let v = Page::from_query(Some("2"), Some("10")).wrap(Vec::<()>::new(), 21);
        assert_eq!(v.pagination.total_pages, 3);
        assert_eq!(
            Page::from_query(None, None)
                .wrap(Vec::<()>::new(), 0)
                .pagination
                .total_pages,
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
