//! What the proxy's per-request metrics cost: the calls one successful request makes on its
//! `(group, channel)` handle (request counter, key selection, three histogram observations), in
//! nanoseconds per request, without and with the OpenTelemetry bridge installed, on one thread and
//! on two threads sharing a handle.
//!
//! ```text
//! cargo bench -p gpt-load-common --bench hot_path_metrics
//! ```

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gpt_load_common::metrics::{GroupMetrics, Outcome, install_otel, metrics};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};

const N: u32 = 2_000_000;

/// An exporter that drops what it is given (the reader still collects every interval).
struct Discard;

impl PushMetricExporter for Discard {
    async fn export(&self, m: &ResourceMetrics) -> OTelSdkResult {
        black_box(m);
        Ok(())
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        Ok(())
    }
    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

fn one_request(m: &GroupMetrics, i: u32) {
    let d = Duration::from_micros(u64::from(i % 5000));
    m.key_selected();
    m.observe_upstream(d);
    m.observe_ttfb(d);
    m.request(200, Outcome::Success);
    m.observe_request(d);
}

fn ns_per_request(m: &Arc<GroupMetrics>, threads: u32) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let m = m.clone();
            s.spawn(move || {
                for i in 0..N {
                    one_request(black_box(&m), i);
                }
            });
        }
    });
    start.elapsed().as_nanos() as f64 / f64::from(N * threads)
}

fn main() {
    let plain = metrics().group("bench-plain", "openai");
    ns_per_request(&plain, 1);
    let p1 = ns_per_request(&plain, 1);
    let p2 = ns_per_request(&plain, 2);

    let reader = PeriodicReader::builder(Discard)
        .with_interval(Duration::from_secs(1))
        .build();
    let provider = SdkMeterProvider::builder().with_reader(reader).build();
    install_otel(&provider.meter("gpt-load"));
    let otel = metrics().group("bench-otel", "openai");
    ns_per_request(&otel, 1);
    let o1 = ns_per_request(&otel, 1);
    let o2 = ns_per_request(&otel, 2);
    let _ = provider.shutdown();

    println!("per-request metrics, ns per request ({N} requests per thread)");
    println!("| handle | 1 thread | 2 threads, one shared handle |");
    println!("|---|---|---|");
    println!("| counters + histograms (always on) | {p1:.0} | {p2:.0} |");
    println!("| + OpenTelemetry histograms (OTLP metrics on) | {o1:.0} | {o2:.0} |");
}
