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

use crate::upstream_proxy::{self, ProxyConnector};

/// The client type used for every upstream request.
pub type HttpClient = Client<HttpsConnector<ProxyConnector>, Full<Bytes>>;

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
pub fn build(key: &ClientKey) -> HttpClient {
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
        .wrap_connector(ProxyConnector::new(
            http,
            upstream_proxy::matcher(&key.proxy_url),
        ));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(key.idle_timeout_s))
        .pool_max_idle_per_host(key.max_idle_per_host)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(https)
}

/// Clients by connection settings; carried from one config snapshot to the next so unchanged
/// settings keep their warm pools.
#[derive(Default, Clone)]
pub struct ClientCache {
    clients: HashMap<ClientKey, Arc<HttpClient>>,
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
    pub fn get_or_build(&mut self, previous: &ClientCache, key: ClientKey) -> Arc<HttpClient> {
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
