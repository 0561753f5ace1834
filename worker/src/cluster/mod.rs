//! What a proxying node needs to take part in a cluster: pushing records to the shared Redis
//! stream, following the master's config snapshots, and reporting its status.

pub mod records;
pub mod status;
pub mod subscriber;

/// gRPC metadata carrying the cluster secret.
pub const AUTH_METADATA: &str = "authorization";

/// The `authorization` metadata value for `secret`.
pub fn bearer(secret: &str) -> String {
    format!("Bearer {secret}")
}
