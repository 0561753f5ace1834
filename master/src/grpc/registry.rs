//! The workers a master has heard from (status reports and snapshot streams).

use std::collections::HashMap;
use std::time::Instant;

use gpt_load_proto::controlplane::v1::WorkerStatus;
use parking_lot::Mutex;

#[derive(Debug, Clone)]
pub struct WorkerEntry {
    pub status: WorkerStatus,
    pub last_seen: Instant,
    pub streams: usize,
}

#[derive(Debug, Default)]
pub struct WorkerRegistry {
    workers: Mutex<HashMap<String, WorkerEntry>>,
}

impl WorkerRegistry {
    pub fn report(&self, status: WorkerStatus) {
        let mut w = self.workers.lock();
        let e = w
            .entry(status.worker_id.clone())
            .or_insert_with(|| WorkerEntry {
                status: status.clone(),
                last_seen: Instant::now(),
                streams: 0,
            });
        e.status = status;
        e.last_seen = Instant::now();
    }

    pub fn stream_opened(&self, worker_id: &str) {
        let mut w = self.workers.lock();
        let e = w
            .entry(worker_id.to_owned())
            .or_insert_with(|| WorkerEntry {
                status: WorkerStatus {
                    worker_id: worker_id.to_owned(),
                    ..Default::default()
                },
                last_seen: Instant::now(),
                streams: 0,
            });
        e.streams += 1;
        e.last_seen = Instant::now();
    }

    pub fn stream_closed(&self, worker_id: &str) {
        if let Some(e) = self.workers.lock().get_mut(worker_id) {
            e.streams = e.streams.saturating_sub(1);
        }
    }

    pub fn set_version(&self, worker_id: &str, version: u64) {
        if let Some(e) = self.workers.lock().get_mut(worker_id) {
            e.status.snapshot_version = version;
        }
    }

    /// Workers seen within the last ten minutes.
    pub fn list(&self) -> Vec<WorkerEntry> {
        let mut w = self.workers.lock();
        w.retain(|_, e| e.streams > 0 || e.last_seen.elapsed().as_secs() < 600);
        let mut v: Vec<_> = w.values().cloned().collect();
        v.sort_by(|a, b| a.status.worker_id.cmp(&b.status.worker_id));
        v
    }
}
