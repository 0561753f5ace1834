//! Process metrics (`deploy/METRICS.md`): counters and histograms updated on the request path
//! with plain atomics through per-group handles resolved once per config snapshot, rendered in
//! the Prometheus text format on demand. Labels are low-cardinality only: group, channel, and
//! fixed enumerations — never a key or a raw path.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::RwLock;

/// Histogram bucket upper bounds, in seconds.
pub const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// A cumulative histogram of durations.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum{{{labels}}} {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// How a proxied request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success = 0,
    Retried = 1,
    Failed = 2,
}
const OUTCOMES: [&str; 3] = ["success", "retried", "failed"];

impl Outcome {
    /// The label value (`success`, `retried`, `failed`).
    pub fn as_str(self) -> &'static str {
        OUTCOMES[self as usize]
    }
}
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Why an attempt was retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    Status = 0,
    Transport = 1,
    RateLimited = 2,
}
const RETRY_REASONS: [&str; 3] = ["status", "transport", "rate_limited"];

/// A key state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEventKind {
    Failure = 0,
    Blacklisted = 1,
    Cooldown = 2,
    Restored = 3,
}
const KEY_EVENTS: [&str; 4] = ["failure", "blacklisted", "cooldown", "restored"];

/// OpenTelemetry histograms of one `(group, channel)` (only when OTLP export is on).
struct OtelGroup {
    request: opentelemetry::metrics::Histogram<f64>,
    upstream: opentelemetry::metrics::Histogram<f64>,
    ttfb: opentelemetry::metrics::Histogram<f64>,
    attrs: [opentelemetry::KeyValue; 2],
}

impl std::fmt::Debug for OtelGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OtelGroup")
    }
}

/// Metrics of one `(group, channel)`.
#[derive(Debug)]
pub struct GroupMetrics {
    group: String,
    raw_group: String,
    channel: &'static str,
    otel: Option<OtelGroup>,
    requests: [[AtomicU64; 3]; 5],
    pub request_duration: Histogram,
    pub upstream_duration: Histogram,
    pub ttfb: Histogram,
    retries: [AtomicU64; 3],
    key_selections: AtomicU64,
    key_events: [AtomicU64; 4],
    tokens: [AtomicU64; 2],
}

impl GroupMetrics {
    fn new(group: &str, channel: &'static str) -> Self {
        let otel = OTEL.get().map(|o| OtelGroup {
            request: o.request.clone(),
            upstream: o.upstream.clone(),
            ttfb: o.ttfb.clone(),
            attrs: [
                opentelemetry::KeyValue::new("group", group.to_owned()),
                opentelemetry::KeyValue::new("channel", channel),
            ],
        });
        Self {
            group: escape(group),
            raw_group: group.to_owned(),
            channel,
            otel,
            requests: Default::default(),
            request_duration: Histogram::default(),
            upstream_duration: Histogram::default(),
            ttfb: Histogram::default(),
            retries: Default::default(),
            key_selections: AtomicU64::new(0),
            key_events: Default::default(),
            tokens: Default::default(),
        }
    }

    /// A client request took `d` until its response headers.
    pub fn observe_request(&self, d: Duration) {
        self.request_duration.observe(d);
        if let Some(o) = &self.otel {
            o.request.record(d.as_secs_f64(), &o.attrs);
        }
    }

    /// An upstream attempt took `d` until its response headers.
    pub fn observe_upstream(&self, d: Duration) {
        self.upstream_duration.observe(d);
        if let Some(o) = &self.otel {
            o.upstream.record(d.as_secs_f64(), &o.attrs);
        }
    }

    /// A successful attempt's first body byte came after `d`.
    pub fn observe_ttfb(&self, d: Duration) {
        self.ttfb.observe(d);
        if let Some(o) = &self.otel {
            o.ttfb.record(d.as_secs_f64(), &o.attrs);
        }
    }

    pub fn request(&self, status: u16, outcome: Outcome) {
        let class = usize::from((status / 100).clamp(1, 5)) - 1;
        self.requests[class][outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn retry(&self, reason: RetryReason) {
        self.retries[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn key_selected(&self) {
        self.key_selections.fetch_add(1, Ordering::Relaxed);
    }

    pub fn key_event(&self, e: KeyEventKind, n: u64) {
        self.key_events[e as usize].fetch_add(n, Ordering::Relaxed);
    }

    pub fn tokens(&self, prompt: u64, completion: u64) {
        if prompt > 0 {
            self.tokens[0].fetch_add(prompt, Ordering::Relaxed);
        }
        if completion > 0 {
            self.tokens[1].fetch_add(completion, Ordering::Relaxed);
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The process registry.
#[derive(Debug, Default)]
pub struct Metrics {
    groups: RwLock<HashMap<(String, &'static str), Arc<GroupMetrics>>>,
    /// Whether token usage is scanned from response bodies (only when metrics are exported).
    tokens_enabled: std::sync::atomic::AtomicBool,
    pub redis_errors: AtomicU64,
    pub database_errors: AtomicU64,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// The process's metrics (telemetry is the one global state).
pub fn metrics() -> &'static Metrics {
    METRICS.get_or_init(Metrics::default)
}

struct OtelInstruments {
    request: opentelemetry::metrics::Histogram<f64>,
    upstream: opentelemetry::metrics::Histogram<f64>,
    ttfb: opentelemetry::metrics::Histogram<f64>,
    _observables: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

static OTEL: OnceLock<OtelInstruments> = OnceLock::new();
static GAUGES: OnceLock<RwLock<Gauges>> = OnceLock::new();

/// The latest scrape-time values, for OTLP export (refreshed by the process every few seconds).
pub fn publish_gauges(g: Gauges) {
    *GAUGES
        .get_or_init(|| RwLock::new(Gauges::default()))
        .write() = g;
}

fn with_gauges<T>(f: impl FnOnce(&Gauges) -> T) -> T {
    f(&GAUGES.get_or_init(|| RwLock::new(Gauges::default())).read())
}

/// Registers the OpenTelemetry instruments mirroring `/metrics` (call once, before any group
/// handle is created).
pub fn install_otel(meter: &opentelemetry::metrics::Meter) {
    use opentelemetry::KeyValue;
    let hist = |name: &'static str, desc: &'static str| {
        meter
            .f64_histogram(name)
            .with_unit("s")
            .with_description(desc)
            .with_boundaries(BUCKETS.to_vec())
            .build()
    };
    let request = hist(
        "gpt_load_request_duration_seconds",
        "Client request until the response headers (all attempts).",
    );
    let upstream = hist(
        "gpt_load_upstream_duration_seconds",
        "One upstream attempt until its response headers.",
    );
    let ttfb = hist(
        "gpt_load_upstream_ttfb_seconds",
        "One successful attempt until the first body byte.",
    );
    let groups =
        || -> Vec<Arc<GroupMetrics>> { metrics().groups.read().values().cloned().collect() };
    let gc = |m: &GroupMetrics| {
        [
            KeyValue::new("group", m.raw_group.clone()),
            KeyValue::new("channel", m.channel),
        ]
    };
    let mut obs: Vec<Box<dyn std::any::Any + Send + Sync>> = Vec::new();
    obs.push(Box::new(
        meter
            .u64_observable_counter("gpt_load_requests_total")
            .with_description("Proxied requests by final result.")
            .with_callback(move |o| {
                for m in groups() {
                    let [g, c] = gc(&m);
                    for (ci, class) in STATUS_CLASSES.iter().enumerate() {
                        for (oi, outcome) in OUTCOMES.iter().enumerate() {
                            let v = m.requests[ci][oi].load(Ordering::Relaxed);
                            if v > 0 {
                                o.observe(
                                    v,
                                    &[
                                        g.clone(),
                                        c.clone(),
                                        KeyValue::new("status_class", *class),
                                        KeyValue::new("outcome", *outcome),
                                    ],
                                );
                            }
                        }
                    }
                }
            })
            .build(),
    ));
    obs.push(Box::new(
        meter
            .u64_observable_counter("gpt_load_retries_total")
            .with_description("Attempts retried on another key.")
            .with_callback(move |o| {
                for m in groups() {
                    let [g, c] = gc(&m);
                    for (i, reason) in RETRY_REASONS.iter().enumerate() {
                        o.observe(
                            m.retries[i].load(Ordering::Relaxed),
                            &[g.clone(), c.clone(), KeyValue::new("reason", *reason)],
                        );
                    }
                }
            })
            .build(),
    ));
    obs.push(Box::new(
        meter
            .u64_observable_counter("gpt_load_key_selections_total")
            .with_description("Keys handed out for attempts.")
            .with_callback(move |o| {
                for m in groups() {
                    o.observe(
                        m.key_selections.load(Ordering::Relaxed),
                        &[KeyValue::new("group", m.raw_group.clone())],
                    );
                }
            })
            .build(),
    ));
    obs.push(Box::new(
        meter
            .u64_observable_counter("gpt_load_key_events_total")
            .with_description("Key state changes.")
            .with_callback(move |o| {
                for m in groups() {
                    for (i, event) in KEY_EVENTS.iter().enumerate() {
                        o.observe(
                            m.key_events[i].load(Ordering::Relaxed),
                            &[
                                KeyValue::new("group", m.raw_group.clone()),
                                KeyValue::new("event", *event),
                            ],
                        );
                    }
                }
            })
            .build(),
    ));
    obs.push(Box::new(
        meter
            .u64_observable_counter("gpt_load_tokens_total")
            .with_description("Tokens the upstream reported in usage.")
            .with_callback(move |o| {
                for m in groups() {
                    let [g, c] = gc(&m);
                    for (i, kind) in ["prompt", "completion"].iter().enumerate() {
                        o.observe(
                            m.tokens[i].load(Ordering::Relaxed),
                            &[g.clone(), c.clone(), KeyValue::new("kind", *kind)],
                        );
                    }
                }
            })
            .build(),
    ));
    for (name, desc, pick) in [
        ("gpt_load_redis_errors_total", "Failed Redis operations.", 0),
        (
            "gpt_load_database_errors_total",
            "Failed database operations.",
            1,
        ),
        (
            "gpt_load_records_dropped_total",
            "Request records dropped because the queue was full.",
            2,
        ),
    ] {
        obs.push(Box::new(
            meter
                .u64_observable_counter(name)
                .with_description(desc)
                .with_callback(move |o| {
                    let v = match pick {
                        0 => metrics().redis_errors.load(Ordering::Relaxed),
                        1 => metrics().database_errors.load(Ordering::Relaxed),
                        _ => with_gauges(|g| g.records_dropped),
                    };
                    o.observe(v, &[]);
                })
                .build(),
        ));
    }
    obs.push(Box::new(
        meter
            .u64_observable_gauge("gpt_load_keys")
            .with_description("Keys of each group by state.")
            .with_callback(move |o| {
                with_gauges(|g| {
                    for (group, a, i, c) in &g.keys {
                        for (state, v) in [("active", a), ("invalid", i), ("cooling", c)] {
                            o.observe(
                                *v,
                                &[
                                    KeyValue::new("group", group.clone()),
                                    KeyValue::new("state", state),
                                ],
                            );
                        }
                    }
                });
            })
            .build(),
    ));
    for (name, desc, pick) in [
        (
            "gpt_load_in_flight_requests",
            "Proxied requests in progress.",
            0,
        ),
        (
            "gpt_load_record_queue_depth",
            "Request records waiting to be written or pushed.",
            1,
        ),
        (
            "gpt_load_snapshot_version",
            "Version of the config snapshot being served.",
            2,
        ),
        (
            "gpt_load_workers_connected",
            "Workers with an open snapshot stream.",
            3,
        ),
        (
            "gpt_load_records_stream_pending",
            "Records in the Redis stream not yet written.",
            4,
        ),
    ] {
        obs.push(Box::new(
            meter
                .u64_observable_gauge(name)
                .with_description(desc)
                .with_callback(move |o| {
                    let v = with_gauges(|g| match pick {
                        0 => Some(g.in_flight),
                        1 => Some(g.record_queue_depth),
                        2 => Some(g.snapshot_version),
                        3 => g.workers_connected,
                        _ => g.records_stream_pending,
                    });
                    if let Some(v) = v {
                        o.observe(v, &[]);
                    }
                })
                .build(),
        ));
    }
    obs.push(Box::new(
        meter
            .f64_observable_gauge("gpt_load_snapshot_age_seconds")
            .with_description("Seconds since the served snapshot arrived.")
            .with_callback(move |o| {
                if let Some(a) = with_gauges(|g| g.snapshot_age_seconds) {
                    o.observe(a, &[]);
                }
            })
            .build(),
    ));
    obs.push(Box::new(
        meter
            .u64_observable_gauge("gpt_load_build_info")
            .with_description("Build and role of the process.")
            .with_callback(move |o| {
                let role = with_gauges(|g| g.role);
                o.observe(
                    1,
                    &[
                        KeyValue::new("version", crate::VERSION),
                        KeyValue::new("role", role),
                    ],
                );
            })
            .build(),
    ));
    let _ = OTEL.set(OtelInstruments {
        request,
        upstream,
        ttfb,
        _observables: obs,
    });
}

/// Values read at scrape time.
#[derive(Debug, Default, Clone)]
pub struct Gauges {
    pub role: &'static str,
    pub in_flight: u64,
    pub record_queue_depth: u64,
    pub records_dropped: u64,
    pub snapshot_version: u64,
    pub snapshot_age_seconds: Option<f64>,
    pub workers_connected: Option<u64>,
    pub records_stream_pending: Option<u64>,
    /// `(group, active, invalid, cooling)`.
    pub keys: Vec<(String, u64, u64, u64)>,
}

impl Metrics {
    /// The handle of a `(group, channel)`; resolve it once, not per request.
    pub fn group(&self, group: &str, channel: &'static str) -> Arc<GroupMetrics> {
        if let Some(m) = self.groups.read().get(&(group.to_owned(), channel)) {
            return m.clone();
        }
        self.groups
            .write()
            .entry((group.to_owned(), channel))
            .or_insert_with(|| Arc::new(GroupMetrics::new(group, channel)))
            .clone()
    }

    /// Turns on scanning of response bodies for token usage.
    pub fn enable_tokens(&self, on: bool) {
        self.tokens_enabled.store(on, Ordering::Relaxed);
    }

    pub fn tokens_enabled(&self) -> bool {
        self.tokens_enabled.load(Ordering::Relaxed)
    }

    pub fn redis_error(&self) {
        self.redis_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn database_error(&self) {
        self.database_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let mut groups: Vec<Arc<GroupMetrics>> = self.groups.read().values().cloned().collect();
        groups.sort_by(|a, b| (a.group.as_str(), a.channel).cmp(&(b.group.as_str(), b.channel)));
        let head = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };

        head(
            &mut out,
            "gpt_load_requests_total",
            "counter",
            "Proxied requests by final result.",
        );
        for m in &groups {
            for (c, class) in STATUS_CLASSES.iter().enumerate() {
                for (o, outcome) in OUTCOMES.iter().enumerate() {
                    let v = m.requests[c][o].load(Ordering::Relaxed);
                    if v > 0 {
                        let _ = writeln!(
                            out,
                            "gpt_load_requests_total{{group=\"{}\",channel=\"{}\",status_class=\"{class}\",outcome=\"{outcome}\"}} {v}",
                            m.group, m.channel
                        );
                    }
                }
            }
        }
        for (name, help, pick) in [
            (
                "gpt_load_request_duration_seconds",
                "Client request until the response headers (all attempts).",
                0,
            ),
            (
                "gpt_load_upstream_duration_seconds",
                "One upstream attempt until its response headers.",
                1,
            ),
            (
                "gpt_load_upstream_ttfb_seconds",
                "One successful attempt until the first body byte.",
                2,
            ),
        ] {
            head(&mut out, name, "histogram", help);
            for m in &groups {
                let h = match pick {
                    0 => &m.request_duration,
                    1 => &m.upstream_duration,
                    _ => &m.ttfb,
                };
                h.render(
                    &mut out,
                    name,
                    &format!("group=\"{}\",channel=\"{}\"", m.group, m.channel),
                );
            }
        }
        head(
            &mut out,
            "gpt_load_retries_total",
            "counter",
            "Attempts retried on another key.",
        );
        for m in &groups {
            for (i, reason) in RETRY_REASONS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "gpt_load_retries_total{{group=\"{}\",channel=\"{}\",reason=\"{reason}\"}} {}",
                    m.group,
                    m.channel,
                    m.retries[i].load(Ordering::Relaxed)
                );
            }
        }
        head(
            &mut out,
            "gpt_load_key_selections_total",
            "counter",
            "Keys handed out for attempts.",
        );
        let mut seen = std::collections::HashSet::new();
        let mut by_group: Vec<(&str, u64, [u64; 4])> = Vec::new();
        for m in &groups {
            let ev: [u64; 4] = std::array::from_fn(|i| m.key_events[i].load(Ordering::Relaxed));
            let sel = m.key_selections.load(Ordering::Relaxed);
            if seen.insert(m.group.as_str()) {
                by_group.push((m.group.as_str(), sel, ev));
            } else if let Some(e) = by_group.iter_mut().find(|e| e.0 == m.group) {
                e.1 += sel;
                for (acc, v) in e.2.iter_mut().zip(ev) {
                    *acc += v;
                }
            }
        }
        for (group, sel, _) in &by_group {
            let _ = writeln!(
                out,
                "gpt_load_key_selections_total{{group=\"{group}\"}} {sel}"
            );
        }
        head(
            &mut out,
            "gpt_load_key_events_total",
            "counter",
            "Key state changes.",
        );
        for (group, _, ev) in &by_group {
            for (i, event) in KEY_EVENTS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "gpt_load_key_events_total{{group=\"{group}\",event=\"{event}\"}} {}",
                    ev[i]
                );
            }
        }
        head(
            &mut out,
            "gpt_load_keys",
            "gauge",
            "Keys of each group by state.",
        );
        for (group, active, invalid, cooling) in &g.keys {
            let group = escape(group);
            for (state, v) in [
                ("active", active),
                ("invalid", invalid),
                ("cooling", cooling),
            ] {
                let _ = writeln!(
                    out,
                    "gpt_load_keys{{group=\"{group}\",state=\"{state}\"}} {v}"
                );
            }
        }
        head(
            &mut out,
            "gpt_load_tokens_total",
            "counter",
            "Tokens the upstream reported in usage.",
        );
        for m in &groups {
            for (i, kind) in ["prompt", "completion"].iter().enumerate() {
                let _ = writeln!(
                    out,
                    "gpt_load_tokens_total{{group=\"{}\",channel=\"{}\",kind=\"{kind}\"}} {}",
                    m.group,
                    m.channel,
                    m.tokens[i].load(Ordering::Relaxed)
                );
            }
        }
        let scalar = |out: &mut String, name: &str, kind: &str, help: &str, v: f64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        scalar(
            &mut out,
            "gpt_load_in_flight_requests",
            "gauge",
            "Proxied requests in progress.",
            g.in_flight as f64,
        );
        scalar(
            &mut out,
            "gpt_load_record_queue_depth",
            "gauge",
            "Request records waiting to be written or pushed.",
            g.record_queue_depth as f64,
        );
        scalar(
            &mut out,
            "gpt_load_records_dropped_total",
            "counter",
            "Request records dropped because the queue was full.",
            g.records_dropped as f64,
        );
        scalar(
            &mut out,
            "gpt_load_snapshot_version",
            "gauge",
            "Version of the config snapshot being served.",
            g.snapshot_version as f64,
        );
        if let Some(age) = g.snapshot_age_seconds {
            scalar(
                &mut out,
                "gpt_load_snapshot_age_seconds",
                "gauge",
                "Seconds since the served snapshot arrived.",
                age,
            );
        }
        if let Some(n) = g.workers_connected {
            scalar(
                &mut out,
                "gpt_load_workers_connected",
                "gauge",
                "Workers with an open snapshot stream.",
                n as f64,
            );
        }
        if let Some(n) = g.records_stream_pending {
            scalar(
                &mut out,
                "gpt_load_records_stream_pending",
                "gauge",
                "Records in the Redis stream not yet written.",
                n as f64,
            );
        }
        scalar(
            &mut out,
            "gpt_load_redis_errors_total",
            "counter",
            "Failed Redis operations.",
            self.redis_errors.load(Ordering::Relaxed) as f64,
        );
        scalar(
            &mut out,
            "gpt_load_database_errors_total",
            "counter",
            "Failed database operations.",
            self.database_errors.load(Ordering::Relaxed) as f64,
        );
        let _ = writeln!(
            out,
            "# HELP gpt_load_build_info Build and role of the process.\n# TYPE gpt_load_build_info gauge\ngpt_load_build_info{{version=\"{}\",role=\"{}\"}} 1",
            crate::VERSION,
            g.role
        );
        out
    }
}

/// Token counts found in a response body (JSON or SSE), by field name: OpenAI
/// (`prompt_tokens`/`completion_tokens`), Anthropic and OpenAI Responses
/// (`input_tokens`/`output_tokens`), Gemini (`promptTokenCount`/`candidatesTokenCount`).
/// A cheap scan (no JSON parse): the largest value seen per kind wins, since streams repeat
/// cumulative counts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TokenScan {
    pub prompt: u64,
    pub completion: u64,
}

impl TokenScan {
    pub fn feed(&mut self, chunk: &[u8]) {
        if memchr::memmem::find(chunk, b"oken").is_none() {
            return;
        }
        for (field, prompt) in [
            (&b"\"prompt_tokens\""[..], true),
            (b"\"input_tokens\"", true),
            (b"\"promptTokenCount\"", true),
            (b"\"completion_tokens\"", false),
            (b"\"output_tokens\"", false),
            (b"\"candidatesTokenCount\"", false),
        ] {
            for pos in memchr::memmem::find_iter(chunk, field) {
                let rest = &chunk[pos + field.len()..];
                let rest = rest
                    .iter()
                    .skip_while(|b| **b == b' ' || **b == b':')
                    .copied();
                let mut n: u64 = 0;
                let mut digits = 0;
                for b in rest {
                    if b.is_ascii_digit() && digits < 18 {
                        n = n * 10 + u64::from(b - b'0');
                        digits += 1;
                    } else {
                        break;
                    }
                }
                if digits > 0 {
                    if prompt {
                        self.prompt = self.prompt.max(n);
                    } else {
                        self.completion = self.completion.max(n);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_scan_reads_every_vendor_shape() {
        let mut t = TokenScan::default();
        t.feed(br#"{"usage":{"prompt_tokens": 12,"completion_tokens":34,"total_tokens":46}}"#);
        assert_eq!(
            t,
            TokenScan {
                prompt: 12,
                completion: 34
            }
        );
        let mut a = TokenScan::default();
        a.feed(b"event: message_start\ndata: {\"message\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n");
        a.feed(b"event: message_delta\ndata: {\"usage\":{\"output_tokens\":9}}\n\n");
        assert_eq!(
            a,
            TokenScan {
                prompt: 5,
                completion: 9
            }
        );
        let mut g = TokenScan::default();
        g.feed(br#"{"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":7}}"#);
        assert_eq!(
            g,
            TokenScan {
                prompt: 3,
                completion: 7
            }
        );
        let mut none = TokenScan::default();
        none.feed(b"no usage here");
        assert_eq!(none, TokenScan::default());
    }

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let reg = Metrics::default();
        let m = reg.group("g\"1", "openai");
        m.request(200, Outcome::Success);
        m.request(200, Outcome::Retried);
        m.request(503, Outcome::Failed);
        m.request_duration.observe(Duration::from_millis(7));
        m.request_duration.observe(Duration::from_secs(500));
        m.retry(RetryReason::RateLimited);
        m.key_event(KeyEventKind::Blacklisted, 1);
        assert!(Arc::ptr_eq(&m, &reg.group("g\"1", "openai")));
        let text = reg.render(&Gauges {
            role: "master",
            keys: vec![("g\"1".into(), 2, 1, 0)],
            ..Default::default()
        });
        assert!(text.contains(r#"gpt_load_requests_total{group="g\"1",channel="openai",status_class="2xx",outcome="retried"} 1"#), "{text}");
        assert!(text.contains(r#"gpt_load_requests_total{group="g\"1",channel="openai",status_class="5xx",outcome="failed"} 1"#));
        assert!(text.contains(
            r#"gpt_load_request_duration_seconds_bucket{group="g\"1",channel="openai",le="0.01"} 1"#
        ));
        assert!(text.contains(
            r#"gpt_load_request_duration_seconds_bucket{group="g\"1",channel="openai",le="+Inf"} 2"#
        ));
        assert!(text.contains(
            r#"gpt_load_retries_total{group="g\"1",channel="openai",reason="rate_limited"} 1"#
        ));
        assert!(text.contains(r#"gpt_load_key_events_total{group="g\"1",event="blacklisted"} 1"#));
        assert!(text.contains(r#"gpt_load_keys{group="g\"1",state="invalid"} 1"#));
        assert!(text.contains("gpt_load_build_info{version=\""));
        assert!(!text.contains("gpt_load_workers_connected"));
    }
}
