//! `/api/access-keys…`: the keys clients use on the native routes (issue 19). Each change is
//! published in a new snapshot before the answer, so it is live at once.

use axum::extract::{Path, State};

use super::response::{ApiError, ApiJson, ApiResult, Msg, ok, ok_msg};
use super::schema::{Envelope, ErrorResponse, MessageResponse};
use crate::service::access_keys::{
    self as svc, AccessKeyCreate, AccessKeyResponse, AccessKeyUpdate,
};
use crate::state::AppState;

fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad_request("invalid access key ID format"))
}

#[utoipa::path(get, path = "/api/access-keys", tag = "access-keys",
    operation_id = "listAccessKeys", summary = "All access keys, oldest first (keys masked)",
    responses((status = 200, body = Envelope<Vec<AccessKeyResponse>>)))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Vec<AccessKeyResponse>> {
    ok(svc::list(&state.db, &state.cipher).await?)
}

#[utoipa::path(post, path = "/api/access-keys", tag = "access-keys",
    operation_id = "createAccessKey",
    summary = "Create an access key (the answer is the only one that shows the whole key)",
    request_body = AccessKeyCreate,
    responses((status = 200, body = Envelope<AccessKeyResponse>),
        (status = 409, description = "The key exists already (`DUPLICATE_RESOURCE`)",
            body = ErrorResponse)))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<AccessKeyCreate>,
) -> ApiResult<AccessKeyResponse> {
    let created = svc::create(&state.db, &state.cipher, &body).await?;
    state.publish().await?;
    ok(created)
}

#[utoipa::path(put, path = "/api/access-keys/{id}", tag = "access-keys",
    operation_id = "updateAccessKey",
    summary = "Update an access key (absent fields keep their value)",
    params(("id" = i64, Path, minimum = 1, description = "Access key id")),
    request_body = AccessKeyUpdate,
    responses((status = 200, body = Envelope<AccessKeyResponse>),
        (status = 404, body = ErrorResponse)))]
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AccessKeyUpdate>,
) -> ApiResult<AccessKeyResponse> {
    let id = parse_id(&id)?;
    let updated = svc::update(&state.db, &state.cipher, id, &body).await?;
    state.publish().await?;
    ok(updated)
}

#[utoipa::path(delete, path = "/api/access-keys/{id}", tag = "access-keys",
    operation_id = "deleteAccessKey", summary = "Delete an access key",
    params(("id" = i64, Path, minimum = 1, description = "Access key id")),
    responses((status = 200, body = MessageResponse), (status = 404, body = ErrorResponse)))]
pub async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    svc::delete(&state.db, id).await?;
    state.publish().await?;
    ok_msg(Msg::id("success.access_key_deleted"))
}
