//! Shared by every gpt-load process: the domain model, the immutable config snapshot, the
//! [`keystore::KeyStore`] trait and its implementations, key encryption, the request-log record and
//! telemetry set-up. Knows no HTTP routes, SQL or gRPC transport.

pub mod config;
pub mod crypto;
pub mod env;
pub mod keystore;
pub mod log_record;
pub mod metrics;
pub mod model;
pub mod otlp_tls;
pub mod redis;
pub mod secret;
pub mod serving_thread;
pub mod snapshot;
pub mod telemetry;
pub mod urlenc;

/// The version reported by `/health` and the UI footer.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
