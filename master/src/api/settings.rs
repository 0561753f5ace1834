//! `/api/settings`.

use axum::extract::State;
use serde_json::{Map, Value};

use super::response::{ApiJson, ApiResult, Msg, ReqLang, ok, ok_msg};
use super::schema::{Envelope, MessageResponse};
use crate::db::repo::settings as repo;
use crate::i18n;
use crate::service::settings::{self as svc, SettingsCategory};
use crate::state::AppState;

#[utoipa::path(get, path = "/api/settings", tag = "settings", operation_id = "getSettings",
    summary = "All system settings by category, names and descriptions localised",
    responses((status = 200, body = Envelope<Vec<SettingsCategory>>)))]
pub async fn get(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
) -> ApiResult<Vec<SettingsCategory>> {
    ok(svc::categorized(lang, &state.worker.snapshot().settings))
}

/// Setting key → new value (an integer, a boolean or a string, by the setting's type).
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "read only by the OpenAPI derive")]
pub struct SettingsUpdate(std::collections::HashMap<String, super::schema::SettingValue>);

/// Validates every value (400 naming the key on any bad one), stores them and publishes at once.
#[utoipa::path(put, path = "/api/settings", tag = "settings", operation_id = "updateSettings",
    summary = "Change settings (all or nothing)", request_body = SettingsUpdate,
    responses((status = 200, body = MessageResponse)))]
pub async fn update(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult {
    if body.is_empty() {
        return ok_msg(Msg::id("common.success"));
    }
    let rows = svc::validate_update(&body)?;
    let rows: Vec<(String, String, String)> = rows
        .into_iter()
        .map(|(k, v)| {
            (
                k.to_owned(),
                v,
                i18n::t(i18n::Lang::EnUs, &format!("{}_desc", svc::name_id(k))),
            )
        })
        .collect();
    repo::upsert(&state.db, &rows).await?;
    state.publish().await?;
    ok_msg(Msg::id("settings.update_success"))
}
