//! The master's gRPC server on `GRPC_PORT`: the control plane (`WatchSnapshot`, worker reports),
//! the ops service behind `gpt-load ctl`, the standard `grpc.health.v1` service and reflection.
//! Every call must carry `authorization: Bearer <cluster secret>` (constant-time compare);
//! anything else is `UNAUTHENTICATED`.

pub mod control_plane;
pub mod ops;
pub mod registry;

use std::net::SocketAddr;

use gpt_load_common::secret::constant_time_eq;
use gpt_load_proto::controlplane::v1::control_plane_server::ControlPlaneServer;
use gpt_load_proto::ops::v1::ops_server::OpsServer;
use tonic::{Request, Status};

use crate::state::AppState;

/// Checks the cluster secret of a call.
#[derive(Clone)]
pub struct AuthInterceptor {
    expected: String,
}

impl AuthInterceptor {
    pub fn new(secret: &str) -> Self {
        Self {
            expected: format!("Bearer {secret}"),
        }
    }
}

impl tonic::service::Interceptor for AuthInterceptor {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let got = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !got.is_empty() && constant_time_eq(got.as_bytes(), self.expected.as_bytes()) {
            Ok(req)
        } else {
            Err(Status::unauthenticated("missing or wrong cluster secret"))
        }
    }
}

/// Serves gRPC until `shutdown` resolves.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let auth = AuthInterceptor::new(&state.cfg.cluster_secret());
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<ControlPlaneServer<control_plane::ControlPlaneService>>()
        .await;
    health_reporter
        .set_serving::<OpsServer<ops::OpsService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(gpt_load_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .ok();
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(addr = ?addr, "grpc listening");
    let mut router = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(15)))
        .trace_fn(grpc_span)
        .add_service(health_service)
        .add_service(ControlPlaneServer::with_interceptor(
            control_plane::ControlPlaneService::new(state.clone()),
            auth.clone(),
        ))
        .add_service(OpsServer::with_interceptor(
            ops::OpsService::new(state),
            auth,
        ));
    if let Some(r) = reflection {
        router = router.add_service(r);
    }
    router
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown,
        )
        .await
}

/// A span per gRPC call when OTLP export is on (named by the gRPC method path, which is bounded).
fn grpc_span(req: &http::Request<()>) -> tracing::Span {
    if !gpt_load_common::telemetry::sample(req.headers()) {
        return tracing::Span::none();
    }
    let path = req.uri().path();
    let span = tracing::info_span!(
        target: "gpt_load::grpc",
        "grpc",
        otel.name = %path.trim_start_matches('/'),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.method = %path,
    );
    gpt_load_common::telemetry::set_remote_parent(&span, req.headers());
    span
}
