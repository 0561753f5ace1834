//! Deletes request logs older than `request_log_retention_days` (0 keeps them forever): at start
//! and every two hours.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::db::repo::logs;
use crate::state::AppState;

pub async fn run(state: AppState, cancel: CancellationToken) {
    loop {
        let days = state
            .worker
            .snapshot()
            .settings
            .int("request_log_retention_days");
        if days > 0 {
            let before = chrono::Utc::now() - chrono::Duration::days(days);
            match logs::delete_before(&state.db, before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, days, "removed expired request logs"),
                Err(e) => tracing::error!(error = %e, "log retention cleanup failed"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2 * 3600)) => {}
            _ = cancel.cancelled() => return,
        }
    }
}
