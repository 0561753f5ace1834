//! Master-only background jobs, each driven by a `CancellationToken` and tracked so shutdown waits
//! for them: the record writer (request logs, hourly stats, key usage, key status), log retention,
//! the key validator and, in a cluster, the guard that reloads key pools Redis lost.

pub mod lease;
pub mod pool_guard;
pub mod record_writer;
pub mod retention;
pub mod stream_flusher;
pub mod validator;
