//! Pooled HTTP clients for upstream calls, shared by every group with the same connection settings.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use gpt_load_common::model::EffectiveConfig;

use crate::upstream_proxy::{self, ProxyConnector, ProxyRules};

/// The hyper client under [`UpstreamClient`].
pub type HttpClient = Client<HttpsConnector<ProxyConnector>, Full<Bytes>>;

/// The client every upstream request goes through: a connection pool and the proxy rules its
/// connections are dialled with.
pub struct UpstreamClient {
    client: HttpClient,
    proxy: Option<Arc<ProxyRules>>,
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
    /// Sends `req`, with `Proxy-Authorization` when it goes to a proxy in absolute form.
    pub fn request(
        &self,
        mut req: http::Request<Full<Bytes>>,
    ) -> hyper_util::client::legacy::ResponseFuture {
        if let Some(v) = self
            .proxy
            .as_ref()
            .and_then(|p| p.proxy_authorization(req.uri()))
        {
            req.headers_mut()
                .insert(http::header::PROXY_AUTHORIZATION, v);
        }
        self.client.request(req)
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
        .wrap_connector(ProxyConnector::new(http, proxy.clone()));
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(key.idle_timeout_s))
        .pool_max_idle_per_host(key.max_idle_per_host)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(https);
    UpstreamClient { client, proxy }
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
