//! An OTLP receiver (the trace and metrics services an OpenTelemetry collector exposes, over gRPC or
//! HTTP/protobuf) that keeps what it is sent, for tests and the `otlp-sink` benchmark helper.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::trace::v1::Span;
use parking_lot::Mutex;

pub use opentelemetry_proto::tonic as proto;

pub use crate::tls::TestCert;

/// Accepts TCP connections and completes their TLS handshake (one at a time: tests only).
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

#[derive(Default)]
struct Received {
    traces: Vec<ExportTraceServiceRequest>,
    metrics: Vec<ExportMetricsServiceRequest>,
    span_count: u64,
    keep: bool,
}

/// The receiver; clones share what was received.
#[derive(Clone, Default)]
pub struct Receiver(Arc<Mutex<Received>>);

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Receiver")
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.take_traces(req.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        req: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.take_metrics(req.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

impl Receiver {
    fn take_traces(&self, req: ExportTraceServiceRequest) {
        let n: usize = req
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len())
            .sum();
        let mut r = self.0.lock();
        r.span_count += n as u64;
        if r.keep {
            r.traces.push(req);
        }
    }

    fn take_metrics(&self, req: ExportMetricsServiceRequest) {
        let mut r = self.0.lock();
        if r.keep {
            r.metrics.push(req);
        } else {
            r.metrics = vec![req];
        }
    }

    /// Serves OTLP/HTTP with protobuf bodies on `listener` (`POST /v1/traces`, `/v1/metrics`);
    /// `keep` as for [`Receiver::serve`].
    pub fn serve_http(listener: tokio::net::TcpListener, keep: bool) -> Receiver {
        use axum::routing::post;
        let recv = Receiver::default();
        recv.0.lock().keep = keep;
        let app = axum::Router::new()
            .route("/v1/traces", post(http_traces))
            .route("/v1/metrics", post(http_metrics))
            .with_state(recv.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        recv
    }

    /// [`Receiver::serve_http`] over TLS with `cert`.
    pub fn serve_http_tls(
        listener: tokio::net::TcpListener,
        cert: &TestCert,
    ) -> Result<Receiver, String> {
        use axum::routing::post;
        let recv = Receiver::default();
        recv.0.lock().keep = true;
        let app = axum::Router::new()
            .route("/v1/traces", post(http_traces))
            .route("/v1/metrics", post(http_metrics))
            .with_state(recv.clone());
        let listener = TlsListener {
            tcp: listener,
            acceptor: cert.acceptor(&[])?,
        };
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(recv)
    }

    /// Serves on `listener`; `keep` retains every export (tests), otherwise only counts spans and
    /// keeps the latest metrics (benchmarks).
    pub fn serve(listener: tokio::net::TcpListener, keep: bool) -> Receiver {
        let recv = Receiver::default();
        recv.0.lock().keep = keep;
        Self::serve_grpc(recv.clone(), listener, tonic::transport::Server::builder());
        recv
    }

    /// [`Receiver::serve`] over TLS with `cert` (keeping every export).
    pub fn serve_tls(
        listener: tokio::net::TcpListener,
        cert: &TestCert,
    ) -> Result<Receiver, String> {
        let server = tonic::transport::Server::builder()
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(
                tonic::transport::Identity::from_pem(&cert.cert_pem, &cert.key_pem),
            ))
            .map_err(|e| format!("gRPC TLS configuration: {e}"))?;
        let recv = Receiver::default();
        recv.0.lock().keep = true;
        Self::serve_grpc(recv.clone(), listener, server);
        Ok(recv)
    }

    fn serve_grpc(
        svc: Receiver,
        listener: tokio::net::TcpListener,
        mut server: tonic::transport::Server,
    ) {
        tokio::spawn(async move {
            let _ = server
                .add_service(TraceServiceServer::new(svc.clone()))
                .add_service(MetricsServiceServer::new(svc))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await;
        });
    }

    /// Spans received so far.
    pub fn span_count(&self) -> u64 {
        self.0.lock().span_count
    }

    /// Every span kept.
    pub fn spans(&self) -> Vec<Span> {
        let r = self.0.lock();
        r.traces
            .iter()
            .flat_map(|t| &t.resource_spans)
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| ss.spans.clone())
            .collect()
    }

    /// `service.name` of every resource that exported.
    pub fn service_names(&self) -> Vec<String> {
        let r = self.0.lock();
        let traces = r
            .traces
            .iter()
            .flat_map(|t| &t.resource_spans)
            .filter_map(|rs| rs.resource.as_ref());
        let metrics = r
            .metrics
            .iter()
            .flat_map(|m| &m.resource_metrics)
            .filter_map(|rm| rm.resource.as_ref());
        traces
            .chain(metrics)
            .filter_map(|res| attr(&res.attributes, "service.name"))
            .collect()
    }

    /// Every metric of the latest export.
    pub fn latest_metrics(&self) -> Vec<Metric> {
        let r = self.0.lock();
        r.metrics
            .last()
            .map(|m| {
                m.resource_metrics
                    .iter()
                    .flat_map(|rm| &rm.scope_metrics)
                    .flat_map(|sm| sm.metrics.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Everything kept, as debug text (to search for secrets).
    pub fn dump(&self) -> String {
        let r = self.0.lock();
        format!("{:?}{:?}", r.traces, r.metrics)
    }
}

/// An attribute value as text.
pub fn value_str(v: &AnyValue) -> String {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// The attribute `key`, as text.
pub fn attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .map(value_str)
}

/// Lower-case hex of an id.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The body of an OTLP/HTTP request, if it is protobuf (anything else is refused, so a test sees
/// the exporter's content type).
fn protobuf_body<M: prost::Message + Default>(
    headers: &http::HeaderMap,
    body: &[u8],
) -> Result<M, (http::StatusCode, String)> {
    let ct = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if ct != "application/x-protobuf" {
        return Err((
            http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content-type {ct:?}"),
        ));
    }
    M::decode(body).map_err(|e| (http::StatusCode::BAD_REQUEST, e.to_string()))
}

fn protobuf_reply<M: prost::Message>(m: &M) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(http::header::CONTENT_TYPE, "application/x-protobuf")],
        m.encode_to_vec(),
    )
        .into_response()
}

/// One OTLP/HTTP export: decode the protobuf request, keep it, answer the empty response.
fn http_export<Req: prost::Message + Default, Resp: prost::Message + Default>(
    recv: &Receiver,
    headers: &http::HeaderMap,
    body: &[u8],
    take: fn(&Receiver, Req),
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match protobuf_body::<Req>(headers, body) {
        Ok(req) => {
            take(recv, req);
            protobuf_reply(&Resp::default())
        }
        Err(e) => e.into_response(),
    }
}

async fn http_traces(
    axum::extract::State(recv): axum::extract::State<Receiver>,
    headers: http::HeaderMap,
    body: bytes::Bytes,
) -> axum::response::Response {
    http_export::<ExportTraceServiceRequest, ExportTraceServiceResponse>(
        &recv,
        &headers,
        &body,
        Receiver::take_traces,
    )
}

async fn http_metrics(
    axum::extract::State(recv): axum::extract::State<Receiver>,
    headers: http::HeaderMap,
    body: bytes::Bytes,
) -> axum::response::Response {
    http_export::<ExportMetricsServiceRequest, ExportMetricsServiceResponse>(
        &recv,
        &headers,
        &body,
        Receiver::take_metrics,
    )
}
