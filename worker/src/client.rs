//! Pooled HTTP clients for upstream calls, shared by every group with the same connection settings.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use gpt_load_common::model::EffectiveConfig;
use gpt_load_common::thread_slot;

pub use crate::h1_pool::UpstreamBody;
use crate::h1_pool::{self, H1Error, H1Settings, ThreadConns};
use crate::upstream_proxy::{self, ProxyConnector, ProxyRules};

/// The hyper client under [`UpstreamClient`].
pub type HttpClient = Client<HttpsConnector<ProxyConnector>, Full<Bytes>>;

/// Gives the next `n` serving threads their own connection pools (and Redis clients); called
/// before clients are built.
pub fn reserve_thread_pools(n: usize) {
    thread_slot::reserve(n);
}

/// Marks the current thread as serving thread `i`: its upstream requests use pool `i`.
pub(crate) fn enter_thread_pool(i: usize) {
    thread_slot::enter(i);
}

/// The client every upstream request goes through: connection pools and the proxy rules their
/// connections are dialled with.
///
/// Each serving thread has a pool of its own, so a request and the connection task that carries it
/// run on the same thread (no cross-thread wake-ups on the hot path); other threads (key
/// validation, the master's jobs) share one pool.
///
/// On a serving thread, a plain `http://` upstream that no forward proxy handles is reached over
/// the thread's own HTTP/1.1 connections ([`h1_pool`]) instead.
pub struct UpstreamClient {
    shared: HttpClient,
    per_thread: Box<[OnceLock<HttpClient>]>,
    h1: Box<[Arc<ThreadConns>]>,
    h1_settings: H1Settings,
    connector: HttpsConnector<ProxyConnector>,
    pool: PoolSettings,
    proxy: Option<Arc<ProxyRules>>,
}

/// Why an upstream request failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error(transparent)]
    Pooled(#[from] H1Error),
    #[error(transparent)]
    Shared(#[from] hyper_util::client::legacy::Error),
}

#[derive(Clone, Copy)]
struct PoolSettings {
    idle_timeout: Duration,
    max_idle_per_host: usize,
}

impl PoolSettings {
    fn client(self, connector: HttpsConnector<ProxyConnector>) -> HttpClient {
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(self.idle_timeout)
            .pool_max_idle_per_host(self.max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector)
    }
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the proxy URL: it may hold credentials.
        f.debug_struct("UpstreamClient")
            .field("proxied", &self.proxy.is_some())
            .finish()
    }
}

impl UpstreamClient {
    /// Sends `req` (with a `Host` header), with `Proxy-Authorization` when it goes to a proxy in
    /// absolute form.
    pub async fn request(
        &self,
        mut req: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<UpstreamBody>, UpstreamError> {
        if self.proxy.is_none()
            && req.uri().scheme() == Some(&http::uri::Scheme::HTTP)
            && let Some(conns) = self.h1.get(thread_slot::current())
        {
            return Ok(h1_pool::send(conns, &self.h1_settings, req).await?);
        }
        if let Some(v) = self
            .proxy
            .as_ref()
            .and_then(|p| p.proxy_authorization(req.uri()))
        {
            req.headers_mut()
                .insert(http::header::PROXY_AUTHORIZATION, v);
        }
        let resp = self.pool().request(req).await?;
        Ok(resp.map(UpstreamBody::from))
    }

    /// This thread's pool.
    fn pool(&self) -> &HttpClient {
        match self.per_thread.get(thread_slot::current()) {
            Some(c) => c.get_or_init(|| {
                // The idle allowance is shared out: all threads together keep about as many
                // idle connections per host as one pool would.
                let share = PoolSettings {
                    max_idle_per_host: self.pool.max_idle_per_host.div_ceil(self.per_thread.len()),
                    ..self.pool
                };
                share.client(self.connector.clone())
            }),
            None => &self.shared,
        }
    }

    /// Whether a request to `uri` is sent to a forward proxy itself (absolute form), so that a
    /// `407` answer is the proxy's, not the upstream's.
    pub fn sends_to_proxy(&self, uri: &http::Uri) -> bool {
        self.proxy
            .as_ref()
            .is_some_and(|p| p.sends_absolute_form(uri))
    }
}

/// What distinguishes two connection pools.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    pub connect_timeout_s: u64,
    pub idle_timeout_s: u64,
    pub max_idle_per_host: usize,
    pub proxy_url: String,
}

impl ClientKey {
    pub fn of(c: &EffectiveConfig) -> Self {
        Self {
            connect_timeout_s: c.connect_timeout_s,
            idle_timeout_s: c.idle_conn_timeout_s,
            max_idle_per_host: c.max_idle_conns_per_host,
            proxy_url: c.proxy_url.clone(),
        }
    }
}

/// Builds a client: HTTP/1.1 and HTTP/2 (ALPN), rustls with the webpki roots, TCP keep-alive,
/// Nagle off, through `proxy_url` (or the environment's proxy) when one is set.
pub fn build(key: &ClientKey) -> UpstreamClient {
    let proxy = upstream_proxy::matcher(&key.proxy_url);
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(30)));
    http.set_connect_timeout(Some(Duration::from_secs(key.connect_timeout_s)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(ProxyConnector::new(http.clone(), proxy.clone()));
    let pool = PoolSettings {
        idle_timeout: Duration::from_secs(key.idle_timeout_s),
        max_idle_per_host: key.max_idle_per_host,
    };
    let threads = thread_slot::reserved();
    UpstreamClient {
        shared: pool.client(https.clone()),
        per_thread: (0..threads).map(|_| OnceLock::new()).collect(),
        h1: (0..threads).map(|_| Arc::default()).collect(),
        h1_settings: H1Settings {
            connector: http,
            idle_timeout: pool.idle_timeout,
            // The idle allowance is shared out, as for the per-thread pools.
            max_idle: key.max_idle_per_host.div_ceil(threads.max(1)),
            resend_after_idle: h1_pool::RESEND_AFTER_IDLE,
        },
        connector: https,
        pool,
        proxy,
    }
}

/// Clients by connection settings; carried from one config snapshot to the next so unchanged
/// settings keep their warm pools.
#[derive(Default, Clone)]
pub struct ClientCache {
    clients: HashMap<ClientKey, Arc<UpstreamClient>>,
}

impl std::fmt::Debug for ClientCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCache")
            .field("clients", &self.clients.len())
            .finish()
    }
}

impl ClientCache {
    /// The client for `key`: reused from `previous` when present there, else built.
    pub fn get_or_build(&mut self, previous: &ClientCache, key: ClientKey) -> Arc<UpstreamClient> {
        if let Some(c) = self.clients.get(&key) {
            return c.clone();
        }
        let c = previous
            .clients
            .get(&key)
            .cloned()
            .unwrap_or_else(|| Arc::new(build(&key)));
        self.clients.insert(key, c.clone());
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ClientKey {
        ClientKey {
            connect_timeout_s: 5,
            idle_timeout_s: 90,
            max_idle_per_host: 8,
            proxy_url: String::new(),
        }
    }

    #[test]
    fn each_serving_thread_has_its_own_pool_and_other_threads_share_one() {
        // Process-wide; nextest runs every test in a process of its own.
        reserve_thread_pools(2);
        let c = Arc::new(build(&key()));
        let addr = |c: &UpstreamClient| c.pool() as *const HttpClient as usize;
        let shared = addr(&c);
        let on = |slot: Option<usize>| {
            let c = c.clone();
            std::thread::spawn(move || {
                if let Some(i) = slot {
                    enter_thread_pool(i);
                }
                (addr(&c), addr(&c))
            })
            .join()
            .expect("thread")
        };
        let (a0, a0_again) = on(Some(0));
        let (a1, _) = on(Some(1));
        let (other, _) = on(None);
        assert_eq!(a0, a0_again, "a thread keeps its pool");
        assert_ne!(a0, a1);
        assert_ne!(a0, shared);
        assert_ne!(a1, shared);
        assert_eq!(other, shared, "a non-serving thread uses the shared pool");
        // A thread numbered past the reserved pools falls back to the shared one.
        assert_eq!(on(Some(7)).0, shared);
    }

    #[test]
    fn plain_http_goes_over_the_serving_threads_connections_and_the_rest_over_the_pool() {
        // Process-wide; nextest runs every test in a process of its own.
        reserve_thread_pools(1);
        let server = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = server.local_addr().expect("addr");
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                server.set_nonblocking(true).expect("nonblocking");
                let l = tokio::net::TcpListener::from_std(server).expect("listener");
                while let Ok((s, _)) = l.accept().await {
                    tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
                        hyper_util::rt::TokioIo::new(s),
                        hyper::service::service_fn(|_| async {
                            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                                Bytes::from_static(b"ok"),
                            )))
                        }),
                    ));
                }
            });
        });
        let direct = Arc::new(build(&key()));
        let proxied = Arc::new(build(&ClientKey {
            // Nothing listens there: the request fails at the proxy.
            proxy_url: "http://127.0.0.1:9".into(),
            ..key()
        }));
        // Which way a request went: the response body's kind, or the error's.
        let way = |c: &Arc<UpstreamClient>, slot: Option<usize>| {
            let c = c.clone();
            std::thread::spawn(move || {
                if let Some(i) = slot {
                    enter_thread_pool(i);
                }
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let req = http::Request::builder()
                        .uri(format!("http://{addr}/v1/models"))
                        .header(http::header::HOST, addr.to_string())
                        .body(Full::new(Bytes::new()))
                        .expect("request");
                    match c.request(req).await {
                        Ok(r) if r.body().is_pooled() => "thread",
                        Ok(_) => "pool",
                        Err(UpstreamError::Pooled(_)) => "thread (failed)",
                        Err(UpstreamError::Shared(_)) => "pool (failed)",
                    }
                })
            })
            .join()
            .expect("thread")
        };
        assert_eq!(way(&direct, Some(0)), "thread");
        assert_eq!(way(&direct, None), "pool", "not a serving thread");
        assert_eq!(way(&proxied, Some(0)), "pool (failed)", "a forward proxy");
    }
}
