//! `GET /metrics`: the Prometheus exposition of this process (admin key required).

use gpt_load_common::keystore::KeyStore;
use gpt_load_common::metrics::{Gauges, metrics};

use crate::state::WorkerState;

/// Gauges of the data plane: in-flight requests, the record queue, the snapshot, key counts.
pub async fn gauges(state: &WorkerState, role: &'static str, snapshot_age: bool) -> Gauges {
    let runtime = state.runtime();
    let mut keys = Vec::new();
    for g in runtime.snapshot.groups() {
        if g.is_aggregate() {
            continue;
        }
        if let Ok(c) = state.0.store.counts(g.id()).await {
            keys.push((
                g.def.name.clone(),
                c.active as u64,
                c.invalid as u64,
                c.cooling as u64,
            ));
        }
    }
    Gauges {
        role,
        in_flight: (state.0.limits.max_concurrent - state.0.limiter.available_permits()) as u64,
        record_queue_depth: state.0.records.depth() as u64,
        records_dropped: state.0.records.dropped(),
        snapshot_version: runtime.snapshot.version,
        snapshot_age_seconds: snapshot_age.then(|| runtime.arrived.elapsed().as_secs_f64()),
        workers_connected: None,
        records_stream_pending: None,
        keys,
    }
}

/// Renders the exposition text.
pub fn render(g: &Gauges) -> String {
    metrics().render(g)
}

/// While OTLP export is on, refreshes the gauges the exporter reads (key counts, queue depth,
/// snapshot) at the export interval (at least every second, at most every 15 s).
pub async fn publish_gauges<F, Fut>(cancel: tokio_util::sync::CancellationToken, compute: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Gauges>,
{
    let every = gpt_load_common::telemetry::metric_export_interval().clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(15),
    );
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        gpt_load_common::metrics::publish_gauges(compute().await);
    }
}
