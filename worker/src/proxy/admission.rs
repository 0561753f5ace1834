//! Step 2, admission: the ordered chain of checks a request passes before its body is read or
//! anything is sent — nothing here touches an upstream or the key store.
//!
//! [`CHAIN`] lists the steps in order; each reads what the earlier ones found and refuses with a
//! [`ProxyError`] or lets the request on. A new check (access keys, limits) is a [`Step`] placed
//! in the chain where its inputs exist. The concurrency permit comes last, so that a refused
//! request never holds one.

use std::sync::Arc;

use http::request::Parts;
use tokio::sync::OwnedSemaphorePermit;

use gpt_load_common::snapshot::access::AccessKey;

use crate::error::ProxyError;
use crate::state::{GroupRuntime, Runtime, WorkerState};

/// One check of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// An address that failed authentication too often is refused before anything else.
    Throttle,
    /// Paths that would leave the upstream's base path (`.`/`..` segments, encoded or not).
    Path,
    /// The client's credential, from the query or the headers; none at all is refused.
    Credential,
    /// The group the path names.
    Group,
    /// The credential is a global proxy key, one of the group's, or an access key whose filters
    /// allow the group (lookups by digest: timing reveals nothing of the stored keys); a wrong one
    /// counts toward the address's throttle.
    Authorize,
    /// A slot under `MAX_CONCURRENT_REQUESTS`, held until the answer is complete.
    Permit,
}

/// The checks, in the order they run.
pub(super) const CHAIN: [Step; 6] = [
    Step::Throttle,
    Step::Path,
    Step::Credential,
    Step::Group,
    Step::Authorize,
    Step::Permit,
];

/// A request the chain let through.
pub(super) struct Admitted {
    pub client_ip: String,
    /// The client's query without its credential (what goes upstream).
    pub query: Option<String>,
    pub group: Arc<GroupRuntime>,
    pub permit: OwnedSemaphorePermit,
    /// The access key the caller authenticated with, if it used one.
    pub access_key: Option<Arc<AccessKey>>,
}

/// What the chain has found so far.
struct Admission<'a> {
    state: &'a WorkerState,
    runtime: &'a Runtime,
    parts: &'a Parts,
    group_name: &'a str,
    rest: &'a str,
    client_ip: String,
    client_key: String,
    query: Option<String>,
    group: Option<Arc<GroupRuntime>>,
    permit: Option<OwnedSemaphorePermit>,
    access_key: Option<Arc<AccessKey>>,
}

/// Runs [`CHAIN`] for a request to `/proxy/{group_name}{rest}`.
pub(super) fn admit(
    state: &WorkerState,
    runtime: &Runtime,
    parts: &Parts,
    group_name: &str,
    rest: &str,
    client_ip: String,
) -> Result<Admitted, ProxyError> {
    let mut a = Admission {
        state,
        runtime,
        parts,
        group_name,
        rest,
        client_ip,
        client_key: String::new(),
        query: None,
        group: None,
        permit: None,
        access_key: None,
    };
    for step in CHAIN {
        a.apply(step)?;
    }
    match (a.group, a.permit) {
        (Some(group), Some(permit)) => Ok(Admitted {
            client_ip: a.client_ip,
            query: a.query,
            group,
            permit,
            access_key: a.access_key,
        }),
        // The chain ends with the group and the permit found, or refuses.
        _ => Err(ProxyError::NotFound),
    }
}

/// The throttle step alone, for the endpoints beside the proxy that share it.
pub(super) fn check_throttle(state: &WorkerState, client_ip: &str) -> Result<(), ProxyError> {
    match state.0.throttle.blocked_for(client_ip) {
        Some(wait) => Err(ProxyError::Throttled(wait)),
        None => Ok(()),
    }
}

impl Admission<'_> {
    fn apply(&mut self, step: Step) -> Result<(), ProxyError> {
        match step {
            Step::Throttle => check_throttle(self.state, &self.client_ip),
            Step::Path => {
                if has_dot_segment(self.rest) {
                    Err(ProxyError::DotSegment)
                } else {
                    Ok(())
                }
            }
            Step::Credential => {
                let (key, query) = crate::credential::extract_client_key(
                    &self.parts.headers,
                    self.parts.uri.query(),
                );
                if key.is_empty() {
                    return Err(ProxyError::Unauthorized);
                }
                self.client_key = key;
                self.query = query;
                Ok(())
            }
            Step::Group => {
                let group = self
                    .runtime
                    .group(self.group_name)
                    .cloned()
                    .ok_or_else(|| ProxyError::GroupNotFound(self.group_name.to_owned()))?;
                self.group = Some(group);
                Ok(())
            }
            Step::Authorize => {
                let Some(group) = &self.group else {
                    return Err(ProxyError::NotFound);
                };
                let snapshot = &self.runtime.snapshot;
                // One hash for both lookups (the credential step refused an empty key).
                let d = gpt_load_common::snapshot::digest(&self.client_key);
                if snapshot.authorizes_digest(&group.group, &d) {
                    return Ok(());
                }
                let Some(key) = snapshot.access_key_by_digest(&d) else {
                    self.state.0.throttle.record_failure(&self.client_ip);
                    return Err(ProxyError::Unauthorized);
                };
                usable(key, &self.client_ip)?;
                let g = &group.group;
                if !key.allows_group(g.id()) {
                    return Err(ProxyError::Forbidden(format!(
                        "this access key may not use group '{}'",
                        g.name()
                    )));
                }
                if !key.allows_protocol(g.def.channel_type) {
                    return Err(ProxyError::Forbidden(format!(
                        "this access key may not use the {} protocol",
                        g.def.channel_type.as_str()
                    )));
                }
                self.access_key = Some(key.clone());
                Ok(())
            }
            Step::Permit => {
                let permit = self
                    .state
                    .0
                    .limiter
                    .clone()
                    .try_acquire_owned()
                    .map_err(|_| ProxyError::Concurrency)?;
                self.permit = Some(permit);
                Ok(())
            }
        }
    }
}

/// Whether `key` may be used at all, now, from `ip`: a refusal is a 401 naming why.
pub(super) fn usable(key: &AccessKey, ip: &str) -> Result<(), ProxyError> {
    key.usable(chrono::Utc::now().timestamp(), ip)
        .map_err(ProxyError::KeyRefused)
}

/// Whether a client path has a segment that is `.` or `..` once decoded (`%2e`, and `%2f` or
/// a backslash as separators): upstreams resolve those, so the request would leave the
/// upstream's base path with the group's key attached.
pub(super) fn has_dot_segment(path: &str) -> bool {
    if !path.contains('.') && !path.contains('%') {
        return false;
    }
    gpt_load_common::urlenc::decode(path, false)
        .split(['/', '\\'])
        .any(|seg| seg == "." || seg == "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_are_found_in_any_encoding() {
        for p in [
            "/..",
            "/v1/../x",
            "/./x",
            "/%2e%2e/x",
            "/%2E./x",
            "/..%2fx",
            "/a%2f%2e%2e%2fb",
            "/a/..%5cb",
            "/a/.",
        ] {
            assert!(has_dot_segment(p), "{p}");
        }
        for p in [
            "",
            "/v1/models/gpt-4.1",
            "/a/...",
            "/a/.b/c",
            "/a%2fb",
            "/x..y/",
        ] {
            assert!(!has_dot_segment(p), "{p}");
        }
    }

    #[test]
    fn the_throttle_comes_first_and_the_permit_last() {
        assert_eq!(CHAIN.first(), Some(&Step::Throttle));
        assert_eq!(CHAIN.last(), Some(&Step::Permit));
        let pos = |s: Step| CHAIN.iter().position(|x| *x == s);
        assert!(pos(Step::Credential) < pos(Step::Authorize));
        assert!(pos(Step::Group) < pos(Step::Authorize));
    }
}
