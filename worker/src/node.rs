//! A stateless worker (`IS_SLAVE=true`): proxy traffic only, key state in the shared Redis,
//! configuration from the master's control plane, request records to the Redis stream. No SQL
//! database, no admin API (`/api/*` is 404 here).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use fred::prelude::*;
use gpt_load_common::config::StaticConfig;
use gpt_load_common::crypto::KeyCipher;
use gpt_load_common::keystore::{AnyKeyStore, RedisKeyStore};
use gpt_load_common::log_record::record_queue;
use gpt_load_common::redis::{RedisKeys, connect};
use gpt_load_common::snapshot::ConfigSnapshot;
use prost::Message;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::state::{ProxyLimits, WorkerState};

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("REDIS_DSN is required for a worker (IS_SLAVE=true)")]
    NoRedis,
    #[error("MASTER_GRPC_URL is required for a worker (IS_SLAVE=true)")]
    NoMaster,
    #[error("{0}")]
    Redis(String),
    #[error("cannot listen on {0}: {1}")]
    Bind(String, std::io::Error),
}

/// The last snapshot the master stored in Redis, if any.
pub async fn snapshot_from_redis(client: &Client, keys: &RedisKeys) -> Option<ConfigSnapshot> {
    let bytes: Option<Vec<u8>> = client.get(keys.snapshot()).await.ok()?;
    let msg = gpt_load_proto::controlplane::v1::Snapshot::decode(bytes?.as_slice()).ok()?;
    ConfigSnapshot::from_proto(msg).ok()
}

async fn health(started: Instant, state: WorkerState) -> Response {
    axum::Json(serde_json::json!({
        "status": "healthy",
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "uptime": format!("{:.3}s", started.elapsed().as_secs_f64()),
        "role": "worker",
        "snapshot_version": state.snapshot().version,
    }))
    .into_response()
}

async fn not_found() -> Response {
    (
        http::StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({"error": "Not Found"})),
    )
        .into_response()
}

/// Runs a worker until `shutdown` resolves.
pub async fn run(
    cfg: StaticConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), WorkerError> {
    let started = Instant::now();
    let dsn = cfg.redis_dsn.as_ref().ok_or(WorkerError::NoRedis)?;
    let master = cfg.master_grpc_url.clone().ok_or(WorkerError::NoMaster)?;
    let client = connect(dsn.expose())
        .await
        .map_err(|e| WorkerError::Redis(e.to_string()))?;
    let keys = RedisKeys::new(&cfg.redis_key_prefix);
    let cipher = Arc::new(KeyCipher::new(
        cfg.encryption_key.as_ref().map(|s| s.expose()),
    ));
    let store = Arc::new(AnyKeyStore::Redis(Box::new(RedisKeyStore::new(
        client.clone(),
        keys.clone(),
        cipher,
    ))));
    let initial = snapshot_from_redis(&client, &keys)
        .await
        .unwrap_or_else(ConfigSnapshot::empty);
    tracing::info!(version = initial.version, "initial snapshot from redis");
    let (records, rx) = record_queue(65_536);
    let limits = ProxyLimits::from_config(&cfg);
    let state = WorkerState::new(Arc::new(initial), store, records, limits);
    let addr = format!("{}:{}", cfg.host, cfg.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| WorkerError::Bind(addr.clone(), e))?;
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or(addr);
    let worker_id = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
    let secret = cfg.cluster_secret();

    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let pusher_client = client.clone_new();
    pusher_client
        .init()
        .await
        .map_err(|e| WorkerError::Redis(e.to_string()))?;
    let pusher = tracker.spawn(crate::cluster::records::run(
        pusher_client,
        keys.records(),
        rx,
        cancel.child_token(),
    ));
    tracker.spawn(crate::cluster::subscriber::run(
        state.clone(),
        master.clone(),
        secret.clone(),
        worker_id.clone(),
        cancel.child_token(),
    ));
    tracker.spawn(crate::cluster::status::run(
        state.clone(),
        master,
        secret,
        worker_id,
        local.clone(),
        cancel.child_token(),
    ));
    if gpt_load_common::telemetry::otlp_metrics_enabled() {
        let st = state.clone();
        tracker.spawn(crate::metrics_endpoint::publish_gauges(
            cancel.child_token(),
            move || {
                let st = st.clone();
                async move { crate::metrics_endpoint::gauges(&st, "worker", true).await }
            },
        ));
    }
    tracker.close();

    let st = state.clone();
    let ms = state.clone();
    let admin = cfg.auth_key.clone();
    let metrics_on = cfg.metrics_enabled;
    gpt_load_common::metrics::metrics()
        .enable_tokens(metrics_on || gpt_load_common::telemetry::otlp_metrics_enabled());
    let app = Router::new()
        .route("/health", get(move || health(started, st.clone())))
        .route(
            "/metrics",
            get(move |headers: http::HeaderMap| {
                let ms = ms.clone();
                let admin = admin.clone();
                async move {
                    if !metrics_on {
                        return not_found().await;
                    }
                    let (key, _) = crate::credential::extract_client_key(&headers, None);
                    if key.is_empty() || !admin.matches(&key) {
                        return crate::error::ProxyError::Unauthorized.into_response();
                    }
                    let g = crate::metrics_endpoint::gauges(&ms, "worker", true).await;
                    (
                        [(
                            http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        crate::metrics_endpoint::render(&g),
                    )
                        .into_response()
                }
            }),
        )
        .fallback(not_found);
    tracing::info!(addr = %local, "worker listening on {local}");
    let proxy = |thread| crate::proxy_service(state.clone(), Some(thread));
    let server = crate::serve::start(
        listener,
        app,
        proxy,
        crate::serve::threads(),
        crate::serve::ConnLimits::from_config(&cfg),
    )
    .map_err(|e| WorkerError::Bind(local.clone(), e))?;
    shutdown.await;
    server
        .shutdown(
            cfg.graceful_shutdown_timeout
                .saturating_sub(Duration::from_secs(2)),
        )
        .await;
    cancel.cancel();
    // Records still queued go to Redis before the process exits.
    drop(state);
    let _ = tokio::time::timeout(Duration::from_secs(5), pusher).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), tracker.wait()).await;
    Ok(())
}
