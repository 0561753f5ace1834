//! Follows the master's config snapshots: `WatchSnapshot` over gRPC into the node's runtime,
//! reconnecting with backoff and serving the last good snapshot while the master is away.

use std::sync::Arc;
use std::time::Duration;

use gpt_load_common::snapshot::ConfigSnapshot;
use gpt_load_proto::controlplane::v1::WatchSnapshotRequest;
use gpt_load_proto::controlplane::v1::control_plane_client::ControlPlaneClient;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

use crate::state::WorkerState;

/// A control-plane client carrying the cluster secret.
pub async fn connect(url: &str) -> Result<ControlPlaneClient<Channel>, tonic::transport::Error> {
    let channel = Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(2))
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true)
        .connect()
        .await?;
    Ok(ControlPlaneClient::new(channel))
}

/// A request with the cluster secret attached.
pub fn authed<T>(msg: T, secret: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    if let Ok(v) = MetadataValue::try_from(super::bearer(secret)) {
        req.metadata_mut().insert(super::AUTH_METADATA, v);
    }
    req
}

/// Streams snapshots into `state` until `cancel`; reconnects with backoff (100 ms … 5 s).
pub async fn run(
    state: WorkerState,
    url: String,
    secret: String,
    worker_id: String,
    cancel: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let attempt = async {
            let mut client = connect(&url).await.map_err(|e| e.to_string())?;
            let known = state.snapshot().version;
            let mut stream = client
                .watch_snapshot(authed(
                    WatchSnapshotRequest {
                        worker_id: worker_id.clone(),
                        known_version: known,
                    },
                    &secret,
                ))
                .await
                .map_err(|s| format!("{}: {}", s.code(), s.message()))?
                .into_inner();
            tracing::info!(master = %url, "connected to the master");
            loop {
                match stream.message().await {
                    Ok(Some(msg)) => match ConfigSnapshot::from_proto(msg) {
                        Ok(snap) => {
                            let v = snap.version;
                            state.publish(Arc::new(snap));
                            tracing::debug!(version = v, "applied config snapshot");
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "ignoring a snapshot this worker cannot read")
                        }
                    },
                    Ok(None) => return Err::<(), String>("the master closed the stream".into()),
                    Err(s) => return Err(format!("{}: {}", s.code(), s.message())),
                }
            }
        };
        tokio::select! {
            r = attempt => {
                if let Err(e) = r {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "master unreachable; serving the last snapshot");
                }
            }
            _ = cancel.cancelled() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = cancel.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
        if state.snapshot().version > 0 {
            // Once connected before, retry at most every second so changes resume quickly.
            backoff = backoff.min(Duration::from_secs(1));
        }
    }
}
