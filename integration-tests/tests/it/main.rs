//! Cross-process tests: the real `gpt-load` binary against real databases and a mock upstream.
//! One test binary (link time dominates on small machines); every test isolates itself with its
//! own working directory, database and ports.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    reason = "test code: a failed step should abort the test with its value"
)]

mod admin_api;
mod architecture;
mod cluster;
mod deploy;
mod gptload_compat;
mod hardening;
mod proxy;
mod sdk_compat;
mod startup;
mod telemetry;
mod tls_upstream;
