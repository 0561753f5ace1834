//! Process telemetry, initialised first in `main` and flushed last (the guard's `shutdown`):
//!
//! - `tracing` logs as text or JSON at `LOG_LEVEL` (`RUST_LOG` refines), optionally teed to
//!   `LOG_FILE_PATH`;
//! - when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (with the standard `OTEL_SERVICE_NAME`,
//!   `OTEL_RESOURCE_ATTRIBUTES`, … read by the SDK): OpenTelemetry traces (a span per proxied
//!   request with one child per upstream attempt, admin API and gRPC spans) and metrics (the same
//!   families as `/metrics`) exported over OTLP (gRPC, or HTTP/protobuf per
//!   `OTEL_EXPORTER_OTLP_PROTOCOL`; TLS for `https://` endpoints, see [`crate::otlp_tls`]), and
//!   W3C trace context accepted from clients and propagated to upstreams.
//!
//! With OTLP off no span is created on the request path (see [`tracing_enabled`]).

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _, WithTonicConfig as _};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogConfig, LogFormat};
use crate::env::ProcessEnv;
use crate::otlp_tls::{self, Signal, TlsFiles};

static TRACES_ON: AtomicBool = AtomicBool::new(false);
static METRICS_ON: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported (request-path spans are created only then).
pub fn tracing_enabled() -> bool {
    TRACES_ON.load(Ordering::Relaxed)
}

/// Whether metrics are exported over OTLP.
pub fn otlp_metrics_enabled() -> bool {
    METRICS_ON.load(Ordering::Relaxed)
}

/// Head sampling per `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`, decided before a request
/// span exists: an unsampled request creates no span at all (the tracing layer costs tens of
/// microseconds per span even when the SDK would drop it).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Sampling {
    Always,
    Never,
    Ratio(f64),
    ParentBased(Root),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Root {
    Always,
    Never,
    Ratio(f64),
}

/// `Ratio` as parts per 2^32 (0 = never, u32::MAX+1 = always), read on every request.
static SAMPLING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(ALWAYS_CODE);
const ALWAYS_CODE: u64 = 1 << 32;
const PARENT_BASED_FLAG: u64 = 1 << 40;

fn parse_sampling(name: Option<&str>, arg: Option<&str>) -> Result<Sampling, String> {
    let ratio = || -> Result<f64, String> {
        match arg.map(str::trim).filter(|a| !a.is_empty()) {
            None => Ok(1.0),
            Some(a) => a
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| {
                    format!("OTEL_TRACES_SAMPLER_ARG: a ratio between 0 and 1 (got {a:?})")
                }),
        }
    };
    Ok(match name.map(str::trim).filter(|n| !n.is_empty()) {
        None | Some("parentbased_always_on") => Sampling::ParentBased(Root::Always),
        Some("always_on") => Sampling::Always,
        Some("always_off") => Sampling::Never,
        Some("traceidratio") => Sampling::Ratio(ratio()?),
        Some("parentbased_always_off") => Sampling::ParentBased(Root::Never),
        Some("parentbased_traceidratio") => Sampling::ParentBased(Root::Ratio(ratio()?)),
        Some(other) => {
            return Err(format!(
                "OTEL_TRACES_SAMPLER: always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio (got {other:?})"
            ));
        }
    })
}

fn encode(s: Sampling) -> u64 {
    let ratio = |r: f64| (r * ALWAYS_CODE as f64).round() as u64;
    match s {
        Sampling::Always => ALWAYS_CODE,
        Sampling::Never => 0,
        Sampling::Ratio(r) => ratio(r),
        Sampling::ParentBased(Root::Always) => PARENT_BASED_FLAG | ALWAYS_CODE,
        Sampling::ParentBased(Root::Never) => PARENT_BASED_FLAG,
        Sampling::ParentBased(Root::Ratio(r)) => PARENT_BASED_FLAG | ratio(r),
    }
}

/// Whether to trace a request with these headers (false whenever tracing is off).
pub fn sample(headers: &http::HeaderMap) -> bool {
    if !tracing_enabled() {
        return false;
    }
    decide(SAMPLING.load(Ordering::Relaxed), headers)
}

fn decide(code: u64, headers: &http::HeaderMap) -> bool {
    if code & PARENT_BASED_FLAG != 0
        && let Some(sampled) = remote_sampled(headers)
    {
        return sampled;
    }
    let threshold = code & !PARENT_BASED_FLAG;
    if threshold >= ALWAYS_CODE {
        true
    } else if threshold == 0 {
        false
    } else {
        u64::from(rand::random::<u32>()) < threshold
    }
}

/// The sampled flag of a valid client `traceparent`.
fn remote_sampled(headers: &http::HeaderMap) -> Option<bool> {
    use opentelemetry::trace::TraceContextExt;
    headers.get("traceparent")?;
    let cx = extract_context(headers);
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.is_sampled())
}

/// The OTLP transport of one signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// OTLP/gRPC (port 4317), our default.
    Grpc,
    /// OTLP/HTTP with protobuf bodies (port 4318, `/v1/traces`, `/v1/metrics`).
    HttpProtobuf,
}

/// The transport for a signal: its own `OTEL_EXPORTER_OTLP_{TRACES,METRICS}_PROTOCOL`, else
/// `OTEL_EXPORTER_OTLP_PROTOCOL`, else gRPC.
fn protocol(signal: Signal) -> Result<Wire, String> {
    match otlp_tls::setting(&ProcessEnv, signal, "PROTOCOL") {
        None => Ok(Wire::Grpc),
        Some((var, v)) => parse_wire(&v)
            .ok_or_else(|| format!("{var}: {v:?} is not supported (use grpc or http/protobuf)")),
    }
}

fn parse_wire(v: &str) -> Option<Wire> {
    match v {
        "grpc" => Some(Wire::Grpc),
        "http/protobuf" => Some(Wire::HttpProtobuf),
        _ => None,
    }
}

/// `OTEL_{TRACES,METRICS}_EXPORTER`: `otlp` (the default) or `none`.
fn exporter_on(var: &str) -> Result<bool, String> {
    match std::env::var(var).ok().as_deref().map(str::trim) {
        None | Some("" | "otlp") => Ok(true),
        Some("none") => Ok(false),
        Some(other) => Err(format!(
            "{var}: only otlp or none are supported (got {other:?})"
        )),
    }
}

/// Builds one signal's OTLP exporter over `$wire`, with TLS for an `https://` endpoint. A macro:
/// the metric and span exporter builders share no trait.
macro_rules! otlp_exporter {
    ($builder:expr, $wire:expr, $signal:expr) => {{
        let tls = TlsFiles::load(&ProcessEnv, $signal)?;
        match $wire {
            Wire::Grpc => {
                let b = $builder.with_tonic();
                if otlp_tls::is_https(&ProcessEnv, $signal) {
                    b.with_tls_config(tls.grpc())
                } else {
                    b
                }
                .build()
            }
            Wire::HttpProtobuf => {
                let mut b = $builder
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary);
                if !tls.is_empty() {
                    let timeout = otlp_tls::export_timeout(&ProcessEnv, $signal);
                    b = b.with_http_client(tls.http_client(timeout)?);
                }
                b.build()
            }
        }
        .map_err(|e| format!("OTEL_EXPORTER_OTLP_ENDPOINT: {e}"))?
    }};
}

/// Flushes and shuts telemetry down.
#[derive(Debug, Default)]
pub struct TelemetryGuard {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
}

impl TelemetryGuard {
    /// Exports what is buffered and stops the exporters (call last).
    pub fn shutdown(&mut self) {
        if let Some(t) = self.tracer.take() {
            let _ = t.force_flush();
            let _ = t.shutdown();
        }
        if let Some(m) = self.meter.take() {
            let _ = m.force_flush();
            let _ = m.shutdown();
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn otlp_endpoint() -> Option<String> {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    ]
    .iter()
    .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
}

/// `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds, default 60 s as the specification says).
pub fn metric_export_interval() -> std::time::Duration {
    let ms = std::env::var("OTEL_METRIC_EXPORT_INTERVAL")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|v| *v > 0)
        .unwrap_or(60_000);
    std::time::Duration::from_millis(ms)
}

/// Installs the global subscriber (and OTLP exporters when configured). `role` (`master` or
/// `worker`) becomes the default service name. Must run inside a tokio runtime when OTLP is on.
pub fn init(cfg: &LogConfig, role: &'static str) -> Result<TelemetryGuard, String> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{},sqlx=warn,hyper=warn,h2=warn,tonic=warn,opentelemetry=warn",
            cfg.level
        ))
    });
    let file = if cfg.enable_file {
        let path = Path::new(&cfg.file_path);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("LOG_FILE_PATH: cannot create {}: {e}", dir.display()))?;
        }
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("LOG_FILE_PATH: cannot open {}: {e}", path.display()))?;
        Some(Arc::new(f))
    } else {
        None
    };
    use std::io::IsTerminal;
    let ansi = !cfg.enable_file && std::io::stderr().is_terminal();
    let fmt_layer = match (cfg.format, file) {
        (LogFormat::Text, None) => tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .boxed(),
        (LogFormat::Json, None) => tracing_subscriber::fmt::layer()
            .json()
            .with_target(false)
            .with_writer(std::io::stderr)
            .boxed(),
        (LogFormat::Text, Some(f)) => tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_ansi(false)
            .with_writer(std::io::stderr.and(f))
            .boxed(),
        (LogFormat::Json, Some(f)) => tracing_subscriber::fmt::layer()
            .json()
            .with_target(false)
            .with_writer(std::io::stderr.and(f))
            .boxed(),
    };

    let mut guard = TelemetryGuard::default();
    let otel_layer = match otlp_endpoint() {
        None => None,
        Some(_) => {
            let metrics_protocol = protocol(Signal::Metrics)?;
            let traces_protocol = protocol(Signal::Traces)?;
            let service = std::env::var("OTEL_SERVICE_NAME")
                .ok()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| format!("gpt-load-{role}"));
            let resource = opentelemetry_sdk::Resource::builder()
                .with_service_name(service)
                .build();
            let traces = exporter_on("OTEL_TRACES_EXPORTER")?;
            if exporter_on("OTEL_METRICS_EXPORTER")? {
                let metric_exporter = otlp_exporter!(
                    opentelemetry_otlp::MetricExporter::builder(),
                    metrics_protocol,
                    Signal::Metrics
                );
                let reader = opentelemetry_sdk::metrics::PeriodicReader::builder(metric_exporter)
                    .with_interval(metric_export_interval())
                    .build();
                let meter_provider = SdkMeterProvider::builder()
                    .with_reader(reader)
                    .with_resource(resource.clone())
                    .build();
                opentelemetry::global::set_meter_provider(meter_provider.clone());
                crate::metrics::install_otel(&opentelemetry::global::meter("gpt-load"));
                guard.meter = Some(meter_provider);
                METRICS_ON.store(true, Ordering::Relaxed);
            }
            if traces {
                let span_exporter = otlp_exporter!(
                    opentelemetry_otlp::SpanExporter::builder(),
                    traces_protocol,
                    Signal::Traces
                );
                let sampling = parse_sampling(
                    std::env::var("OTEL_TRACES_SAMPLER").ok().as_deref(),
                    std::env::var("OTEL_TRACES_SAMPLER_ARG").ok().as_deref(),
                )?;
                SAMPLING.store(encode(sampling), Ordering::Relaxed);
                // The decision is ours (see `sample`); what we create is recorded.
                let tracer_provider = SdkTracerProvider::builder()
                    .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOn)
                    .with_batch_exporter(span_exporter)
                    .with_resource(resource)
                    .build();
                let tracer = tracer_provider.tracer("gpt-load");
                opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
                opentelemetry::global::set_tracer_provider(tracer_provider.clone());
                guard.tracer = Some(tracer_provider);
                TRACES_ON.store(true, Ordering::Relaxed);
                // Our own spans and events only, whatever LOG_LEVEL says for the console.
                let targets = tracing_subscriber::filter::Targets::new()
                    .with_target("gpt_load", tracing::Level::INFO);
                Some(
                    tracing_opentelemetry::layer()
                        .with_tracer(tracer)
                        .with_filter(targets),
                )
            } else {
                None
            }
        }
    };
    tracing_subscriber::registry()
        .with(fmt_layer.with_filter(filter))
        .with(otel_layer)
        .try_init()
        .map_err(|e| format!("telemetry: {e}"))?;
    Ok(guard)
}

use tracing_subscriber::Layer as _;

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// The W3C trace context a client sent (`traceparent`/`tracestate`).
pub fn extract_context(headers: &http::HeaderMap) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// Makes `span` a child of the trace context the client sent, if any.
pub fn set_remote_parent(span: &tracing::Span, headers: &http::HeaderMap) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if headers.contains_key("traceparent") {
        let _ = span.set_parent(extract_context(headers));
    }
}

/// Writes the current span's W3C trace context into upstream request headers.
pub fn inject_current(headers: &mut http::HeaderMap) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let cx = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otlp_protocols() {
        assert_eq!(parse_wire("grpc"), Some(Wire::Grpc));
        assert_eq!(parse_wire("http/protobuf"), Some(Wire::HttpProtobuf));
        assert_eq!(parse_wire("http/json"), None);
        assert_eq!(parse_wire("HTTP"), None);
    }

    fn with_parent(flags: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(
            "traceparent",
            http::HeaderValue::try_from(format!(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{flags}"
            ))
            .unwrap(),
        );
        h
    }

    #[test]
    fn sampler_names_and_ratios_parse_as_the_specification_says() {
        assert_eq!(
            parse_sampling(None, None),
            Ok(Sampling::ParentBased(Root::Always))
        );
        assert_eq!(
            parse_sampling(Some("always_off"), None),
            Ok(Sampling::Never)
        );
        assert_eq!(
            parse_sampling(Some("parentbased_traceidratio"), Some("0.25")),
            Ok(Sampling::ParentBased(Root::Ratio(0.25)))
        );
        assert_eq!(
            parse_sampling(Some("traceidratio"), None),
            Ok(Sampling::Ratio(1.0))
        );
        assert!(
            parse_sampling(Some("traceidratio"), Some("2"))
                .unwrap_err()
                .contains("OTEL_TRACES_SAMPLER_ARG")
        );
        assert!(
            parse_sampling(Some("jaeger"), None)
                .unwrap_err()
                .starts_with("OTEL_TRACES_SAMPLER:")
        );
    }

    #[test]
    fn sampling_decisions_follow_the_parent_then_the_ratio() {
        let none = http::HeaderMap::new();
        let pb_never = encode(Sampling::ParentBased(Root::Never));
        assert!(
            decide(pb_never, &with_parent("01")),
            "a sampled parent wins"
        );
        assert!(!decide(pb_never, &none));
        let pb_always = encode(Sampling::ParentBased(Root::Always));
        assert!(
            !decide(pb_always, &with_parent("00")),
            "an unsampled parent wins"
        );
        assert!(decide(pb_always, &none));
        assert!(
            decide(encode(Sampling::Always), &with_parent("00")),
            "not parent-based"
        );
        assert!(!decide(encode(Sampling::Never), &with_parent("01")));
        let quarter = encode(Sampling::Ratio(0.25));
        let hits = (0..20_000).filter(|_| decide(quarter, &none)).count();
        assert!((4_000..6_000).contains(&hits), "{hits} of 20000 at 25 %");
    }

    #[test]
    fn client_trace_context_is_read_from_traceparent() {
        use opentelemetry::trace::TraceContextExt;
        let mut h = http::HeaderMap::new();
        h.insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        );
        let cx = extract_context(&h);
        let sc = cx.span().span_context().clone();
        assert!(sc.is_remote());
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(sc.is_sampled());

        h.insert("traceparent", http::HeaderValue::from_static("garbage"));
        assert!(!extract_context(&h).span().span_context().is_valid());
    }
}
