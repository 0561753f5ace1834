//! The one long-running task at a time (imports, deletions, validation), with progress.
//! Starting is atomic (GPT-Load's check-then-set could start two); results are kept 60 minutes.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value;

use crate::api::response::go_time;

pub const KEY_IMPORT: &str = "KEY_IMPORT";
pub const KEY_DELETE: &str = "KEY_DELETE";
pub const KEY_VALIDATION: &str = "KEY_VALIDATION";

const RESULT_TTL: Duration = Duration::from_secs(3600);

/// The status as GPT-Load serialises it.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct TaskStatus {
    /// `KEY_IMPORT`, `KEY_DELETE`, `KEY_VALIDATION`, or empty before the first task.
    pub task_type: String,
    pub is_running: bool,
    /// Absent when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    #[schema(required = false)]
    pub group_name: String,
    pub processed: u64,
    pub total: u64,
    /// KEY_IMPORT: `added_count`, `ignored_count`; KEY_DELETE: `deleted_count`,
    /// `ignored_count`; KEY_VALIDATION: `total_keys`, `valid_keys`, `invalid_keys`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::HashMap<String, i64>>)]
    pub result: Option<Value>,
    /// Absent when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    #[schema(required = false)]
    pub error: String,
    pub started_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub duration_seconds: Option<f64>,
}

#[derive(Debug)]
struct Current {
    status: TaskStatus,
    started_at: DateTime<Utc>,
    finished: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct TaskManager {
    current: std::sync::Arc<Mutex<Option<Current>>>,
}

/// Handle of a running task (owned: it moves into the task's future).
#[derive(Debug)]
pub struct TaskHandle {
    current: std::sync::Arc<Mutex<Option<Current>>>,
}

/// Another task is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskBusy;

impl TaskManager {
    /// Starts a task unless one is running.
    pub fn try_start(
        &self,
        task_type: &str,
        group_name: &str,
        total: u64,
    ) -> Result<TaskHandle, TaskBusy> {
        let mut cur = self.current.lock();
        if cur.as_ref().is_some_and(|c| c.status.is_running) {
            return Err(TaskBusy);
        }
        let now = Utc::now();
        *cur = Some(Current {
            status: TaskStatus {
                task_type: task_type.to_owned(),
                is_running: true,
                group_name: group_name.to_owned(),
                processed: 0,
                total,
                result: None,
                error: String::new(),
                started_at: go_time(now),
                finished_at: None,
                duration_seconds: None,
            },
            started_at: now,
            finished: None,
        });
        Ok(TaskHandle {
            current: self.current.clone(),
        })
    }

    /// The current status, or the empty one (no task, or a result older than 60 minutes).
    pub fn status(&self) -> TaskStatus {
        let cur = self.current.lock();
        match cur.as_ref() {
            Some(c) if c.finished.is_none_or(|f| f.elapsed() < RESULT_TTL) => c.status.clone(),
            _ => TaskStatus {
                task_type: String::new(),
                is_running: false,
                group_name: String::new(),
                processed: 0,
                total: 0,
                result: None,
                error: String::new(),
                started_at: "0001-01-01T00:00:00Z".into(),
                finished_at: None,
                duration_seconds: None,
            },
        }
    }

    pub fn is_running(&self) -> bool {
        self.current
            .lock()
            .as_ref()
            .is_some_and(|c| c.status.is_running)
    }
}

impl TaskHandle {
    pub fn progress(&self, processed: u64) {
        if let Some(c) = self.current.lock().as_mut() {
            c.status.processed = processed.min(c.status.total.max(processed));
        }
    }

    pub fn set_total(&self, total: u64) {
        if let Some(c) = self.current.lock().as_mut() {
            c.status.total = total;
        }
    }

    fn end(self, result: Option<Value>, error: String) {
        if let Some(c) = self.current.lock().as_mut() {
            c.status.is_running = false;
            c.status.result = result;
            c.status.error = error;
            let now = Utc::now();
            c.status.finished_at = Some(go_time(now));
            let secs = (now - c.started_at).num_milliseconds() as f64 / 1000.0;
            c.status.duration_seconds = (secs > 0.0).then_some(secs);
            c.finished = Some(Instant::now());
        }
    }

    pub fn finish(self, result: Value) {
        self.end(Some(result), String::new());
    }

    pub fn fail(self, error: String) {
        self.end(None, error);
    }

    pub fn snapshot(&self) -> TaskStatus {
        self.current
            .lock()
            .as_ref()
            .map(|c| c.status.clone())
            .unwrap_or_else(|| TaskManager::default().status())
    }
}

impl Drop for TaskHandle {
    fn drop(&mut self) {
        // A task that ends without finish/fail (a panic) must not block every later task.
        if let Some(c) = self.current.lock().as_mut()
            && c.status.is_running
        {
            c.status.is_running = false;
            c.status.error = "task aborted".into();
            c.finished = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_task_at_a_time_with_progress_and_result() {
        let m = TaskManager::default();
        assert_eq!(m.status().task_type, "");
        let h = m.try_start(KEY_IMPORT, "g", 10).unwrap();
        assert_eq!(m.try_start(KEY_DELETE, "g", 1).unwrap_err(), TaskBusy);
        h.progress(5);
        let s = m.status();
        assert!(s.is_running);
        assert_eq!((s.processed, s.total), (5, 10));
        h.finish(serde_json::json!({"added_count": 10, "ignored_count": 0}));
        let s = m.status();
        assert!(!s.is_running);
        assert_eq!(s.result.unwrap()["added_count"], 10);
        assert!(s.finished_at.is_some());
        assert!(m.try_start(KEY_DELETE, "g", 1).is_ok());
    }

    #[test]
    fn serialises_like_gpt_load() {
        let m = TaskManager::default();
        let v = serde_json::to_value(m.status()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"task_type":"","is_running":false,"processed":0,"total":0,"started_at":"0001-01-01T00:00:00Z"})
        );
    }
}
