//! OpenTelemetry export end to end: the real binary with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at
//! an OTLP/gRPC receiver in this test (the collector's own wire protocol; no collector binary
//! installs from the registries here). Asserts that spans (request → upstream attempts, admin API)
//! and metrics arrive, that W3C trace context is accepted from the client and propagated upstream,
//! and that no key shows up in anything exported.

use std::time::Duration;

use std::sync::Arc;

use gpt_load_integration_tests::harness::{
    ADMIN_KEY, RedisServer, Server, eventually, free_port, run_cli,
};
use gpt_load_integration_tests::otlp::proto::metrics::v1::{metric, number_data_point};
use gpt_load_integration_tests::otlp::proto::trace::v1::Span;
use gpt_load_integration_tests::otlp::{Receiver, TestCert, attr, hex};
use serde_json::json;

use crate::proxy::Setup;

#[tokio::test(flavor = "multi_thread")]
async fn spans_and_metrics_reach_an_otlp_receiver() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let recv = Receiver::serve(listener, true);
    let endpoint = format!("http://127.0.0.1:{port}");
    let t = Setup::new(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_SERVICE_NAME", "gpt-load-otel-test"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
    ])
    .await;
    // One key the upstream rejects (401 → retried on the other), one it accepts.
    let bad = "mock-fail-otel-secret-key-111";
    let good = "sk-otel-secret-key-222";
    t.group("tel", "openai", &[bad, good], json!({"max_retries": 3}))
        .await;

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let mut retried = false;
    for _ in 0..2 {
        let r = t
            .chat("tel")
            .header("traceparent", format!("00-{trace_id}-{client_span}-01"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        retried |= t
            .mock
            .requests()
            .iter()
            .any(|q| q.header("authorization") == Some(&format!("Bearer {bad}")));
    }
    assert!(
        retried,
        "round-robin put the failing key first at least once"
    );

    // Trace context went upstream: same trace, a new parent (our attempt span).
    let upstream = t.mock.last_request().unwrap();
    let tp = upstream
        .header("traceparent")
        .expect("traceparent sent upstream")
        .to_owned();
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    assert_eq!(parts[1], trace_id, "{tp}");
    assert_ne!(parts[2], client_span, "{tp}: our span, not the client's");

    // A client that did not sample its trace: no span here, its context passes through as sent.
    let unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    let r = t
        .chat("tel")
        .header("traceparent", unsampled)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        t.mock.last_request().unwrap().header("traceparent"),
        Some(unsampled)
    );

    let (_, groups) = t.server.get("/api/groups").await;
    assert!(groups["data"].is_array(), "{groups}");

    let ok = eventually(Duration::from_secs(20), || {
        let spans = recv.spans();
        async move {
            spans.iter().any(|s| s.name == "GET /api/groups")
                && spans
                    .iter()
                    .filter(|s| s.name == "upstream_attempt")
                    .count()
                    >= 3
                && spans.iter().filter(|s| s.name == "POST /proxy/tel").count() >= 2
        }
    })
    .await;
    let spans = recv.spans();
    assert!(
        ok,
        "spans: {:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );

    assert!(
        !spans
            .iter()
            .any(|s| hex(&s.trace_id) == "0af7651916cd43dd8448eb211c80319c"),
        "an unsampled parent is respected"
    );
    let requests: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "POST /proxy/tel")
        .collect();
    for r in &requests {
        assert_eq!(hex(&r.trace_id), trace_id, "the client's trace continues");
        assert_eq!(
            hex(&r.parent_span_id),
            client_span,
            "child of the client's span"
        );
        assert_eq!(
            attr(&r.attributes, "gpt_load.group").as_deref(),
            Some("tel")
        );
        assert_eq!(
            attr(&r.attributes, "gpt_load.channel").as_deref(),
            Some("openai")
        );
        assert_eq!(
            attr(&r.attributes, "gen_ai.request.model").as_deref(),
            Some("gpt-4o-mini")
        );
        assert_eq!(
            attr(&r.attributes, "http.response.status_code").as_deref(),
            Some("200")
        );
        assert_eq!(r.kind, 2, "server span");
    }
    let attempts: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "upstream_attempt")
        .collect();
    for a in &attempts {
        assert!(
            requests.iter().any(|r| r.span_id == a.parent_span_id),
            "every attempt is a child of a request span"
        );
        assert_eq!(a.kind, 3, "client span");
        assert!(attr(&a.attributes, "gpt_load.key_id").is_some());
        assert!(attr(&a.attributes, "gpt_load.attempt").is_some());
    }
    let failed = attempts
        .iter()
        .find(|a| attr(&a.attributes, "http.response.status_code").as_deref() == Some("401"))
        .expect("the rejected attempt has its own span");
    assert_eq!(
        attr(&failed.attributes, "gpt_load.attempt").as_deref(),
        Some("1")
    );
    assert_eq!(
        failed.status.as_ref().map(|s| s.code),
        Some(2),
        "error status"
    );
    let retried_req = requests
        .iter()
        .find(|r| r.span_id == failed.parent_span_id)
        .unwrap();
    assert_eq!(
        attr(&retried_req.attributes, "gpt_load.outcome").as_deref(),
        Some("retried")
    );
    assert!(
        attempts.iter().any(|a| hex(&a.span_id) == parts[2]),
        "the upstream saw an attempt span as its parent"
    );
    let admin = spans.iter().find(|s| s.name == "GET /api/groups").unwrap();
    assert_eq!(
        attr(&admin.attributes, "http.route").as_deref(),
        Some("/api/groups")
    );

    // Metrics: the request counters, histograms and key gauges of /metrics, over OTLP.
    let ok = eventually(Duration::from_secs(20), || {
        let m = recv.latest_metrics();
        async move {
            let requests = m.iter().find(|m| m.name == "gpt_load_requests_total");
            let retried = requests.and_then(|m| match &m.data {
                Some(metric::Data::Sum(s)) => s
                    .data_points
                    .iter()
                    .find(|p| {
                        attr(&p.attributes, "group").as_deref() == Some("tel")
                            && attr(&p.attributes, "outcome").as_deref() == Some("retried")
                    })
                    .and_then(|p| p.value),
                _ => None,
            });
            let retried = matches!(retried, Some(number_data_point::Value::AsInt(n)) if n >= 1);
            let keys = m
                .iter()
                .find(|m| m.name == "gpt_load_keys")
                .is_some_and(|m| match &m.data {
                    Some(metric::Data::Gauge(g)) => g.data_points.iter().any(|p| {
                        attr(&p.attributes, "group").as_deref() == Some("tel")
                            && attr(&p.attributes, "state").as_deref() == Some("active")
                    }),
                    _ => false,
                });
            let hist = |name: &str| {
                m.iter()
                    .find(|x| x.name == name)
                    .is_some_and(|x| match &x.data {
                        Some(metric::Data::Histogram(h)) => {
                            h.data_points.iter().any(|p| p.count > 0)
                        }
                        _ => false,
                    })
            };
            retried
                && keys
                && hist("gpt_load_request_duration_seconds")
                && hist("gpt_load_upstream_duration_seconds")
                && hist("gpt_load_upstream_ttfb_seconds")
                && m.iter().any(|x| x.name == "gpt_load_retries_total")
                && m.iter().any(|x| x.name == "gpt_load_key_selections_total")
                && m.iter().any(|x| x.name == "gpt_load_build_info")
        }
    })
    .await;
    assert!(
        ok,
        "metrics: {:?}",
        recv.latest_metrics()
            .iter()
            .map(|m| &m.name)
            .collect::<Vec<_>>()
    );
    assert!(
        recv.service_names()
            .iter()
            .all(|s| s == "gpt-load-otel-test"),
        "{:?}",
        recv.service_names()
    );

    let dump = recv.dump();
    for secret in [
        bad,
        good,
        crate::proxy::PROXY_KEY,
        gpt_load_integration_tests::harness::ADMIN_KEY,
    ] {
        assert!(!dump.contains(secret), "a secret was exported");
    }
}

/// gRPC calls to the master (here `gpt-load ctl status`) are exported as server spans named by
/// their method.
#[tokio::test(flavor = "multi_thread")]
async fn grpc_calls_are_traced() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let recv = Receiver::serve(listener, true);
    let endpoint = format!("http://127.0.0.1:{port}");
    let redis = RedisServer::start().await;
    let grpc_port = free_port().to_string();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let _master = Server::start(
        dir,
        &[
            ("REDIS_DSN", redis.url().as_str()),
            ("GRPC_PORT", grpc_port.as_str()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ],
    )
    .await;
    let grpc = format!("http://127.0.0.1:{grpc_port}");
    let (ok, out, err) = run_cli(
        std::path::Path::new("/tmp"),
        &[("AUTH_KEY", ADMIN_KEY)],
        &["ctl", "--master", &grpc, "--json", "status"],
    )
    .await;
    assert!(ok, "{out}{err}");
    let method = "gptload.ops.v1.Ops/ClusterStatus";
    assert!(
        eventually(Duration::from_secs(20), || {
            let spans = recv.spans();
            async move { spans.iter().any(|s| s.name == method) }
        })
        .await,
        "no gRPC span among {:?}",
        recv.spans()
            .iter()
            .map(|s| s.name.clone())
            .collect::<Vec<_>>()
    );
    let spans = recv.spans();
    let span = spans.iter().find(|s| s.name == method).unwrap();
    assert_eq!(
        attr(&span.attributes, "rpc.system").as_deref(),
        Some("grpc")
    );
    assert_eq!(span.kind, 2, "SPAN_KIND_SERVER");
}

/// `OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf`: spans and metrics go to the collector's OTLP/HTTP
/// endpoint (`/v1/traces`, `/v1/metrics` under `OTEL_EXPORTER_OTLP_ENDPOINT`).
#[tokio::test(flavor = "multi_thread")]
async fn http_protobuf_export() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let recv = Receiver::serve_http(listener, true);
    let endpoint = format!("http://127.0.0.1:{port}");
    let t = Setup::new(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
    ])
    .await;
    t.group("tel-http", "openai", &["sk-otel-http-1"], json!({}))
        .await;
    assert_eq!(t.chat("tel-http").send().await.unwrap().status(), 200);
    let ok = eventually(Duration::from_secs(20), || {
        let (spans, metrics) = (recv.spans(), recv.latest_metrics());
        async move {
            spans.iter().any(|s| s.name == "POST /proxy/tel-http")
                && spans.iter().any(|s| s.name == "upstream_attempt")
                && metrics.iter().any(|m| m.name == "gpt_load_requests_total")
        }
    })
    .await;
    assert!(
        ok,
        "spans: {:?}",
        recv.spans()
            .iter()
            .map(|s| s.name.clone())
            .collect::<Vec<_>>()
    );
}

/// `https://` collectors, over gRPC and over HTTP/protobuf, trusted through
/// `OTEL_EXPORTER_OTLP_CERTIFICATE` (the receivers' certificates are self-signed).
#[tokio::test(flavor = "multi_thread")]
async fn tls_export_over_grpc_and_http() {
    let cert = TestCert::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("collector-ca.pem");
    std::fs::write(&ca, &cert.cert_pem).unwrap();
    let ca = ca.to_str().unwrap();
    for protocol in ["grpc", "http/protobuf"] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let recv = if protocol == "grpc" {
            Receiver::serve_tls(listener, &cert).unwrap()
        } else {
            Receiver::serve_http_tls(listener, &cert).unwrap()
        };
        let endpoint = format!("https://127.0.0.1:{port}");
        let t = Setup::new(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca),
            ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ])
        .await;
        t.group("tel-tls", "openai", &["sk-otel-tls-1"], json!({}))
            .await;
        assert_eq!(t.chat("tel-tls").send().await.unwrap().status(), 200);
        let ok = eventually(Duration::from_secs(20), || {
            let (spans, metrics) = (recv.spans(), recv.latest_metrics());
            async move {
                spans.iter().any(|s| s.name == "POST /proxy/tel-tls")
                    && metrics.iter().any(|m| m.name == "gpt_load_requests_total")
            }
        })
        .await;
        assert!(
            ok,
            "{protocol}: spans {:?}, metrics {}",
            recv.spans()
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>(),
            recv.latest_metrics().len()
        );
    }
}
