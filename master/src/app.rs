//! Building and running the master: database, migrations, settings seed, key pools, the embedded
//! data plane, the admin API and the background jobs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::middleware;
use axum::response::Response;
use fred::prelude::ClientLike;
use gpt_load_common::config::{DatabaseDsn, StaticConfig};
use gpt_load_common::crypto::KeyCipher;
use gpt_load_common::keystore::{AnyKeyStore, KeyStore, MemoryKeyStore, RedisKeyStore};
use gpt_load_common::log_record::{Record, record_queue};
use gpt_load_common::model::SETTING_DEFS;
use gpt_load_common::redis::RedisKeys;
use gpt_load_worker::{ProxyLimits, WorkerState};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api;
use crate::db::repo::settings;
use crate::db::types::{Zone, set_mysql_zone};
use crate::db::{Db, LogWriter, migrate};
use crate::i18n::{self, Lang};
use crate::service::keys;
use crate::snapshot::{self, SnapshotPublisher};
use crate::state::{AppInner, AppState, RedisCtx};

/// Capacity of the record queue between the proxy and the writer. The writer takes from it every
/// quarter second ([`crate::jobs::record_writer::COALESCE`]), up to 10 000 at a time: at 40 k
/// requests a second a batch write may take about a second before records are dropped (counted,
/// `gpt_load_records_dropped_total`).
pub const RECORD_QUEUE: usize = 65_536;

/// Why the master could not start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("database: {0}")]
    Database(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

/// A built, not yet running, master.
pub struct App {
    pub state: AppState,
    pub listener: TcpListener,
    grpc_listener: Option<TcpListener>,
    records: mpsc::Receiver<Record>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").finish_non_exhaustive()
    }
}

/// A random `sk-` + 48 alphanumeric proxy key.
pub fn random_proxy_key() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    format!("sk-{}", Alphanumeric.sample_string(&mut rand::rng(), 48))
}

/// Connects to the database and applies migrations.
pub async fn open_database(cfg: &StaticConfig, cipher: &KeyCipher) -> Result<Db, InitError> {
    if let DatabaseDsn::MySql { loc, .. } = &cfg.database_dsn {
        set_mysql_zone(Zone::from_go_loc(loc));
    }
    let db = Db::connect(&cfg.database_dsn).await.map_err(|e| {
        InitError::Database(format!(
            "cannot connect ({}): {e}",
            cfg.database_dsn.backend()
        ))
    })?;
    migrate::run(&db, cipher)
        .await
        .map_err(|e| InitError::Database(format!("migration failed: {e}")))?;
    Ok(db)
}

/// Inserts missing settings with their defaults. A fresh install gets a random global proxy key
/// (GPT-Load seeded `AUTH_KEY`, making the admin secret a proxy key).
async fn seed_settings(db: &Db, cfg: &StaticConfig) -> Result<(), InitError> {
    let rows: Vec<(String, String, String)> = SETTING_DEFS
        .iter()
        .map(|d| {
            let value = match d.key {
                "app_url" => cfg.default_app_url(),
                "proxy_keys" => random_proxy_key(),
                _ => d.default.to_owned(),
            };
            let desc = i18n::t(
                Lang::EnUs,
                &format!("{}_desc", crate::service::settings::name_id(d.key)),
            );
            (d.key.to_owned(), value, desc)
        })
        .collect();
    let n = settings::insert_missing(db, &rows)
        .await
        .map_err(|e| InitError::Database(e.to_string()))?;
    if n == SETTING_DEFS.len() {
        tracing::info!(
            "new database: settings seeded; a random global proxy key was generated (see Settings → Global Proxy Keys)"
        );
    }
    Ok(())
}

impl App {
    pub async fn build(cfg: StaticConfig) -> Result<Self, InitError> {
        let started = Instant::now();
        gpt_load_common::metrics::metrics().enable_tokens(
            cfg.metrics_enabled || gpt_load_common::telemetry::otlp_metrics_enabled(),
        );
        if let Some(dir) = &cfg.ui_dir {
            crate::ui::set_dir(Some(std::path::PathBuf::from(dir)));
        } else if !crate::ui::embedded() {
            tracing::warn!(
                build = crate::ui::EMBEDDED_FINGERPRINT,
                "this binary embeds no web UI (built without ui/dist); set UI_DIR or rebuild after `npm --prefix ui run build`"
            );
        }
        let cipher = KeyCipher::new(cfg.encryption_key.as_ref().map(|s| s.expose()));
        let db = open_database(&cfg, &cipher).await?;
        seed_settings(&db, &cfg).await?;

        let parts = snapshot::load(&db, &cipher)
            .await
            .map_err(|e| InitError::Database(e.to_string()))?;
        let group_ids: Vec<i64> = parts.groups.iter().map(|g| g.id).collect();
        let initial = Arc::new(parts.into_snapshot(0));
        let redis = match &cfg.redis_dsn {
            Some(dsn) => {
                let client = gpt_load_common::redis::connect(dsn.expose())
                    .await
                    .map_err(|e| InitError::Other(format!("REDIS_DSN: {e}")))?;
                Some(RedisCtx {
                    client,
                    keys: RedisKeys::new(&cfg.redis_key_prefix),
                })
            }
            None => None,
        };
        let store = Arc::new(match &redis {
            Some(r) => AnyKeyStore::Redis(Box::new(RedisKeyStore::new(
                r.client.clone(),
                r.keys.clone(),
                Arc::new(cipher.clone()),
            ))),
            None => AnyKeyStore::Memory(MemoryKeyStore::new()),
        });
        // Reconcile the pools with the database; on Redis, keys keep what the workers learned
        // (a master restart never wipes the live pools).
        let loaded = keys::load_all(&db, &cipher, store.as_ref())
            .await
            .map_err(|e| InitError::Database(e.to_string()))?;
        if let AnyKeyStore::Redis(r) = store.as_ref() {
            for gid in r
                .group_ids()
                .await
                .map_err(|e| InitError::Other(e.to_string()))?
            {
                if !group_ids.contains(&gid) {
                    let _ = store.remove_group(gid).await;
                }
            }
        }
        let (records, rx) = record_queue(RECORD_QUEUE);
        let limits = ProxyLimits::from_config(&cfg);
        let worker = WorkerState::new(initial.clone(), store.clone(), records.clone(), limits);
        let publisher = SnapshotPublisher::new(initial);
        let addr = format!("{}:{}", cfg.host, cfg.port);
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| InitError::Bind { addr, source })?;
        // The control plane only matters in a cluster (workers need the shared Redis).
        let grpc_listener = if redis.is_some() {
            let addr = format!("{}:{}", cfg.host, cfg.grpc_port);
            Some(
                TcpListener::bind(&addr)
                    .await
                    .map_err(|source| InitError::Bind { addr, source })?,
            )
        } else {
            None
        };
        let log_writer = LogWriter::open(&db, &cfg.database_dsn)
            .map_err(|e| InitError::Database(format!("request-log writer: {e}")))?;
        let state = AppState(Arc::new(AppInner {
            cfg,
            db,
            log_writer,
            cipher,
            store,
            worker,
            records,
            publisher,
            tasks: Default::default(),
            login_throttle: Default::default(),
            key_writes: tokio::sync::Mutex::new(()),
            started,
            instance_id: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            workers: Default::default(),
            leader: std::sync::atomic::AtomicBool::new(redis.is_none()),
            redis,
        }));
        state
            .publish()
            .await
            .map_err(|e| InitError::Database(e.to_string()))?;
        tracing::info!(
            keys = loaded,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "key pools loaded"
        );
        Ok(Self {
            state,
            listener,
            grpc_listener,
            records: rx,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Starts the background jobs: on a single node directly; in a cluster under the job lease,
    /// with this master's records going through the shared stream, plus the gRPC server.
    async fn start_jobs(
        state: &AppState,
        records: mpsc::Receiver<Record>,
        grpc_listener: Option<TcpListener>,
        tracker: &TaskTracker,
        cancel: &CancellationToken,
    ) -> Result<tokio::task::JoinHandle<()>, InitError> {
        if gpt_load_common::telemetry::otlp_metrics_enabled() {
            let st = state.clone();
            tracker.spawn(gpt_load_worker::metrics_endpoint::publish_gauges(
                cancel.child_token(),
                move || {
                    let st = st.clone();
                    async move { crate::api::system::master_gauges(&st).await }
                },
            ));
        }
        let Some(r) = state.redis.clone() else {
            let w = tracker.spawn(crate::jobs::record_writer::run(
                state.clone(),
                records,
                cancel.child_token(),
            ));
            tracker.spawn(crate::jobs::retention::run(
                state.clone(),
                cancel.child_token(),
            ));
            tracker.spawn(crate::jobs::validator::run(
                state.clone(),
                cancel.child_token(),
            ));
            return Ok(w);
        };
        let pusher_client = r.client.clone_new();
        pusher_client
            .init()
            .await
            .map_err(|e| InitError::Other(format!("redis: {e}")))?;
        let w = tracker.spawn(gpt_load_worker::cluster::records::run(
            pusher_client,
            r.keys.records(),
            records,
            cancel.child_token(),
        ));
        let st = state.clone();
        let rc = r.clone();
        tracker.spawn(crate::jobs::lease::run(
            state.clone(),
            r,
            cancel.child_token(),
            move |token| {
                let st = st.clone();
                let rc = rc.clone();
                async move {
                    let jobs = TaskTracker::new();
                    jobs.spawn(crate::jobs::stream_flusher::run(
                        st.clone(),
                        rc,
                        token.clone(),
                    ));
                    jobs.spawn(crate::jobs::retention::run(st.clone(), token.clone()));
                    jobs.spawn(crate::jobs::pool_guard::run(st.clone(), token.clone()));
                    jobs.spawn(crate::jobs::validator::run(st, token));
                    jobs.close();
                    jobs.wait().await;
                }
            },
        ));
        if let Some(gl) = grpc_listener {
            let st = state.clone();
            let token = cancel.child_token();
            tracker.spawn(async move {
                if let Err(e) =
                    crate::grpc::serve(st, gl, async move { token.cancelled().await }).await
                {
                    tracing::error!(error = %e, "grpc server failed");
                }
            });
        }
        Ok(w)
    }

    /// Serves until `shutdown` resolves, then drains within the graceful timeout and flushes logs.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), InitError> {
        let App {
            state,
            listener,
            grpc_listener,
            records,
        } = self;
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let writer = Self::start_jobs(&state, records, grpc_listener, &tracker, &cancel).await?;
        tracker.close();

        let app = router(state.clone());
        let proxy = |thread| {
            tower::ServiceBuilder::new()
                .option_layer(crate::cors::layer(&state.cfg.cors))
                .service(gpt_load_worker::proxy_service(
                    state.worker.clone(),
                    Some(thread),
                ))
        };
        let addr = listener
            .local_addr()
            .map_err(|e| InitError::Other(e.to_string()))?;
        tracing::info!(%addr, db = state.db.backend_name(), cluster = state.redis.is_some(), "listening on {addr}");
        let grace = state.cfg.graceful_shutdown_timeout;
        let server = gpt_load_worker::serve::start(
            listener,
            app,
            proxy,
            gpt_load_worker::serve::threads(),
            gpt_load_worker::serve::ConnLimits::from_config(&state.cfg),
        )
        .map_err(|e| InitError::Other(format!("cannot start the serving threads: {e}")))?;
        shutdown.await;
        tracing::info!("shutting down");
        let drained = server
            .shutdown(
                grace
                    .saturating_sub(Duration::from_secs(2))
                    .max(Duration::from_secs(1)),
            )
            .await;
        if !drained {
            tracing::warn!("connections still open after the graceful timeout; closing them");
        }
        // The proxy is stopped: what it queued is flushed by the writer (or pushed to Redis).
        cancel.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(8), writer).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
        state.log_writer.close().await;
        state.db.close().await;
        Ok(())
    }
}

async fn fallback(req: Request) -> Response {
    let p = req.uri().path();
    if p.starts_with("/api") || p.starts_with("/proxy") {
        return api::not_found().await;
    }
    crate::ui::serve(req).await
}

/// A master's HTTP surface besides the proxy (admin API, UI; `/proxy/{group}/…` goes to
/// [`gpt_load_worker::proxy_service`] on the serving threads). Security headers go on the admin
/// API and the UI; proxied responses carry the upstream's headers only.
pub fn router(state: AppState) -> Router {
    let admin = api::router(state.clone())
        .layer(middleware::from_fn(api::security_headers))
        .layer(middleware::from_fn(api::trace_span));
    let ui = Router::new()
        .fallback(fallback)
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(middleware::from_fn(api::security_headers));
    let mut app = Router::new().merge(admin).merge(ui);
    if let Some(cors) = crate::cors::layer(&state.cfg.cors) {
        app = app.layer(cors);
    }
    app
}
