//! Moves request logs and key events from a node's bounded queue to the Redis stream the master
//! flushes into the database. Records are batched (one stream entry holds up to [`BATCH`] of
//! them, as a JSON array) so the success path costs far less than one Redis command per request.
//! While Redis is unreachable, batches wait in memory (bounded) and are retried.
//!
//! The queue is never waited on, so a record sent wakes nothing: while it is empty this task
//! looks at it every 50 ms. (Waited on, every request after a quiet spell, which at light load
//! is every request, woke the node's main runtime.)

use std::collections::VecDeque;
use std::time::Duration;

use fred::prelude::*;
use gpt_load_common::log_record::Record;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Records per stream entry.
pub const BATCH: usize = 200;
/// Batches kept in memory while Redis is away (then the oldest are dropped, counted).
pub const MAX_PENDING: usize = 500;

/// Field name of a batch in a stream entry.
pub const FIELD: &str = "b";

async fn push(client: &Client, stream: &str, batch: &str) -> Result<(), fred::error::Error> {
    let _: String = client
        .xadd(stream, false, None::<()>, "*", vec![(FIELD, batch)])
        .await?;
    Ok(())
}

/// Runs until `cancel`, then drains the queue once more.
pub async fn run(
    client: Client,
    stream: String,
    mut rx: mpsc::Receiver<Record>,
    cancel: CancellationToken,
) {
    let mut pending: VecDeque<String> = VecDeque::new();
    let mut dropped = 0u64;
    let mut current: Vec<Record> = Vec::with_capacity(BATCH);
    let mut failures = 0u32;
    let mut closing = false;
    loop {
        // Records already queued are taken at once (while Redis answers); otherwise a look
        // every 50 ms, or every 200 ms while batches wait for Redis.
        if cancel.is_cancelled() {
            closing = true;
        }
        if !closing && (rx.is_empty() || failures > 0) {
            let wait = if pending.is_empty() {
                Duration::from_millis(50)
            } else {
                Duration::from_millis(200)
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = cancel.cancelled() => closing = true,
            }
        }
        while current.len() < BATCH {
            match rx.try_recv() {
                Ok(rec) => current.push(rec),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closing = true;
                    break;
                }
            }
        }
        if !current.is_empty() {
            match serde_json::to_string(&current) {
                Ok(s) => pending.push_back(s),
                Err(e) => tracing::error!(error = %e, "cannot encode records"),
            }
            current.clear();
            while pending.len() > MAX_PENDING {
                pending.pop_front();
                dropped += BATCH as u64;
                tracing::warn!(
                    dropped,
                    "redis unreachable for long: dropping the oldest request records"
                );
            }
        }
        while let Some(batch) = pending.front() {
            match push(&client, &stream, batch).await {
                Ok(()) => {
                    pending.pop_front();
                    failures = 0;
                }
                Err(e) => {
                    failures += 1;
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(error = %e, pending = pending.len(), "cannot push records to redis, will retry");
                    }
                    break;
                }
            }
        }
        if closing {
            let drained = rx.is_closed() || rx.is_empty();
            if drained && (pending.is_empty() || failures > 10) {
                return;
            }
            if failures > 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
