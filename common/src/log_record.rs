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
    /// The access key the client authenticated with (`None` for a proxy key). Defaulted, as is
    /// the name, so that records from a worker of an older release (JSON on the Redis stream, in a
    /// rolling upgrade) still decode.
    #[serde(default)]
    pub access_key_id: Option<i64>,
    /// The access key's name when the request was served; empty without one.
    #[serde(default)]
    pub access_key_name: String,
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

    /// A log record as a worker of the release before access keys encoded it, in a batch on the
    /// Redis stream: it decodes, without an access key.
    #[test]
    fn a_record_without_access_key_fields_decodes() {
        let old = r#"[{"Log":{"id":"0190a000-0000-7000-8000-000000000001",
            "timestamp":"2025-03-04T10:01:07Z","group_id":1,"group_name":"g",
            "parent_group_id":null,"parent_group_name":"","key_value":"enc","key_hash":"h",
            "model":"gpt-4o-mini","is_success":true,"source_ip":"127.0.0.1","status_code":200,
            "request_path":"/proxy/g/v1/chat/completions","duration_ms":42,"error_message":"",
            "user_agent":"t","request_type":"final","upstream_addr":"http://u","is_stream":false,
            "request_body":""}}]"#;
        let batch: Vec<Record> = serde_json::from_str(old).unwrap();
        let [Record::Log(l)] = batch.as_slice() else {
            panic!("{batch:?}")
        };
        assert_eq!(l.access_key_id, None);
        assert_eq!(l.access_key_name, "");
        assert_eq!((l.group_id, l.status_code), (1, 200));

        // And a new record goes through the same encoding whole.
        let mut new = (**l).clone();
        new.access_key_id = Some(7);
        new.access_key_name = "team".into();
        let round: Vec<Record> = serde_json::from_str(
            &serde_json::to_string(&[Record::Log(Box::new(new.clone()))]).unwrap(),
        )
        .unwrap();
        assert_eq!(round, [Record::Log(Box::new(new))]);
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
