//! Re-validates invalid keys of every standard group whose `key_validation_interval_minutes` has
//! passed since its last run; a key that passes returns to rotation. Runs at start and every
//! minute; groups run one after another, each with its own bounded concurrency (GPT-Load ran every
//! due group at once).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::db::repo::{groups, keys};
use crate::service::validation;
use crate::state::AppState;

pub async fn run(state: AppState, cancel: CancellationToken) {
    loop {
        if let Err(e) = pass(&state, &cancel).await {
            tracing::error!(error = %e, "key validation pass failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

async fn pass(state: &AppState, cancel: &CancellationToken) -> Result<(), crate::db::DbError> {
    let now = chrono::Utc::now();
    let runtime = state.worker.runtime();
    for g in groups::list(&state.db).await? {
        if cancel.is_cancelled() {
            return Ok(());
        }
        if g.group_type == "aggregate" {
            continue;
        }
        let Some(rt) = runtime.group_by_id(g.id).cloned() else {
            continue;
        };
        let interval =
            chrono::Duration::minutes(rt.group.config.key_validation_interval_minutes as i64);
        if g.last_validated_at.is_some_and(|t| now - t < interval) {
            continue;
        }
        let (_, _, invalid) = keys::counts(&state.db, Some(g.id)).await?;
        if invalid > 0 {
            let s = validation::validate_group(state, rt, Some("invalid"), |_| {}).await?;
            tracing::info!(group = %g.name, checked = s.total_keys, restored = s.valid_keys, "validated invalid keys");
        }
        groups::set_last_validated(&state.db, g.id, chrono::Utc::now()).await?;
    }
    Ok(())
}
