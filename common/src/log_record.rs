//! The request-log record (one per upstream attempt, spec §4.5) and the bounded queue that carries
//! records and key events off the request path.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::keystore::KeyEvent;

/// `retry` for an attempt that was followed by another, `final` for the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestType {
    Retry,
    Final,
}

impl RequestType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Final => "final",
        }
    }
}

/// One row of `request_logs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestLogRecord {
    /// A UUIDv7 (time-ordered) from the proxy; GPT-Load's were UUIDv4.
    pub id: String,
    pub timestamp: DateTime<Utc>,
    pub group_id: i64,
    pub group_name: String,
    pub parent_group_id: Option<i64>,
    pub parent_group_name: String,
    /// The stored (encrypted when enabled) upstream key; empty when no key was used.
    pub key_value: String,
    pub key_hash: String,
    pub model: String,
    pub is_success: bool,
    pub source_ip: String,
    pub status_code: i64,
    pub request_path: String,
    pub duration_ms: i64,
    pub error_message: String,
    pub user_agent: String,
    pub request_type: RequestType,
    pub upstream_addr: String,
    pub is_stream: bool,
    pub request_body: String,
}

/// What travels from the proxy to the persistence side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Record {
    Log(Box<RequestLogRecord>),
    Key(KeyEvent),
}

/// The sending half of the bounded record queue: never blocks, counts what it drops.
#[derive(Clone, Debug)]
pub struct RecordSender {
    tx: mpsc::Sender<Record>,
    dropped: Arc<AtomicU64>,
}

/// Creates the bounded record queue.
pub fn record_queue(capacity: usize) -> (RecordSender, mpsc::Receiver<Record>) {
    let (tx, rx) = mpsc::channel(capacity);
    (
        RecordSender {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        },
        rx,
    )
}

impl RecordSender {
    /// Enqueues a record; when the queue is full the record is dropped and counted.
    pub fn send(&self, r: Record) {
        if self.tx.try_send(r).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "record queue full, dropping records");
            }
        }
    }

    pub fn log(&self, rec: RequestLogRecord) {
        self.send(Record::Log(Box::new(rec)));
    }

    pub fn key_event(&self, ev: KeyEvent) {
        self.send(Record::Key(ev));
    }

    /// Records dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Records waiting in the queue.
    pub fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

/// Truncates `s` to at most `max` bytes on a character boundary (GPT-Load splits UTF-8).
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_utf8_whole() {
        assert_eq!(truncate_utf8("héllo", 2), "h");
        assert_eq!(truncate_utf8("héllo", 3), "hé");
        assert_eq!(truncate_utf8("abc", 10), "abc");
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts() {
        let (tx, mut rx) = record_queue(2);
        let ev = KeyEvent {
            group_id: 1,
            key_id: 1,
            failure_count: 1,
            status: crate::model::KeyStatus::Active,
        };
        for _ in 0..5 {
            tx.key_event(ev);
        }
        assert_eq!(tx.dropped(), 3);
        assert_eq!(tx.depth(), 2);
        assert!(matches!(rx.recv().await, Some(Record::Key(_))));
    }
}
