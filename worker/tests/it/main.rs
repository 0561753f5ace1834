//! In-process tests of the proxy service: the data plane built from a config snapshot, a memory
//! key store and the record queue, called with `oneshot` against a mock upstream on
//! `127.0.0.1:0`. One test binary (link time dominates on small machines); every test builds its
//! own state and mock, so nothing is shared between tests.
//!
//! What needs processes (start-up, the cluster, SDKs, shutdown) stays in `integration-tests/`.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed step should abort the test with its value"
)]

mod auth;
mod channels;
mod harness;
mod native;
mod relay;
mod retry;
mod rules;
