//! In-process tests of the admin API: the master's router built by `App::build` on a SQLite file
//! of the test's own (or a PostgreSQL / MariaDB database of its own), called with `oneshot` — no
//! process, no port in use; and the schema migrations and `migrate-keys` run in process. What
//! needs processes (start-up, the cluster, the PostgreSQL and MariaDB lifecycles of the binary,
//! shutdown) stays in `integration-tests/`.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failed step should abort the test with its value"
)]

mod access_key_logs;
mod access_keys;
mod api;
mod harness;
mod migrate_keys;
mod migrations;
mod route_inspect;
