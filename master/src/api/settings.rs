//! `/api/settings`.

use axum::extract::State;
use serde_json::Value;

use super::response::{ApiError, ApiJson, ApiResult, ReqLang, ok, ok_msg};
use crate::db::repo::settings as repo;
use crate::i18n;
use crate::service::settings as svc;
use crate::state::AppState;

pub async fn get(State(state): State<AppState>, ReqLang(lang): ReqLang) -> ApiResult {
    ok(
        lang,
        svc::categorized(lang, &state.worker.snapshot().settings),
    )
}

/// Validates every value (400 naming the key on any bad one), stores them and publishes at once.
pub async fn update(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult {
    let Value::Object(o) = body else {
        return Err(ApiError::invalid_json(
            "request body must be a JSON object of setting keys to values",
        ));
    };
    if o.is_empty() {
        return ok_msg(i18n::t(lang, "common.success"));
    }
    let rows = svc::validate_update(&o)?;
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
    ok_msg(i18n::t(lang, "settings.update_success"))
}
