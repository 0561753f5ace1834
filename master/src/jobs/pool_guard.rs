//! Cluster mode: reloads key pools that Redis lost.
//!
//! Redis holds the live key state of a cluster. If it loses its data (restarted without
//! persistence, `FLUSHALL`, a failover to an empty replica), every pool is gone and nothing else
//! would bring them back before a master restart: the proxy would answer "no keys" forever while
//! the database lists them as active. Each pool carries a "loaded" marker (set when a pool is
//! loaded from the database, deleted with it); this job looks for groups of the current snapshot
//! whose marker is missing and reloads them from the database — every [`CHECK_EVERY`], and at
//! once when the snapshot changes (a new group has no pool until then). The proxy answers
//! `KEY_STATE_MISSING` for such a group in the meantime.
//!
//! What the database holds is what the master last wrote of the key states: a key blacklisted
//! less than a second before the loss comes back active, and its next failures blacklist it again.

use std::time::Duration;

use gpt_load_common::keystore::AnyKeyStore;
use tokio_util::sync::CancellationToken;

use crate::service::keys;
use crate::state::AppState;

/// How often the markers are looked at.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

pub async fn run(state: AppState, cancel: CancellationToken) {
    let AnyKeyStore::Redis(store) = state.store.as_ref() else {
        return;
    };
    let mut snapshots = state.publisher.subscribe();
    let mut warned_unreachable = false;
    loop {
        let groups: Vec<i64> = state
            .worker
            .snapshot()
            .groups()
            .iter()
            .filter(|g| !g.is_aggregate())
            .map(|g| g.id())
            .collect();
        match store.missing_pools(&groups).await {
            Ok(missing) => {
                warned_unreachable = false;
                for group_id in missing {
                    match keys::reload_group(&state, group_id).await {
                        Ok(()) => tracing::warn!(
                            group_id,
                            "the group's key pool was missing from redis (redis lost its data?); reloaded it from the database"
                        ),
                        Err(e) => {
                            tracing::error!(group_id, error = %e, "cannot reload a key pool missing from redis")
                        }
                    }
                }
            }
            // Redis down: the proxy answers 503 meanwhile; look again once it is back.
            Err(e) if !warned_unreachable => {
                warned_unreachable = true;
                tracing::warn!(error = %e, "cannot check the key pools in redis");
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            _ = snapshots.changed() => {}
        }
    }
}
