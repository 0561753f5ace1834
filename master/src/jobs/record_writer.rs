//! Writes request logs (with hourly stats and key usage) and key status changes to the database.
//!
//! Records arrive on the bounded queue from the proxy. Logs are written in batches: every
//! `request_log_write_interval_minutes` (0 = at once, that is within [`COALESCE`]), or sooner
//! when a batch reaches [`MAX_BATCH`] records, and at shutdown. Key events are coalesced per key
//! and applied every second. A failed write keeps the batch and retries with backoff, so a
//! database outage loses nothing as long as the queue has room.
//!
//! The queue is taken from every [`COALESCE`], never waited on: a record sent wakes nothing.
//! (Waited on, it woke this runtime for each request that came after a quiet spell, which at
//! light load is every request: two of the main runtime's threads woken per request; the
//! measurement is in `docs/benchmarks.md`.)

use std::collections::HashMap;
use std::time::Duration;

use gpt_load_common::keystore::KeyEvent;
use gpt_load_common::log_record::{Record, RequestLogRecord};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::db::repo::keys;
use crate::db::repo::logs::Replay;
use crate::state::AppState;

/// Largest batch held before writing regardless of the interval.
pub const MAX_BATCH: usize = 10_000;

/// With `request_log_write_interval_minutes = 0` ("write at once") records are still gathered
/// for this long, so a busy proxy commits a few large transactions a second instead of one per
/// request (each `request_logs` row updates the table and four indexes; commits dominate
/// small batches).
pub const COALESCE: Duration = Duration::from_millis(250);

struct Buffers {
    logs: Vec<RequestLogRecord>,
    keys: HashMap<i64, KeyEvent>,
}

pub async fn run(state: AppState, mut rx: mpsc::Receiver<Record>, cancel: CancellationToken) {
    let mut b = Buffers {
        logs: Vec::new(),
        keys: HashMap::new(),
    };
    let mut last_log_flush = tokio::time::Instant::now();
    // The queue ([`crate::app::RECORD_QUEUE`] records) holds far more than the proxy serves in a
    // tick, and a full batch is followed by the next without waiting for one.
    let mut tick = tokio::time::interval(COALESCE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_key_flush = tokio::time::Instant::now();
    let mut failures = 0u32;
    let mut more_queued = false;
    loop {
        if !more_queued {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {},
            }
        } else if cancel.is_cancelled() {
            break;
        }
        // Take what is queued, without waiting (and so without a waker that senders would wake).
        let mut closed = false;
        while b.logs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(rec) => take(&mut b, rec),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
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
        );
        let backoff = Duration::from_millis(500 * u64::from(failures.min(20)));
        let due = flush_due(b.logs.len(), last_log_flush.elapsed(), interval, backoff);
        let full = b.logs.len() >= MAX_BATCH;
        let mut written = false;
        if due {
            match state.log_writer.write_batch(&mut b.logs, Replay::New).await {
                Ok(()) => {
                    b.logs.clear();
                    failures = 0;
                    written = true;
                }
                Err(e) => {
                    failures += 1;
                    tracing::error!(error = %e, pending = b.logs.len(), "writing request logs failed, will retry");
                }
            }
            last_log_flush = tokio::time::Instant::now();
        }
        if !b.keys.is_empty() && last_key_flush.elapsed() >= Duration::from_secs(1) {
            flush_keys(&state, &mut b).await;
            last_key_flush = tokio::time::Instant::now();
        }
        if closed {
            break;
        }
        // A full batch went out and more waits: the next one at once, not a tick later.
        more_queued = written && full && !rx.is_empty();
    }
    // Shutdown: take everything still queued and write it.
    rx.close();
    while let Some(rec) = rx.recv().await {
        take(&mut b, rec);
    }
    for attempt in 0..5 {
        if b.logs.is_empty() {
            break;
        }
        match state.log_writer.write_batch(&mut b.logs, Replay::New).await {
            Ok(()) => b.logs.clear(),
            Err(e) => {
                tracing::error!(error = %e, attempt, "final request-log write failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    flush_keys(&state, &mut b).await;
}

/// Whether `pending` logs, `since` the last flush, are written now: a full batch at once;
/// otherwise after the configured interval, but never more often than every [`COALESCE`] (so
/// "write at once" under load means a few large transactions a second, while a record after a
/// quiet spell is written at the first look at the queue); never during a failure backoff.
fn flush_due(pending: usize, since: Duration, interval: Duration, backoff: Duration) -> bool {
    pending > 0 && since >= backoff && (pending >= MAX_BATCH || since >= interval.max(COALESCE))
}

fn take(b: &mut Buffers, rec: Record) {
    match rec {
        Record::Log(l) => b.logs.push(*l),
        Record::Key(k) => {
            b.keys.insert(k.key_id, k);
        }
    }
}

async fn flush_keys(state: &AppState, b: &mut Buffers) {
    let rows: Vec<(i64, i64, &str)> = b
        .keys
        .values()
        .map(|e| (e.key_id, i64::from(e.failure_count), e.status.as_str()))
        .collect();
    match keys::apply_states(&state.db, &rows).await {
        Ok(()) => b.keys.clear(),
        Err(e) => {
            tracing::error!(error = %e, pending = rows.len(), "writing key status failed, will retry")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flushes_coalesce_within_the_interval_and_full_batches_go_at_once() {
        let zero = Duration::ZERO;
        let ms = Duration::from_millis;
        assert!(!flush_due(0, ms(10_000), zero, zero), "nothing to write");
        assert!(
            flush_due(1, ms(10_000), zero, zero),
            "first record after a quiet spell"
        );
        assert!(
            !flush_due(5, ms(10), zero, zero),
            "write-at-once still coalesces"
        );
        assert!(flush_due(5, COALESCE, zero, zero));
        assert!(
            flush_due(MAX_BATCH, ms(1), zero, zero),
            "a full batch goes at once"
        );
        let minute = Duration::from_secs(60);
        assert!(
            !flush_due(5, ms(30_000), minute, zero),
            "configured interval"
        );
        assert!(flush_due(5, minute, minute, zero));
        assert!(
            !flush_due(MAX_BATCH, ms(1), zero, ms(500)),
            "backoff after a failure"
        );
    }
}
