//! The data plane's state: the current runtime (config snapshot plus everything derived from it,
//! swapped atomically), the key store, the record queue and the limits.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use gpt_load_common::keystore::AnyKeyStore;
use gpt_load_common::log_record::RecordSender;
use gpt_load_common::snapshot::{ConfigSnapshot, GroupSnapshot};
use ipnet::IpNet;
use tokio::sync::Semaphore;

use crate::client::{ClientCache, ClientKey, UpstreamClient};
use crate::rules::{self, CompiledRule};
pub use crate::upstream_base::UpstreamBase;
use crate::weighted::Weighted;

/// A group ready to serve.
#[derive(Debug)]
pub struct GroupRuntime {
    pub group: Arc<GroupSnapshot>,
    pub upstreams: Weighted<UpstreamBase>,
    /// Aggregate members (group ids) by weight.
    pub members: Weighted<i64>,
    pub rules: Vec<CompiledRule>,
    pub client: Arc<UpstreamClient>,
    /// This group's metric handles (resolved once per snapshot).
    pub metrics: Arc<gpt_load_common::metrics::GroupMetrics>,
}

/// The groups a native-route request may go to, best tier first; each tier picked in smooth
/// weighted round-robin.
#[derive(Debug)]
pub struct RouteTable {
    pub tiers: Vec<Weighted<i64>>,
}

impl RouteTable {
    /// The tiers of the groups `eligible` accepts, by priority (lower first), by weight within
    /// a tier (a weight of 0 takes no traffic).
    pub fn build(
        snapshot: &ConfigSnapshot,
        mut eligible: impl FnMut(&GroupSnapshot) -> bool,
    ) -> Self {
        let mut found: Vec<(i64, i64, i64)> = snapshot
            .groups()
            .iter()
            .filter(|g| !g.is_aggregate() && eligible(g))
            .map(|g| (g.def.priority, g.id(), g.def.weight))
            .collect();
        found.sort_unstable();
        let mut tiers = Vec::new();
        let mut rest = found.as_slice();
        while let Some((priority, _, _)) = rest.first() {
            let n = rest.iter().take_while(|(p, _, _)| p == priority).count();
            let tier = Weighted::new(rest[..n].iter().map(|(_, id, w)| (*id, *w)).collect());
            if !tier.is_empty() {
                tiers.push(tier);
            }
            rest = &rest[n..];
        }
        Self { tiers }
    }

    pub fn is_empty(&self) -> bool {
        self.tiers.is_empty()
    }

    /// The next group to try: from the best tier with one not in `exhausted`.
    pub fn pick(&self, mut usable: impl FnMut(i64) -> bool) -> Option<i64> {
        self.tiers
            .iter()
            .find_map(|t| t.pick_where(|id| usable(*id)).copied())
    }
}

/// What a native route's candidates depend on besides the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteScope {
    /// The channel types that serve the route, as a bit set.
    pub channels: u8,
    /// The access key whose filters apply; `None` for a global proxy key.
    pub access_key: Option<i64>,
}

/// Cached route tables per runtime; past this many, a scope's cache starts over (the model is the
/// client's string, so the set of keys is the clients' to grow).
const MAX_ROUTES: usize = 4096;

/// A config snapshot with everything derived from it.
#[derive(Debug)]
pub struct Runtime {
    pub snapshot: Arc<ConfigSnapshot>,
    /// When this snapshot was swapped in.
    pub arrived: std::time::Instant,
    by_name: HashMap<String, Arc<GroupRuntime>>,
    by_id: HashMap<i64, Arc<GroupRuntime>>,
    clients: ClientCache,
    /// Route tables by scope, then by model (looked up by `&str`: no allocation per request).
    routes: parking_lot::RwLock<HashMap<RouteScope, HashMap<String, Arc<RouteTable>>>>,
}

impl Runtime {
    /// Derives a runtime; HTTP clients with unchanged settings are taken from `previous`.
    pub fn build(snapshot: Arc<ConfigSnapshot>, previous: Option<&Runtime>) -> Self {
        let empty = ClientCache::default();
        let prev_clients = previous.map_or(&empty, |p| &p.clients);
        let mut clients = ClientCache::default();
        let mut by_name = HashMap::new();
        let mut by_id = HashMap::new();
        for g in snapshot.groups() {
            let upstreams = Weighted::new(
                g.def
                    .upstreams
                    .iter()
                    .filter_map(|u| UpstreamBase::parse(&u.url).map(|b| (b, u.weight)))
                    .collect(),
            );
            let members = Weighted::new(
                g.def
                    .sub_groups
                    .iter()
                    .map(|s| (s.group_id, s.weight))
                    .collect(),
            );
            let client = clients.get_or_build(prev_clients, ClientKey::of(&g.config));
            let rt = Arc::new(GroupRuntime {
                group: g.clone(),
                upstreams,
                members,
                rules: rules::compile(&g.def.header_rules),
                client,
                metrics: gpt_load_common::metrics::metrics()
                    .group(&g.def.name, g.def.channel_type.as_str()),
            });
            by_name.insert(g.def.name.clone(), rt.clone());
            by_id.insert(g.def.id, rt);
        }
        Self {
            snapshot,
            arrived: std::time::Instant::now(),
            by_name,
            by_id,
            clients,
            routes: parking_lot::RwLock::new(HashMap::new()),
        }
    }

    /// The route table for `key`, built with `eligible` on first use. Tables are kept with the
    /// runtime (a new snapshot starts empty), so the weighted rotation continues across requests;
    /// empty tables are not kept.
    pub fn route_table(
        &self,
        scope: RouteScope,
        model: &str,
        eligible: impl FnMut(&GroupSnapshot) -> bool,
    ) -> Arc<RouteTable> {
        if let Some(t) = self.routes.read().get(&scope).and_then(|m| m.get(model)) {
            return t.clone();
        }
        let table = Arc::new(RouteTable::build(&self.snapshot, eligible));
        if !table.is_empty() {
            let mut routes = self.routes.write();
            let by_model = routes.entry(scope).or_default();
            if by_model.len() >= MAX_ROUTES {
                by_model.clear();
            }
            return by_model.entry(model.to_owned()).or_insert(table).clone();
        }
        table
    }

    pub fn group(&self, name: &str) -> Option<&Arc<GroupRuntime>> {
        self.by_name.get(name)
    }

    pub fn group_by_id(&self, id: i64) -> Option<&Arc<GroupRuntime>> {
        self.by_id.get(&id)
    }
}

/// Limits of the proxy.
#[derive(Debug, Clone)]
pub struct ProxyLimits {
    pub max_body_bytes: usize,
    pub read_timeout: Duration,
    pub max_concurrent: usize,
    pub trusted_proxies: Vec<IpNet>,
}

impl ProxyLimits {
    /// The limits a node's configuration sets.
    pub fn from_config(cfg: &gpt_load_common::config::StaticConfig) -> Self {
        Self {
            max_body_bytes: cfg.max_request_body_bytes,
            read_timeout: cfg.read_timeout,
            max_concurrent: cfg.max_concurrent_requests,
            trusted_proxies: cfg.trusted_proxies.clone(),
        }
    }
}

impl Default for ProxyLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 32 * 1024 * 1024,
            read_timeout: Duration::from_secs(60),
            max_concurrent: 100,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Shared state of the data plane; cheap to clone.
#[derive(Clone, Debug)]
pub struct WorkerState(pub Arc<WorkerInner>);

#[derive(Debug)]
pub struct WorkerInner {
    pub runtime: ArcSwap<Runtime>,
    pub store: Arc<AnyKeyStore>,
    pub records: RecordSender,
    pub limits: ProxyLimits,
    pub limiter: Arc<Semaphore>,
    /// Failed proxy-key and integration-info attempts per client address.
    pub throttle: crate::throttle::FailureThrottle,
    /// Serialises runtime rebuilds so client reuse sees the latest previous runtime.
    publish: parking_lot::Mutex<()>,
}

impl WorkerState {
    pub fn new(
        snapshot: Arc<ConfigSnapshot>,
        store: Arc<AnyKeyStore>,
        records: RecordSender,
        limits: ProxyLimits,
    ) -> Self {
        let runtime = Runtime::build(snapshot, None);
        Self(Arc::new(WorkerInner {
            runtime: ArcSwap::from_pointee(runtime),
            store,
            records,
            limiter: Arc::new(Semaphore::new(limits.max_concurrent)),
            throttle: crate::throttle::FailureThrottle::default(),
            limits,
            publish: parking_lot::Mutex::new(()),
        }))
    }

    /// Swaps in a new snapshot (older versions than the current one are ignored).
    pub fn publish(&self, snapshot: Arc<ConfigSnapshot>) {
        let _g = self.0.publish.lock();
        let current = self.0.runtime.load_full();
        if snapshot.version < current.snapshot.version {
            return;
        }
        let next = Runtime::build(snapshot, Some(&current));
        self.0.runtime.store(Arc::new(next));
    }

    pub fn runtime(&self) -> Arc<Runtime> {
        self.0.runtime.load_full()
    }

    pub fn snapshot(&self) -> Arc<ConfigSnapshot> {
        self.0.runtime.load().snapshot.clone()
    }
}
