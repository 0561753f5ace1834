//! Self-signed TLS for test servers (the mock upstream's TLS mode, the OTLP receiver's).

use std::sync::Arc;

use tokio_rustls::rustls;

/// A self-signed certificate for `localhost` and `127.0.0.1`. A client trusts it by taking its
/// PEM ([`TestCert::cert_pem`]) as a root: `SSL_CERT_FILE` for gpt-load, `proxy_ssl_trusted_certificate`
/// for nginx.
pub struct TestCert {
    pub cert_pem: String,
    pub key_pem: String,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

impl std::fmt::Debug for TestCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TestCert")
    }
}

impl TestCert {
    pub fn new() -> Result<Self, String> {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .map_err(|e| format!("generate a certificate: {e}"))?;
        Ok(Self {
            cert_pem: ck.cert.pem(),
            key_pem: ck.signing_key.serialize_pem(),
            cert_der: ck.cert.der().to_vec(),
            key_der: ck.signing_key.serialize_der(),
        })
    }

    /// A server configuration presenting this certificate and offering `alpn` (e.g.
    /// `[b"h2", b"http/1.1"]`; empty: no ALPN, so clients speak HTTP/1.1).
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<Arc<rustls::ServerConfig>, String> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(
            vec![self.cert_der.clone().into()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(self.key_der.clone().into()),
        )
        .map_err(|e| format!("TLS server configuration: {e}"))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// An acceptor for [`TestCert::server_config`].
    pub fn acceptor(&self, alpn: &[&[u8]]) -> Result<tokio_rustls::TlsAcceptor, String> {
        self.server_config(alpn)
            .map(tokio_rustls::TlsAcceptor::from)
    }
}
