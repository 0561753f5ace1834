//! The gpt-load data plane: `/proxy/{group}/{path}` with key rotation, retries, blacklisting,
//! cool-downs and streaming pass-through for the OpenAI, OpenAI Responses, Anthropic and Gemini
//! formats. Used by the master in single-node mode and by `IS_SLAVE` workers. Touches no database.

pub mod body;
pub mod channel;
pub mod client;
pub mod client_ip;
pub mod cluster;
pub mod error;
pub mod failure;
pub mod integration;
pub mod metrics_endpoint;
pub mod node;
pub mod proxy;
pub mod rules;
pub mod serve;
pub mod state;
pub mod throttle;
pub mod upstream_proxy;
pub mod validate;
pub mod weighted;

use axum::Router;
use axum::routing::any;

pub use state::{ProxyLimits, WorkerState};

/// The proxy routes, with their state applied.
pub fn router(state: WorkerState) -> Router {
    Router::new()
        .route("/proxy/{*rest}", any(proxy::proxy))
        .with_state(state)
}
