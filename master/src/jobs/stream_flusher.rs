//! Cluster mode: reads request logs and key events of every node from the Redis stream (a
//! consumer group) and writes them to the database; entries are acknowledged and deleted only
//! after the transaction committed, so a master restart or a database outage loses nothing —
//! unacknowledged entries are read again.
//!
//! Key status changes do not wait for the logs read with them: they are written within
//! [`KEY_EVENTS_EVERY`] whatever `request_log_write_interval_minutes` is (as on a single node), so
//! a key a worker blacklisted shows in the admin key list at once. Their entries stay
//! unacknowledged until the logs are written too; read again after a crash, the same states are
//! written again.

use std::collections::HashMap;
use std::time::Duration;

use fred::prelude::*;
use fred::types::streams::XReadResponse;
use gpt_load_common::keystore::KeyEvent;
use gpt_load_common::log_record::{Record, RequestLogRecord};
use tokio_util::sync::CancellationToken;

use super::record_writer::{COALESCE, MAX_BATCH};
use crate::db::repo::keys;
use crate::db::repo::logs::Replay;
use crate::state::{AppState, RedisCtx};

const GROUP: &str = "gpt-load-master";

/// How soon key status changes read from the stream reach the database.
pub const KEY_EVENTS_EVERY: Duration = Duration::from_secs(1);
const CONSUMER: &str = "master";

struct Pending {
    ids: Vec<String>,
    logs: Vec<RequestLogRecord>,
    keys: HashMap<i64, KeyEvent>,
}

pub async fn run(state: AppState, r: RedisCtx, cancel: CancellationToken) {
    // Blocking reads need a connection of their own.
    let client = r.client.clone_new();
    if let Err(e) = client.init().await {
        tracing::error!(error = %e, "stream flusher cannot connect to redis");
        return;
    }
    let stream = r.keys.records();
    let mut pending = Pending {
        ids: Vec::new(),
        logs: Vec::new(),
        keys: HashMap::new(),
    };
    let mut read_backlog = true;
    let mut group_ready = false;
    let mut last_flush = tokio::time::Instant::now();
    let mut last_key_flush = tokio::time::Instant::now();
    let mut failures = 0u32;
    loop {
        if cancel.is_cancelled() {
            break;
        }
        if !group_ready {
            let res: Result<(), fred::error::Error> =
                client.xgroup_create(&stream, GROUP, "0", true).await;
            match res {
                Ok(()) => group_ready = true,
                Err(e) if e.details().contains("BUSYGROUP") => group_ready = true,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot create the records consumer group");
                    tokio::select! { _ = tokio::time::sleep(Duration::from_secs(1)) => continue, _ = cancel.cancelled() => break }
                }
            }
        }
        let id = if read_backlog { "0" } else { ">" };
        let block = if read_backlog { None } else { Some(500) };
        // A blocking read that times out answers nil: that is an empty read, not an error.
        let res: Result<XReadResponse<String, String, String, String>, fred::error::Error> =
            match client
                .xreadgroup::<Value, _, _, _, _>(
                    GROUP,
                    CONSUMER,
                    Some(50),
                    block,
                    false,
                    &stream,
                    id,
                )
                .await
            {
                Ok(Value::Null) => Ok(Default::default()),
                Ok(v) => v.into_xread_response(),
                Err(e) => Err(e),
            };
        match res {
            Ok(map) => {
                let entries = map.into_values().flatten().collect::<Vec<_>>();
                if read_backlog && entries.is_empty() {
                    read_backlog = false;
                }
                for (entry_id, fields) in entries {
                    pending.ids.push(entry_id);
                    let Some(batch) = fields.get(gpt_load_worker::cluster::records::FIELD) else {
                        continue;
                    };
                    match serde_json::from_str::<Vec<Record>>(batch) {
                        Ok(records) => {
                            for rec in records {
                                match rec {
                                    Record::Log(l) => pending.logs.push(*l),
                                    Record::Key(k) => {
                                        pending.keys.insert(k.key_id, k);
                                    }
                                }
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "dropping an unreadable record batch")
                        }
                    }
                }
            }
            Err(e) => {
                if e.details().contains("NOGROUP") {
                    group_ready = false;
                } else {
                    tracing::warn!(error = %e, "reading the records stream failed");
                }
                tokio::select! { _ = tokio::time::sleep(Duration::from_millis(500)) => {}, _ = cancel.cancelled() => break }
            }
        }
        let interval = Duration::from_secs(
            state
                .worker
                .snapshot()
                .settings
                .int("request_log_write_interval_minutes")
                .max(0) as u64
                * 60,
        )
        .max(COALESCE);
        let backoff = Duration::from_millis(500 * u64::from(failures.min(20)));
        let due = !pending.ids.is_empty()
            && (pending.logs.len() >= MAX_BATCH
                || last_flush.elapsed() >= interval
                || read_backlog)
            && last_flush.elapsed() >= backoff;
        if due {
            if flush(&state, &client, &stream, &mut pending).await {
                failures = 0;
            } else {
                failures += 1;
            }
            last_flush = tokio::time::Instant::now();
            last_key_flush = last_flush;
        } else if !pending.keys.is_empty()
            && last_key_flush.elapsed() >= KEY_EVENTS_EVERY.max(backoff)
        {
            if write_key_states(&state, &mut pending).await {
                failures = 0;
            } else {
                failures += 1;
            }
            last_key_flush = tokio::time::Instant::now();
        }
    }
    // Shutdown: write what was read; unacknowledged entries stay in the stream otherwise.
    let _ = flush(&state, &client, &stream, &mut pending).await;
}

async fn flush(state: &AppState, client: &Client, stream: &str, p: &mut Pending) -> bool {
    if p.ids.is_empty() {
        return true;
    }
    if let Err(e) = state
        .log_writer
        .write_batch(&mut p.logs, Replay::Possible)
        .await
    {
        tracing::error!(error = %e, pending = p.logs.len(), "writing request logs failed, will retry");
        return false;
    }
    if !write_key_states(state, p).await {
        // Logs are written; the retry leaves them out (`Replay::Possible`), rows and counts.
        return false;
    }
    let ids = std::mem::take(&mut p.ids);
    let acked: Result<i64, _> = client.xack(stream, GROUP, ids.clone()).await;
    let deleted: Result<i64, _> = client.xdel(stream, ids.clone()).await;
    if let Err(e) = acked.and(deleted) {
        tracing::warn!(error = %e, "acknowledging stream entries failed; they will be read again (and left out: written already)");
    }
    p.logs.clear();
    true
}

/// Writes the pending key states (the latest per key); kept for a retry when that fails.
async fn write_key_states(state: &AppState, p: &mut Pending) -> bool {
    if p.keys.is_empty() {
        return true;
    }
    let states: Vec<(i64, i64, &str)> = p
        .keys
        .values()
        .map(|e| (e.key_id, i64::from(e.failure_count), e.status.as_str()))
        .collect();
    if let Err(e) = keys::apply_states(&state.db, &states).await {
        tracing::error!(error = %e, "writing key status failed, will retry");
        return false;
    }
    p.keys.clear();
    true
}
