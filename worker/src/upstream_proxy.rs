//! Upstream connections through a forward proxy, as GPT-Load makes them: the group's `proxy_url`
//! when it is a valid proxy URL, else the standard `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` /
//! `NO_PROXY` variables, else direct.
//!
//! As Go's transport does for GPT-Load, `http://` and `https://` proxies are asked for a `CONNECT`
//! tunnel to `https` upstreams, and are sent plain-http upstreams' requests themselves in absolute
//! form (`POST http://host/path`); either way `Proxy-Authorization: Basic` comes from the URL's
//! user info. `socks5://` and `socks5h://` proxies resolve the upstream's name themselves, with
//! username/password authentication from the URL. The connector yields the same stream type in
//! every case, so TLS to an `https` upstream runs over the tunnel end to end.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderValue, Uri};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::proxy::{SocksV5, Tunnel};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower::{Service, ServiceExt};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the connector yields: a TCP stream to the upstream, to it through a tunnel (itself over
/// TLS when the proxy is an `https://` one), or to an HTTP proxy that takes a plain-http
/// upstream's requests in absolute form.
pub struct ProxyStream {
    inner: MaybeHttpsStream<TokioIo<TcpStream>>,
    /// Whether requests on this connection go to a proxy in absolute form.
    absolute_form: bool,
}

impl ProxyStream {
    fn direct(inner: MaybeHttpsStream<TokioIo<TcpStream>>) -> Self {
        Self {
            inner,
            absolute_form: false,
        }
    }
}

impl Connection for ProxyStream {
    /// Marked as proxied when requests must be sent in absolute form (the client reads this), and
    /// as HTTP/2 when TLS negotiated it. Nothing else: the TCP stream's addresses, which the
    /// client would copy into every response's extensions (a map and a box per request), are not
    /// read here.
    fn connected(&self) -> Connected {
        let connected = Connected::new().proxy(self.absolute_form);
        if self.inner.connected().is_negotiated_h2() {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl hyper::rt::Read for ProxyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for ProxyStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
}

/// Variables the environment fallback reads (any of them set turns it on).
const PROXY_ENV: &[&str] = &[
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Which proxy, if any, an upstream is reached through.
pub struct ProxyRules {
    matcher: Matcher,
    /// Rules from the environment never apply to `localhost` and loopback addresses (as Go's
    /// `ProxyFromEnvironment`, which GPT-Load uses); a configured `proxy_url` applies to all.
    from_env: bool,
}

impl ProxyRules {
    fn intercept(&self, dst: &Uri) -> Option<hyper_util::client::proxy::matcher::Intercept> {
        if self.from_env && dst.host().is_some_and(is_loopback_host) {
            return None;
        }
        self.matcher.intercept(dst)
    }

    /// The `Proxy-Authorization` a request to `dst` carries itself: for a plain-http upstream sent
    /// in absolute form to an HTTP(S) proxy with credentials (tunnels authenticate in `CONNECT`).
    pub fn proxy_authorization(&self, dst: &Uri) -> Option<HeaderValue> {
        self.absolute_form_intercept(dst)?.basic_auth().cloned()
    }

    /// Whether requests to `dst` go to an HTTP(S) proxy in absolute form.
    pub fn sends_absolute_form(&self, dst: &Uri) -> bool {
        self.absolute_form_intercept(dst).is_some()
    }

    fn absolute_form_intercept(
        &self,
        dst: &Uri,
    ) -> Option<hyper_util::client::proxy::matcher::Intercept> {
        if dst.scheme_str() != Some("http") {
            return None;
        }
        self.intercept(dst)
            .filter(|i| matches!(i.uri().scheme_str(), Some("http" | "https")))
    }
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The proxy rules of one client: `None` when every upstream is reached directly.
pub fn matcher(proxy_url: &str) -> Option<Arc<ProxyRules>> {
    let configured = proxy_url.trim();
    if !configured.is_empty() {
        let m = Matcher::builder().all(configured.to_owned()).build();
        // A URL the matcher cannot use (bad syntax, unknown scheme) falls back to the
        // environment, as in GPT-Load.
        if m.intercept(&Uri::from_static("https://upstream.invalid"))
            .is_some()
        {
            return Some(Arc::new(ProxyRules {
                matcher: m,
                from_env: false,
            }));
        }
        tracing::warn!(
            "proxy_url is not a usable proxy URL; using the environment's proxy settings"
        );
    }
    PROXY_ENV
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| !s.trim().is_empty()))
        .then(|| {
            Arc::new(ProxyRules {
                matcher: Matcher::from_env(),
                from_env: true,
            })
        })
}

/// A connector that dials upstreams directly or through the proxy its [`ProxyRules`] name.
#[derive(Clone)]
pub struct ProxyConnector {
    tcp: HttpConnector,
    /// Dials `http://` proxies in the clear and `https://` proxies over TLS (HTTP/1.1 only:
    /// `CONNECT` is an HTTP/1.1 request).
    to_proxy: HttpsConnector<HttpConnector>,
    matcher: Option<Arc<ProxyRules>>,
}

impl ProxyConnector {
    pub fn new(tcp: HttpConnector, matcher: Option<Arc<ProxyRules>>) -> Self {
        let to_proxy = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(crate::tls::client_config())
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp.clone());
        Self {
            tcp,
            to_proxy,
            matcher,
        }
    }
}

impl Service<Uri> for ProxyConnector {
    type Response = ProxyStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<ProxyStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Every dial clones a ready connector in `call`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let tcp = self.tcp.clone();
        let Some(proxy) = self.matcher.as_ref().and_then(|m| m.intercept(&dst)) else {
            return Box::pin(async move {
                Ok(ProxyStream::direct(MaybeHttpsStream::Http(
                    tcp.oneshot(dst).await?,
                )))
            });
        };
        let proxy_uri = proxy.uri().clone();
        match proxy_uri.scheme_str() {
            Some("http" | "https") if dst.scheme_str() == Some("http") => {
                let to_proxy = self.to_proxy.clone();
                Box::pin(async move {
                    Ok(ProxyStream {
                        inner: to_proxy.oneshot(proxy_uri).await?,
                        absolute_form: true,
                    })
                })
            }
            Some("http" | "https") => {
                let mut tunnel = Tunnel::new(proxy_uri, self.to_proxy.clone());
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                Box::pin(async move { Ok(ProxyStream::direct(tunnel.oneshot(dst).await?)) })
            }
            Some("socks5" | "socks5h") => {
                // Like Go's dialer, the proxy resolves the upstream's name for both schemes.
                let mut socks = SocksV5::new(proxy_uri, tcp).local_dns(false);
                if let Some((user, pass)) = proxy.raw_auth() {
                    socks = socks.with_auth(user.to_owned(), pass.to_owned());
                }
                Box::pin(async move {
                    Ok(ProxyStream::direct(MaybeHttpsStream::Http(
                        socks.oneshot(dst).await?,
                    )))
                })
            }
            other => {
                let msg = format!(
                    "unsupported proxy scheme {:?} (use http, https, socks5 or socks5h)",
                    other.unwrap_or("")
                );
                Box::pin(async move { Err(msg.into()) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_proxy_url_is_used_for_every_scheme() {
        let m = matcher("http://user:pa%20ss@127.0.0.1:8080").expect("a proxy");
        for dst in ["https://api.openai.com/v1", "http://10.0.0.1:3000/v1"] {
            let i = m.intercept(&dst.parse().unwrap()).expect(dst);
            assert_eq!(i.uri(), "http://127.0.0.1:8080/");
            // "user:pa ss" in base64
            assert_eq!(
                i.basic_auth().unwrap().to_str().unwrap(),
                "Basic dXNlcjpwYSBzcw=="
            );
        }
        // Plain-http requests carry the credentials themselves (absolute form to the proxy);
        // https ones are tunnelled and authenticate in CONNECT.
        let plain: Uri = "http://10.0.0.1:3000/v1".parse().unwrap();
        let tls: Uri = "https://api.openai.com/v1".parse().unwrap();
        assert!(m.sends_absolute_form(&plain) && !m.sends_absolute_form(&tls));
        assert_eq!(
            m.proxy_authorization(&plain).unwrap(),
            "Basic dXNlcjpwYSBzcw=="
        );
        assert!(m.proxy_authorization(&tls).is_none());
        let s = matcher("socks5://u:p@127.0.0.1:1080").expect("a proxy");
        let i = s.intercept(&"https://x.test".parse().unwrap()).unwrap();
        assert_eq!(i.uri().scheme_str(), Some("socks5"));
        assert_eq!(i.raw_auth(), Some(("u", "p")));
        assert!(!s.sends_absolute_form(&plain));
        assert!(s.proxy_authorization(&plain).is_none());
    }

    #[test]
    fn environment_rules_skip_loopback_but_a_configured_proxy_does_not() {
        let env_like = ProxyRules {
            matcher: Matcher::builder()
                .all("http://127.0.0.1:3128".to_owned())
                .build(),
            from_env: true,
        };
        for local in [
            "http://localhost:8080/v1",
            "http://127.0.0.1:11434",
            "http://[::1]:9000",
        ] {
            assert!(
                env_like.intercept(&local.parse().unwrap()).is_none(),
                "{local}"
            );
        }
        assert!(
            env_like
                .intercept(&"https://api.openai.com".parse().unwrap())
                .is_some()
        );
        let configured = matcher("http://127.0.0.1:3128").unwrap();
        assert!(
            configured
                .intercept(&"http://127.0.0.1:11434".parse().unwrap())
                .is_some()
        );
    }

    #[test]
    fn unusable_proxy_urls_fall_back_to_the_environment() {
        // The test process has no proxy variables, so the fallback is a direct connection.
        if PROXY_ENV.iter().any(|v| std::env::var(v).is_ok()) {
            return;
        }
        assert!(matcher("").is_none());
        assert!(matcher("   ").is_none());
        assert!(matcher("ftp://proxy:21").is_none());
    }
}
