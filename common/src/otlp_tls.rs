//! TLS for the OTLP exporters, from the specification's variables: an `https://` endpoint is
//! verified against the webpki roots plus `OTEL_EXPORTER_OTLP_CERTIFICATE` (a PEM file of extra
//! trusted CAs), with a client certificate from `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` and
//! `OTEL_EXPORTER_OTLP_CLIENT_KEY` (PEM files) when the collector asks for one. Every variable also
//! has a per-signal form (`OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE`, …) that wins over the general
//! one. A file that cannot be read or parsed stops the start with the variable's name.

use std::time::Duration;

use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig, Identity};

use crate::env::EnvSource;

/// The signals with their own variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Traces,
    Metrics,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES",
            Signal::Metrics => "METRICS",
        }
    }
}

/// `OTEL_EXPORTER_OTLP_{SIGNAL}_{suffix}`, else `OTEL_EXPORTER_OTLP_{suffix}`: the variable that
/// is set and not blank, with its value.
pub(crate) fn setting(
    env: &dyn EnvSource,
    signal: Signal,
    suffix: &str,
) -> Option<(String, String)> {
    [
        format!("OTEL_EXPORTER_OTLP_{}_{suffix}", signal.name()),
        format!("OTEL_EXPORTER_OTLP_{suffix}"),
    ]
    .into_iter()
    .find_map(|var| {
        let v = env.get(&var)?;
        let v = v.trim();
        (!v.is_empty()).then(|| (var.clone(), v.to_owned()))
    })
}

/// Whether the signal's endpoint is `https://`.
pub fn is_https(env: &dyn EnvSource, signal: Signal) -> bool {
    setting(env, signal, "ENDPOINT")
        .is_some_and(|(_, v)| v.to_ascii_lowercase().starts_with("https://"))
}

/// `OTEL_EXPORTER_OTLP_[SIGNAL_]TIMEOUT` in milliseconds (10 s by default, as the SDK).
pub fn export_timeout(env: &dyn EnvSource, signal: Signal) -> Duration {
    setting(env, signal, "TIMEOUT")
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .map_or(Duration::from_secs(10), Duration::from_millis)
}

/// The PEM files configured for one signal.
#[derive(Default)]
pub struct TlsFiles {
    /// Extra trusted CA certificates, and the variable they came from.
    ca: Option<(String, Vec<u8>)>,
    /// Client certificate chain and key, with the certificate's variable.
    identity: Option<(String, Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for TlsFiles {
    /// The variables only: never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsFiles")
            .field("ca", &self.ca.as_ref().map(|(var, _)| var))
            .field("identity", &self.identity.as_ref().map(|(var, _, _)| var))
            .finish()
    }
}

impl TlsFiles {
    /// Reads the signal's files and checks that they parse (so both exporters fail at start,
    /// naming the variable, rather than at the first export).
    pub fn load(env: &dyn EnvSource, signal: Signal) -> Result<Self, String> {
        let read = |suffix: &str| -> Result<Option<(String, Vec<u8>)>, String> {
            match setting(env, signal, suffix) {
                None => Ok(None),
                Some((var, path)) => std::fs::read(&path)
                    .map(|pem| Some((var.clone(), pem)))
                    .map_err(|e| format!("{var}: cannot read {path}: {e}")),
            }
        };
        let ca = read("CERTIFICATE")?;
        let identity = match (read("CLIENT_CERTIFICATE")?, read("CLIENT_KEY")?) {
            (None, None) => None,
            (Some((var, cert)), Some((_, key))) => Some((var, cert, key)),
            (Some((var, _)), None) | (None, Some((var, _))) => {
                return Err(format!(
                    "{var}: a client certificate needs both OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY"
                ));
            }
        };
        let files = Self { ca, identity };
        files.ca_certificates()?;
        files.client_identity()?;
        Ok(files)
    }

    fn ca_certificates(&self) -> Result<Vec<reqwest::Certificate>, String> {
        let Some((var, ca)) = &self.ca else {
            return Ok(Vec::new());
        };
        let certs = reqwest::Certificate::from_pem_bundle(ca)
            .map_err(|e| format!("{var}: not a PEM certificate bundle: {e}"))?;
        if certs.is_empty() {
            return Err(format!("{var}: no certificate in the file"));
        }
        Ok(certs)
    }

    fn client_identity(&self) -> Result<Option<reqwest::Identity>, String> {
        let Some((var, cert, key)) = &self.identity else {
            return Ok(None);
        };
        let mut pem = cert.clone();
        pem.push(b'\n');
        pem.extend_from_slice(key);
        reqwest::Identity::from_pem(&pem)
            .map(Some)
            .map_err(|e| format!("{var}: not a PEM certificate and key: {e}"))
    }

    /// Whether any file is configured (the HTTP exporter's default client does without).
    pub fn is_empty(&self) -> bool {
        self.ca.is_none() && self.identity.is_none()
    }

    /// The gRPC exporter's TLS settings.
    pub fn grpc(&self) -> ClientTlsConfig {
        let mut tls = ClientTlsConfig::new().with_webpki_roots();
        if let Some((_, ca)) = &self.ca {
            tls = tls.ca_certificate(Certificate::from_pem(ca));
        }
        if let Some((_, cert, key)) = &self.identity {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        tls
    }

    /// A blocking HTTP client for the HTTP exporter, trusting the configured CAs and presenting
    /// the client certificate.
    pub fn http_client(&self, timeout: Duration) -> Result<reqwest::blocking::Client, String> {
        let mut b = reqwest::blocking::Client::builder().timeout(timeout);
        for c in self.ca_certificates()? {
            b = b.add_root_certificate(c);
        }
        if let Some(id) = self.client_identity()? {
            b = b.identity(id);
        }
        // The blocking client starts its own runtime, which must not happen on a runtime thread.
        std::thread::spawn(move || b.build())
            .join()
            .map_err(|_| "building the OTLP HTTP client panicked".to_owned())?
            .map_err(|e| format!("OTLP HTTP client: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    fn env(vars: &[(&str, &str)]) -> MapEnv {
        MapEnv::new(vars.iter().copied())
    }

    #[test]
    fn per_signal_variables_win_over_the_general_ones() {
        let e = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "HTTPS://collector:4317",
            ),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", " "),
        ]);
        assert!(is_https(&e, Signal::Traces));
        assert!(!is_https(&e, Signal::Metrics));
        assert_eq!(
            export_timeout(&e, Signal::Metrics),
            Duration::from_millis(2500)
        );
        assert_eq!(
            export_timeout(&env(&[]), Signal::Traces),
            Duration::from_secs(10)
        );
        assert!(TlsFiles::load(&e, Signal::Traces).unwrap().is_empty());
    }

    #[test]
    fn unreadable_unparsable_or_unpaired_files_name_their_variable() {
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("not.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let not_pem = not_pem.to_str().unwrap();

        let missing = env(&[("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem")]);
        let err = TlsFiles::load(&missing, Signal::Metrics).unwrap_err();
        assert!(
            err.starts_with("OTEL_EXPORTER_OTLP_CERTIFICATE: cannot read"),
            "{err}"
        );

        let garbage = env(&[("OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE", not_pem)]);
        let err = TlsFiles::load(&garbage, Signal::Metrics).unwrap_err();
        assert!(
            err.starts_with("OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE:"),
            "{err}"
        );
        let pair = env(&[
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", not_pem),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", not_pem),
        ]);
        let err = TlsFiles::load(&pair, Signal::Traces).unwrap_err();
        assert!(
            err.starts_with("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: not a PEM"),
            "{err}"
        );

        let key_only = env(&[("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", not_pem)]);
        let err = TlsFiles::load(&key_only, Signal::Traces).unwrap_err();
        assert!(
            err.starts_with("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY:"),
            "{err}"
        );
        assert!(err.contains("needs both"), "{err}");
    }
}
