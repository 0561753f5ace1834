//! The data plane built in process: a [`WorkerState`] over a memory key store and a config
//! snapshot whose groups point at a [`MockUpstream`], called through [`gpt_load_worker::proxy_service`]
//! with `oneshot` — no listener, no serving threads, no database.
//!
//! ```ignore
//! let h = Harness::builder()
//!     .group(GroupSpec::openai("g").keys(["sk-a", "sk-b"]).config(json!({"max_retries": 1})))
//!     .build()
//!     .await;
//! let answer = h.fetch(h.chat("g")).await;
//! assert_eq!(answer.status, 200);
//! let logs = h.logs();
//! ```
//!
//! Records the proxy emits (log records and key events) are read from the record queue's
//! receiver with [`Harness::logs`] and [`Harness::key_events`]; a successful answer's record is
//! queued when its body has been read to the end, which [`Harness::fetch`] does.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use bytes::Bytes;
use gpt_load_common::keystore::{
    AnyKeyStore, KeyEvent, KeyMaterial, KeyStore, MemoryKeyStore, PoolCounts, PoolKey,
};
use gpt_load_common::log_record::{Record, RequestLogRecord, record_queue};
use gpt_load_common::model::{ChannelType, GroupType, KeyStatus, SystemSettings, Upstream};
use gpt_load_common::snapshot::access::AccessKeyDef;
use gpt_load_common::snapshot::{ConfigSnapshot, GroupDef, SubGroupRef, digest};
use gpt_load_integration_tests::mock_upstream::MockUpstream;
use gpt_load_worker::{ProxyLimits, WorkerState};
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt as _;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tower::ServiceExt as _;

/// The proxy key every group of the harness accepts.
pub const PROXY_KEY: &str = "sk-client-proxy-key-for-tests-0001";
/// A global proxy key (system setting `proxy_keys`): valid for every group.
pub const GLOBAL_KEY: &str = "sk-global-proxy-key-abcdef123456";
/// The client address the requests come from (`ConnectInfo`, as the serving loop inserts it).
pub const CLIENT: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 40_000);

/// One group of the snapshot: its definition and the upstream keys loaded into the store.
pub struct GroupSpec {
    name: String,
    channel: ChannelType,
    keys: Vec<String>,
    config: Value,
    upstream: Option<String>,
    /// Aggregate members by name, with their weights.
    members: Vec<(String, i64)>,
    extra: Vec<Edit>,
}

/// A change to a group's definition, applied when the harness is built.
type Edit = Box<dyn FnOnce(&mut GroupDef)>;

impl GroupSpec {
    /// A standard group of `channel` on the mock, with no keys and the default config.
    pub fn new(name: &str, channel: ChannelType) -> Self {
        Self {
            name: name.to_owned(),
            channel,
            keys: Vec::new(),
            config: json!({}),
            upstream: None,
            members: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// An aggregate group over the named standard groups (declared in the same harness), with
    /// their weights.
    pub fn aggregate<const N: usize>(name: &str, members: [(&str, i64); N]) -> Self {
        let mut spec = Self::openai(name);
        spec.members = members.iter().map(|(m, w)| ((*m).to_owned(), *w)).collect();
        spec
    }

    pub fn openai(name: &str) -> Self {
        Self::new(name, ChannelType::OpenAi)
    }

    pub fn anthropic(name: &str) -> Self {
        Self::new(name, ChannelType::Anthropic)
    }

    pub fn gemini(name: &str) -> Self {
        Self::new(name, ChannelType::Gemini)
    }

    /// Upstream keys, in rotation order (ids ascend in this order).
    pub fn keys<const N: usize>(mut self, keys: [&str; N]) -> Self {
        self.keys = keys.iter().map(|k| (*k).to_owned()).collect();
        self
    }

    /// The group's `config` overrides (`max_retries`, `blacklist_threshold`, …).
    pub fn config(mut self, config: Value) -> Self {
        self.config = config;
        self
    }

    /// Sends to this base URL instead of the mock's.
    pub fn upstream(mut self, url: impl Into<String>) -> Self {
        self.upstream = Some(url.into());
        self
    }

    /// Any other change to the definition (header rules, redirects, overrides).
    pub fn with(mut self, f: impl FnOnce(&mut GroupDef) + 'static) -> Self {
        self.extra.push(Box::new(f));
        self
    }
}

/// Builds a [`Harness`].
#[derive(Default)]
pub struct HarnessBuilder {
    groups: Vec<GroupSpec>,
    limits: ProxyLimits,
    access_keys: Vec<AccessKeyDef>,
}

/// An access key definition for `key` with no restriction (edit the fields to restrict it).
pub fn access_key(id: i64, key: &str) -> AccessKeyDef {
    AccessKeyDef {
        id,
        name: format!("key-{id}"),
        digest: digest(key),
        enabled: true,
        expires_at: None,
        allowed_ips: Vec::new(),
        groups: Vec::new(),
        models: Vec::new(),
        protocols: Vec::new(),
    }
}

impl GroupSpec {
    /// The models the group serves on the native routes.
    pub fn models<const N: usize>(self, models: [&str; N]) -> Self {
        let models: Vec<String> = models.iter().map(|m| (*m).to_owned()).collect();
        self.with(move |d| d.models = models)
    }

    /// The group's tier and weight on the native routes.
    pub fn tier(self, priority: i64, weight: i64) -> Self {
        self.with(move |d| {
            d.priority = priority;
            d.weight = weight;
        })
    }
}

impl HarnessBuilder {
    /// An access key in the snapshot.
    pub fn access_key(mut self, def: AccessKeyDef) -> Self {
        self.access_keys.push(def);
        self
    }

    pub fn group(mut self, spec: GroupSpec) -> Self {
        self.groups.push(spec);
        self
    }

    /// Starts the mock, loads the keys and builds the worker state.
    pub async fn build(self) -> Harness {
        let mock = MockUpstream::start().await;
        let store = MemoryKeyStore::new();
        let mut defs = Vec::new();
        let mut groups = BTreeMap::new();
        // Ids by declaration order, from 1.
        let ids: BTreeMap<String, i64> = self
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.name.clone(), i as i64 + 1))
            .collect();
        for spec in self.groups {
            let group_id = ids[&spec.name];
            let aggregate = !spec.members.is_empty();
            let mut def = GroupDef {
                id: group_id,
                name: spec.name.clone(),
                display_name: String::new(),
                group_type: if aggregate {
                    GroupType::Aggregate
                } else {
                    GroupType::Standard
                },
                channel_type: spec.channel,
                upstreams: if aggregate {
                    Vec::new()
                } else {
                    vec![Upstream {
                        url: spec.upstream.unwrap_or_else(|| mock.url()),
                        weight: 1,
                    }]
                },
                test_model: "test-model".into(),
                validation_endpoint: String::new(),
                param_overrides: serde_json::Map::new(),
                header_rules: Vec::new(),
                model_redirect_rules: BTreeMap::new(),
                model_redirect_strict: false,
                proxy_keys: vec![PROXY_KEY.to_owned()],
                config: spec.config,
                sub_groups: spec
                    .members
                    .iter()
                    .map(|(m, weight)| SubGroupRef {
                        group_id: *ids
                            .get(m)
                            .unwrap_or_else(|| panic!("aggregate member {m} is not declared")),
                        weight: *weight,
                    })
                    .collect(),
                models: Vec::new(),
                priority: 0,
                weight: 1,
            };
            for f in spec.extra {
                f(&mut def);
            }
            let pool = spec
                .keys
                .iter()
                .enumerate()
                .map(|(k, value)| PoolKey {
                    material: Arc::new(KeyMaterial {
                        id: group_id * 1000 + k as i64 + 1,
                        group_id,
                        value: value.clone(),
                        stored: value.clone(),
                        hash: format!("hash-of-{value}"),
                    }),
                    status: KeyStatus::Active,
                    failure_count: 0,
                })
                .collect::<Vec<_>>();
            let ids = pool
                .iter()
                .map(|k| (k.material.value.clone(), k.material.id))
                .collect();
            store
                .load_group(group_id, pool)
                .await
                .expect("the memory store loads any group");
            groups.insert(spec.name, (group_id, ids));
            defs.push(def);
        }
        let (settings, _) = SystemSettings::from_rows([("proxy_keys", GLOBAL_KEY)]);
        let snapshot =
            Arc::new(ConfigSnapshot::new(1, settings, defs).with_access_keys(self.access_keys));
        let (records, rx) = record_queue(4096);
        let state = WorkerState::new(
            snapshot,
            Arc::new(AnyKeyStore::Memory(store)),
            records,
            self.limits,
        );
        Harness {
            mock,
            state,
            groups,
            queue: Mutex::new(Queue {
                rx,
                logs: Vec::new(),
                keys: Vec::new(),
            }),
        }
    }
}

struct Queue {
    rx: mpsc::Receiver<Record>,
    logs: Vec<RequestLogRecord>,
    keys: Vec<KeyEvent>,
}

impl Queue {
    fn drain(&mut self) {
        while let Ok(r) = self.rx.try_recv() {
            match r {
                Record::Log(l) => self.logs.push(*l),
                Record::Key(k) => self.keys.push(k),
            }
        }
    }
}

/// The worker's proxy service in process, with its mock upstream and record queue.
pub struct Harness {
    pub mock: MockUpstream,
    pub state: WorkerState,
    /// Group name → (id, key value → key id).
    groups: BTreeMap<String, (i64, BTreeMap<String, i64>)>,
    queue: Mutex<Queue>,
}

/// A whole answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A request to the proxy under construction.
pub struct Req {
    builder: http::request::Builder,
    body: Body,
}

impl Req {
    pub fn new(method: Method, uri: &str) -> Self {
        Self {
            builder: Request::builder().method(method).uri(uri),
            body: Body::empty(),
        }
    }

    pub fn get(uri: &str) -> Self {
        Self::new(Method::GET, uri)
    }

    pub fn post(uri: &str) -> Self {
        Self::new(Method::POST, uri)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn json(mut self, v: &Value) -> Self {
        let bytes = serde_json::to_vec(v).unwrap();
        self.builder = self
            .builder
            .header("content-type", "application/json")
            .header("content-length", bytes.len());
        self.body = Body::from(bytes);
        self
    }

    fn build(self) -> Request {
        let mut req = self.builder.body(self.body).unwrap();
        req.extensions_mut().insert(ConnectInfo(CLIENT));
        req
    }
}

impl Harness {
    pub fn builder() -> HarnessBuilder {
        HarnessBuilder::default()
    }

    /// One standard group on the mock with these keys and config overrides.
    pub async fn openai<const N: usize>(name: &str, keys: [&str; N], config: Value) -> Harness {
        Self::builder()
            .group(GroupSpec::openai(name).keys(keys).config(config))
            .build()
            .await
    }

    /// A chat completion for `group` with the group's proxy key: `hello` to `gpt-4o-mini`.
    pub fn chat(&self, group: &str) -> Req {
        Req::post(&format!("/proxy/{group}/v1/chat/completions"))
            .bearer(PROXY_KEY)
            .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}))
    }

    /// Calls the proxy service; the answer's body is not read.
    pub async fn call(&self, req: Req) -> Response {
        let service = gpt_load_worker::proxy_service(self.state.clone(), None);
        match service.oneshot(req.build()).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }

    /// Calls the proxy service and reads the whole answer.
    pub async fn fetch(&self, req: Req) -> Answer {
        let (parts, body) = self.call(req).await.into_parts();
        let body = body.collect().await.expect("the answer's body").to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// Sends `n` chat requests to `group`; their statuses.
    pub async fn chats(&self, group: &str, n: usize) -> Vec<u16> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.fetch(self.chat(group)).await.status.as_u16());
        }
        out
    }

    /// Every log record the proxy has queued so far, oldest first.
    pub fn logs(&self) -> Vec<RequestLogRecord> {
        let mut q = self.queue.lock();
        q.drain();
        q.logs.clone()
    }

    /// Every key event the proxy has queued so far, oldest first.
    pub fn key_events(&self) -> Vec<KeyEvent> {
        let mut q = self.queue.lock();
        q.drain();
        q.keys.clone()
    }

    /// The id of `group`.
    pub fn group_id(&self, group: &str) -> i64 {
        self.groups[group].0
    }

    /// The id of `key` in `group`.
    pub fn key_id(&self, group: &str, key: &str) -> i64 {
        self.groups[group].1[key]
    }

    /// Active, invalid and cooling keys of `group` in the key store.
    pub async fn counts(&self, group: &str) -> PoolCounts {
        self.state
            .0
            .store
            .counts(self.group_id(group))
            .await
            .unwrap()
    }
}

/// An address nothing listens on: bound, then released.
pub async fn closed_port_url() -> String {
    let l = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}
