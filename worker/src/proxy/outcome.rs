//! Step 7's bookkeeping: what an attempt's outcome does to its key — a cool-down after a rate
//! limit, a counted failure (blacklisting at the threshold, exactly once), the failure count
//! reset after a success — with the key events the master writes to the database.

use gpt_load_common::keystore::{KeyEvent, KeyStore, SelectedKey};
use gpt_load_common::metrics::KeyEventKind;
use gpt_load_common::model::KeyStatus;
use gpt_load_common::serving_thread::ServingThread;

use crate::failure::Verdict;
use crate::state::{GroupRuntime, WorkerState};

/// Applies a failed attempt's verdict to its key.
pub(super) async fn failed(
    state: &WorkerState,
    member: &GroupRuntime,
    key: &SelectedKey,
    verdict: &Verdict,
    on: Option<ServingThread>,
) {
    let store = &state.0.store;
    let group_id = member.group.id();
    let key_id = key.key.id;
    if let Some(d) = verdict.cool_down {
        member.metrics.key_event(KeyEventKind::Cooldown, 1);
        let _ = store.cool_down(group_id, key_id, d, on).await;
    }
    if !verdict.counts_against_key {
        return;
    }
    match store
        .record_failure(
            group_id,
            key_id,
            member.group.config.blacklist_threshold,
            on,
        )
        .await
    {
        Ok(outcome) => {
            member.metrics.key_event(KeyEventKind::Failure, 1);
            if outcome.blacklisted {
                member.metrics.key_event(KeyEventKind::Blacklisted, 1);
                tracing::info!(
                    group = member.group.name(),
                    key_id,
                    failures = outcome.failure_count,
                    "key blacklisted"
                );
            }
            state.0.records.key_event(KeyEvent {
                group_id,
                key_id,
                failure_count: outcome.failure_count,
                status: if outcome.invalid {
                    KeyStatus::Invalid
                } else {
                    KeyStatus::Active
                },
            });
        }
        Err(e) => tracing::warn!(error = %e, "could not record a key failure"),
    }
}

/// After a success: resets the key's consecutive-failure count when it had any, off the
/// response path (on the main runtime, so that a stopping serving thread cannot cancel it).
pub(super) fn succeeded(state: &WorkerState, group_id: i64, key: &SelectedKey) {
    if key.failures == 0 {
        return;
    }
    let state = state.clone();
    let key_id = key.key.id;
    crate::serve::spawn_detached(async move {
        if let Ok(true) = state.0.store.record_success(group_id, key_id).await {
            state.0.records.key_event(KeyEvent {
                group_id,
                key_id,
                failure_count: 0,
                status: KeyStatus::Active,
            });
        }
    });
}
