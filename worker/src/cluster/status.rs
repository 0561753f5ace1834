//! Reports this worker's status to the master every few seconds (for `gpt-load ctl status`).

use std::time::Duration;

use gpt_load_proto::controlplane::v1::WorkerStatus;
use tokio_util::sync::CancellationToken;

use super::subscriber::{authed, connect};
use crate::state::WorkerState;

pub async fn run(
    state: WorkerState,
    url: String,
    secret: String,
    worker_id: String,
    listen_addr: String,
    cancel: CancellationToken,
) {
    let hostname = std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let mut client = None;
    loop {
        if client.is_none() {
            client = connect(&url).await.ok();
        }
        if let Some(c) = client.as_mut() {
            let status = WorkerStatus {
                worker_id: worker_id.clone(),
                hostname: hostname.clone(),
                listen_addr: listen_addr.clone(),
                snapshot_version: state.snapshot().version,
                in_flight: (state.0.limits.max_concurrent - state.0.limiter.available_permits())
                    as u64,
                records_dropped: state.0.records.dropped(),
                version: gpt_load_common::VERSION.to_owned(),
            };
            if c.report_status(authed(status, &secret)).await.is_err() {
                client = None;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3)) => {}
            _ = cancel.cancelled() => return,
        }
    }
}
