//! Validating keys and feeding each result back into the key state (spec §5, §6): a pass restores
//! the key and resets its failures, a failure counts toward the blacklist.

use std::sync::Arc;

use futures::StreamExt;
use gpt_load_common::keystore::{KeyEvent, KeyStore};
use gpt_load_common::model::KeyStatus;
use gpt_load_worker::state::GroupRuntime;
use gpt_load_worker::validate::validate_key;
use serde::Serialize;

use crate::db::DbResult;
use crate::db::repo::keys;
use crate::state::AppState;

/// Validates one key and applies the result.
pub async fn validate_and_apply(
    state: &AppState,
    rt: &GroupRuntime,
    key_id: i64,
    plain: &str,
    was_invalid: bool,
) -> Result<(), String> {
    let group_id = rt.group.id();
    let result = validate_key(rt, plain).await;
    match &result {
        Ok(()) => {
            if was_invalid {
                rt.metrics
                    .key_event(gpt_load_common::metrics::KeyEventKind::Restored, 1);
            }
            if let Err(e) = state
                .store
                .set_status(group_id, &[key_id], KeyStatus::Active)
                .await
            {
                tracing::warn!(error = %e, "could not restore a validated key in the store");
            }
            state.records.key_event(KeyEvent {
                group_id,
                key_id,
                failure_count: 0,
                status: KeyStatus::Active,
            });
        }
        Err(_) => match state
            .store
            .record_failure(group_id, key_id, rt.group.config.blacklist_threshold, None)
            .await
        {
            Ok(o) => state.records.key_event(KeyEvent {
                group_id,
                key_id,
                failure_count: o.failure_count,
                status: if o.invalid {
                    KeyStatus::Invalid
                } else {
                    KeyStatus::Active
                },
            }),
            Err(e) => tracing::warn!(error = %e, "could not record a validation failure"),
        },
    }
    result
}

/// Result of a validation run.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct ValidationSummary {
    pub total_keys: usize,
    pub valid_keys: usize,
    pub invalid_keys: usize,
}

/// Validates a group's keys (optionally only those with `status`) with the group's
/// `key_validation_concurrency`, reporting progress.
pub async fn validate_group(
    state: &AppState,
    rt: Arc<GroupRuntime>,
    status: Option<&str>,
    progress: impl Fn(usize),
) -> DbResult<ValidationSummary> {
    let group_id = rt.group.id();
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = keys::page_after(&state.db, Some(group_id), status, after, 5000).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        all.extend(page.into_iter().map(|k| {
            (
                k.id,
                state.cipher.decrypt_or_raw(&k.key_value),
                k.status == "invalid",
            )
        }));
    }
    let total = all.len();
    let concurrency = rt.group.config.key_validation_concurrency.max(1);
    let mut summary = ValidationSummary {
        total_keys: total,
        ..Default::default()
    };
    let mut done = 0;
    let mut results = futures::stream::iter(all.into_iter().map(|(id, plain, invalid)| {
        let rt = rt.clone();
        let state = state.clone();
        async move {
            validate_and_apply(&state, &rt, id, &plain, invalid)
                .await
                .is_ok()
        }
    }))
    .buffer_unordered(concurrency);
    while let Some(ok) = results.next().await {
        done += 1;
        if ok {
            summary.valid_keys += 1;
        } else {
            summary.invalid_keys += 1;
        }
        progress(done);
    }
    Ok(summary)
}
