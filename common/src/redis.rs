//! The one Redis client of a process and every Redis key name gpt-load uses.
//!
//! Key names live here and nowhere else. Everything of one group shares a hash tag
//! (`{prefix:g<id>}`) so the multi-key scripts work on Redis Cluster too.

use std::time::Duration;

use fred::prelude::*;

/// Redis connection failures at start.
#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct RedisInitError(pub String);

/// Connects (standalone `redis://`/`rediss://`, or `redis-cluster://` for a cluster) and PINGs.
/// Commands fail fast while disconnected (a quick 503 for the proxy) and the client reconnects
/// by itself.
pub async fn connect(dsn: &str) -> Result<Client, RedisInitError> {
    let config = Config::from_url(dsn).map_err(|e| RedisInitError(e.to_string()))?;
    let client = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = Duration::from_secs(2);
            c.internal_command_timeout = Duration::from_secs(2);
            c.max_command_attempts = 1;
        })
        .with_performance_config(|p| {
            p.default_command_timeout = Duration::from_secs(2);
        })
        .with_config(|c| {
            c.fail_fast = true;
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 2000, 2))
        .build()
        .map_err(|e| RedisInitError(e.to_string()))?;
    client
        .init()
        .await
        .map_err(|e| RedisInitError(e.to_string()))?;
    let _: String = client
        .ping(None)
        .await
        .map_err(|e| RedisInitError(e.to_string()))?;
    Ok(client)
}

/// Every Redis key name, under a configurable prefix (`REDIS_KEY_PREFIX`, default `gpt-load`).
#[derive(Debug, Clone)]
pub struct RedisKeys {
    prefix: String,
}

impl RedisKeys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.trim_end_matches(':').to_owned(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn tag(&self, group_id: i64) -> String {
        format!("{{{}:g{group_id}}}", self.prefix)
    }

    /// The group's rotation list of active key ids.
    pub fn ring(&self, group_id: i64) -> String {
        format!("{}:ring", self.tag(group_id))
    }

    /// Scratch list used to rebuild the ring atomically.
    pub fn ring_scratch(&self, group_id: i64) -> String {
        format!("{}:ring:new", self.tag(group_id))
    }

    /// The set of every key id of the group.
    pub fn all(&self, group_id: i64) -> String {
        format!("{}:all", self.tag(group_id))
    }

    /// Prefix of a key's hash (append the key id).
    pub fn key_prefix(&self, group_id: i64) -> String {
        format!("{}:k:", self.tag(group_id))
    }

    /// Set when the group's pool was loaded from the database (and deleted with it): a pool
    /// without it is not "empty" but missing — Redis lost its data (a restart without
    /// persistence, `FLUSHALL`, a failover to an empty replica).
    pub fn loaded(&self, group_id: i64) -> String {
        format!("{}:loaded", self.tag(group_id))
    }

    pub fn key(&self, group_id: i64, key_id: i64) -> String {
        format!("{}:k:{key_id}", self.tag(group_id))
    }

    /// The set of group ids that have pools (for cleanup and reconciliation).
    pub fn groups(&self) -> String {
        format!("{}:groups", self.prefix)
    }

    /// The stream of request logs and key events from every node.
    pub fn records(&self) -> String {
        format!("{}:records", self.prefix)
    }

    /// The latest config snapshot (protobuf), for workers starting while the master is away.
    pub fn snapshot(&self) -> String {
        format!("{}:snapshot", self.prefix)
    }

    /// The lease of the master that runs the scheduled jobs.
    pub fn master_lease(&self) -> String {
        format!("{}:master-lease", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_shares_one_hash_tag() {
        let k = RedisKeys::new("gpt-load:");
        assert_eq!(k.ring(7), "{gpt-load:g7}:ring");
        assert_eq!(k.key(7, 42), "{gpt-load:g7}:k:42");
        assert!(k.key_prefix(7).starts_with("{gpt-load:g7}"));
        assert_eq!(k.records(), "gpt-load:records");
    }
}
