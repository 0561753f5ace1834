//! Upstreams over TLS behind a private CA: like GPT-Load (Go's `crypto/x509`), gpt-load trusts the
//! roots in `SSL_CERT_FILE` besides the public ones, over HTTP/2 or HTTP/1.1 as the upstream
//! offers by ALPN; without them, the handshake fails at once into a 502 in GPT-Load's shape.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use gpt_load_integration_tests::mock_upstream::MockUpstream;
use gpt_load_integration_tests::tls::TestCert;
use http::Version;
use serde_json::{Value, json};

use crate::proxy::Setup;

const LOOPBACK: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// Two TLS mocks with `cert`: one offering `h2` and `http/1.1`, one `http/1.1` only.
async fn tls_mocks(cert: &TestCert) -> (MockUpstream, MockUpstream) {
    let h2 =
        MockUpstream::start_tls_on(LOOPBACK, cert.server_config(&[b"h2", b"http/1.1"]).unwrap())
            .await
            .unwrap();
    let h1 = MockUpstream::start_tls_on(LOOPBACK, cert.server_config(&[b"http/1.1"]).unwrap())
        .await
        .unwrap();
    assert!(h2.url().starts_with("https://127.0.0.1:"), "{}", h2.url());
    (h2, h1)
}

async fn tls_group(t: &Setup, name: &str, mock: &MockUpstream) {
    t.group(
        name,
        "openai",
        &["sk-tls-1"],
        json!({"upstreams": [{"url": mock.url(), "weight": 1}]}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_self_signed_upstream_is_trusted_through_ssl_cert_file_over_h2_and_http1() {
    let cert = TestCert::new().unwrap();
    let (h2, h1) = tls_mocks(&cert).await;
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = ca_dir.path().join("ca.pem");
    std::fs::write(&ca, &cert.cert_pem).unwrap();
    let t = Setup::new(&[("SSL_CERT_FILE", ca.to_str().unwrap())]).await;
    tls_group(&t, "tls-h2", &h2).await;
    tls_group(&t, "tls-h1", &h1).await;

    for (group, mock, version) in [
        ("tls-h2", &h2, Version::HTTP_2),
        ("tls-h1", &h1, Version::HTTP_11),
    ] {
        for _ in 0..3 {
            let r = t.chat(group).send().await.unwrap();
            let status = r.status();
            let body: Value = r.json().await.unwrap();
            assert_eq!(status, 200, "{group}: {body}");
            assert_eq!(
                body["choices"][0]["message"]["content"], "echo: hello",
                "{group}: {body}"
            );
        }
        let seen = mock.requests();
        assert_eq!(seen.len(), 3, "{group}");
        assert!(
            seen.iter().all(|r| r.version == version),
            "{group}: {seen:?}"
        );
        assert_eq!(seen[0].api_key.as_deref(), Some("sk-tls-1"));
    }
    // Read once at start-up: the one root of SSL_CERT_FILE besides the webpki ones.
    let logs = t.server.logs();
    assert!(
        logs.contains("upstream TLS roots loaded") && logs.contains("native=1"),
        "{logs}"
    );
    assert!(!logs.contains("could not be loaded"), "{logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_its_ca_a_self_signed_upstream_is_a_prompt_502() {
    let cert = TestCert::new().unwrap();
    let (h2, h1) = tls_mocks(&cert).await;
    // An SSL_CERT_FILE that cannot be read: a warning, and the webpki roots alone.
    let t = Setup::new(&[("SSL_CERT_FILE", "/nonexistent/gpt-load-test/ca.pem")]).await;
    tls_group(&t, "tls-h2", &h2).await;
    tls_group(&t, "tls-h1", &h1).await;

    for group in ["tls-h2", "tls-h1"] {
        let r = tokio::time::timeout(Duration::from_secs(10), t.chat(group).send())
            .await
            .expect("answered, not hung")
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 502, "{group}: {body}");
        assert_eq!(body["code"], "UPSTREAM_ERROR", "{group}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains("certificate"), "{group}: {body}");
    }
    assert_eq!(h2.request_count() + h1.request_count(), 0);
    let logs = t.server.logs();
    assert!(
        logs.contains("could not be loaded") && logs.contains("native_errors=1"),
        "{logs}"
    );
    assert!(
        !logs.contains("/nonexistent/"),
        "no paths in the log: {logs}"
    );
}
