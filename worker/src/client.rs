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
use gpt_load_common::serving_thread::{self, ServingThread};

use crate::upstream_proxy::{self, ProxyConnector, ProxyRules};

/// The hyper client under [`UpstreamClient`].
pub type HttpClient = Client<HttpsConnector<ProxyConnector>, Full<Bytes>>;

/// An upstream's response body, as hyper's client delivers it.
pub type UpstreamBody = hyper::body::Incoming;

/// Why an upstream request failed.
pub type UpstreamError = hyper_util::client::legacy::Error;

/// Gives the next `n` serving threads their own connection pools (and Redis clients); called
/// before clients are built.
pub fn reserve_thread_pools(n: usize) {
    serving_thread::reserve(n);
}

/// The client every upstream request goes through: hyper-util's connection pools and the proxy
/// rules their connections are dialled with.
///
/// Each serving thread has a pool of its own, so a request and the connection task that carries it
/// run on the same thread (no cross-thread wake-ups on the hot path); other threads (key
/// validation, the master's jobs) share one pool.
pub struct UpstreamClient {
    shared: HttpClient,
    per_thread: Box<[OnceLock<HttpClient>]>,
    connector: HttpsConnector<ProxyConnector>,
    pool: PoolSettings,
    proxy: Option<Arc<ProxyRules>>,
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
    /// Sends `req` (with a `Host` header) through the pool of serving thread `on` (the shared
    /// one elsewhere), with `Proxy-Authorization` when it goes to a proxy in absolute form.
    pub async fn request(
        &self,
        on: Option<ServingThread>,
        mut req: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<UpstreamBody>, UpstreamError> {
        if let Some(v) = self
            .proxy
            .as_ref()
            .and_then(|p| p.proxy_authorization(req.uri()))
        {
            req.headers_mut()
                .insert(http::header::PROXY_AUTHORIZATION, v);
        }
        self.pool(on).request(req).await
    }

    /// The pool of serving thread `on`, or the shared one.
    fn pool(&self, on: Option<ServingThread>) -> &HttpClient {
        match on.and_then(|t| self.per_thread.get(t.index())) {
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

/// Builds a client: HTTP/1.1 and HTTP/2 (ALPN), rustls trusting the webpki and the system roots
/// ([`crate::tls`]), TCP keep-alive, Nagle off, through `proxy_url` (or the environment's proxy)
/// when one is set.
pub fn build(key: &ClientKey) -> UpstreamClient {
    let proxy = upstream_proxy::matcher(&key.proxy_url);
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(30)));
    http.set_connect_timeout(Some(Duration::from_secs(key.connect_timeout_s)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(crate::tls::client_config())
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(ProxyConnector::new(http.clone(), proxy.clone()));
    let pool = PoolSettings {
        idle_timeout: Duration::from_secs(key.idle_timeout_s),
        max_idle_per_host: key.max_idle_per_host,
    };
    let threads = serving_thread::reserved();
    UpstreamClient {
        shared: pool.client(https.clone()),
        per_thread: (0..threads).map(|_| OnceLock::new()).collect(),
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
        let c = build(&key());
        let addr = |on: Option<usize>| c.pool(on.map(ServingThread)) as *const HttpClient as usize;
        let shared = addr(None);
        assert_eq!(addr(Some(0)), addr(Some(0)), "a thread keeps its pool");
        assert_ne!(addr(Some(0)), addr(Some(1)));
        assert_ne!(addr(Some(0)), shared);
        assert_ne!(addr(Some(1)), shared);
        // A thread numbered past the reserved pools falls back to the shared one.
        assert_eq!(addr(Some(7)), shared);
    }
}
