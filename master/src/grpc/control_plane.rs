//! `WatchSnapshot`: the full snapshot at once, then every new version as it is published.

use std::pin::Pin;

use futures::Stream;
use gpt_load_proto::controlplane::v1::control_plane_server::ControlPlane;
use gpt_load_proto::controlplane::v1::{
    ReportStatusResponse, Snapshot, WatchSnapshotRequest, WorkerStatus,
};
use tonic::{Request, Response, Status};

use crate::state::AppState;

pub struct ControlPlaneService {
    state: AppState,
}

impl ControlPlaneService {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

/// Marks the worker's stream closed when the stream is dropped.
struct StreamGuard {
    state: AppState,
    worker_id: String,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.state.workers.stream_closed(&self.worker_id);
    }
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<Snapshot, Status>> + Send>>;

#[tonic::async_trait]
impl ControlPlane for ControlPlaneService {
    type WatchSnapshotStream = SnapshotStream;

    async fn watch_snapshot(
        &self,
        request: Request<WatchSnapshotRequest>,
    ) -> Result<Response<Self::WatchSnapshotStream>, Status> {
        let req = request.into_inner();
        let worker_id = if req.worker_id.is_empty() {
            "anonymous".to_owned()
        } else {
            req.worker_id
        };
        self.state.workers.stream_opened(&worker_id);
        let guard = StreamGuard {
            state: self.state.clone(),
            worker_id: worker_id.clone(),
        };
        let mut updates = self.state.publisher.subscribe();
        let state = self.state.clone();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Snapshot, Status>>(4);
        tokio::spawn(async move {
            let _guard = guard;
            loop {
                let snap = updates.borrow_and_update().clone();
                state.workers.set_version(&worker_id, snap.version);
                if tx.send(Ok(snap.to_proto())).await.is_err() {
                    return;
                }
                tokio::select! {
                    r = updates.changed() => if r.is_err() { return },
                    _ = tx.closed() => return,
                }
            }
        });
        let stream: SnapshotStream = Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx));
        Ok(Response::new(stream))
    }

    async fn report_status(
        &self,
        request: Request<WorkerStatus>,
    ) -> Result<Response<ReportStatusResponse>, Status> {
        self.state.workers.report(request.into_inner());
        Ok(Response::new(ReportStatusResponse {}))
    }
}
