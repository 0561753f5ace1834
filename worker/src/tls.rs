//! The certificate authorities that upstream TLS trusts: Mozilla's roots (`webpki-roots`, built
//! in) plus the system's, as `rustls-native-certs` finds them: the PEM file `SSL_CERT_FILE` and the
//! directories `SSL_CERT_DIR` name when either is set, else the operating system's store. Go's
//! `crypto/x509` does the same for GPT-Load, so an upstream (or an `https://` forward proxy) behind
//! a private CA or a self-signed certificate works once its certificate is in one of those places.
//!
//! The roots are read once per process: [`load`] at start-up, else the first client built. A
//! native root that cannot be read or parsed is counted in one warning (no paths or contents) and
//! left out; with none readable, the webpki roots alone are trusted. Nothing here fails the start.

use std::sync::LazyLock;

use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// The client configuration every upstream connector starts from (ALPN unset: the connector sets
/// it). Cloning it shares its session-resumption cache.
static CONFIG: LazyLock<ClientConfig> = LazyLock::new(|| {
    let native = rustls_native_certs::load_native_certs();
    let (roots, counts) = root_store(native.certs, native.errors.len());
    counts.log();
    ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth()
});

/// Reads the roots now and logs what was found; later calls do nothing. Called at start-up so that
/// the file reads happen before serving, not on the first snapshot's build.
pub fn load() {
    LazyLock::force(&CONFIG);
}

/// A TLS client configuration trusting the webpki and the native roots, without ALPN protocols.
pub(crate) fn client_config() -> ClientConfig {
    CONFIG.clone()
}

/// What [`root_store`] made of the roots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RootCounts {
    webpki: usize,
    native: usize,
    /// Native certificates read but not usable as roots.
    native_unparsable: usize,
    /// Files or stores that could not be read.
    native_errors: usize,
}

impl RootCounts {
    fn log(self) {
        let Self {
            webpki,
            native,
            native_unparsable,
            native_errors,
        } = self;
        if native_errors + native_unparsable > 0 {
            tracing::warn!(
                native_errors,
                native_unparsable,
                native,
                "some system TLS roots (SSL_CERT_FILE, SSL_CERT_DIR or the system store) could not be loaded; upstream TLS trusts the webpki roots and the rest"
            );
        }
        tracing::info!(webpki, native, "upstream TLS roots loaded");
    }
}

/// Mozilla's roots plus the `native` certificates that parse as roots (`errors` native sources
/// could not be read).
fn root_store(native: Vec<CertificateDer<'static>>, errors: usize) -> (RootCertStore, RootCounts) {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let webpki = roots.len();
    let (native, native_unparsable) = roots.add_parsable_certificates(native);
    (
        roots,
        RootCounts {
            webpki,
            native,
            native_unparsable,
            native_errors: errors,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_roots_are_added_to_the_webpki_ones_and_bad_ones_are_counted() {
        let cert = gpt_load_integration_tests::tls::TestCert::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, &cert.cert_pem).unwrap();
        let loaded = rustls_native_certs::load_certs_from_paths(Some(&file), None);
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let mut native = loaded.certs;
        native.push(CertificateDer::from(b"not a certificate".to_vec()));

        let (roots, counts) = root_store(native, 1);
        let webpki = webpki_roots::TLS_SERVER_ROOTS.len();
        assert_eq!(
            counts,
            RootCounts {
                webpki,
                native: 1,
                native_unparsable: 1,
                native_errors: 1,
            }
        );
        assert_eq!(roots.len(), webpki + 1);
    }

    #[test]
    fn without_native_roots_the_webpki_ones_remain() {
        let missing = rustls_native_certs::load_certs_from_paths(
            Some(std::path::Path::new("/nonexistent/gpt-load/ca.pem")),
            None,
        );
        assert!(!missing.errors.is_empty());
        let (roots, counts) = root_store(missing.certs, missing.errors.len());
        assert!(counts.webpki > 100, "{counts:?}");
        assert_eq!(counts.native, 0);
        assert_eq!(roots.len(), counts.webpki);
    }
}
