//! In-process tests of the admin API: the master's router built by `App::build` on a SQLite file
//! of the test's own, called with `oneshot` — no process, no port in use. What needs processes
//! (start-up, the cluster, PostgreSQL and MariaDB lifecycles, shutdown) stays in
//! `integration-tests/`.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failed step should abort the test with its value"
)]

mod api;
mod harness;
