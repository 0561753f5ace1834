//! The request as every attempt sees it — read once, shared by all — and its log records
//! (step 9: one record per attempt, handed to the bounded queue).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use gpt_load_common::keystore::KeyMaterial;
use gpt_load_common::log_record::{RequestLogRecord, RequestType, truncate_utf8};
use gpt_load_common::serving_thread::ServingThread;
use http::Method;
use http::header::HeaderMap;

use gpt_load_common::snapshot::access::AccessKey;

use crate::channel::RequestFacts;
use crate::error::ErrorShape;
use crate::state::{GroupRuntime, RouteTable};

/// What stays the same across attempts.
pub(super) struct RequestCtx {
    pub start: Instant,
    pub method: Method,
    /// Path after `/proxy/{group}`.
    pub rest: String,
    /// The client's query without its credential.
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub facts: RequestFacts,
    pub client_ip: String,
    /// What the log shows as the request's path (cut to 500 bytes).
    pub request_path: String,
    pub user_agent: String,
    /// The group the client named (an aggregate's attempts run in its members); on a native
    /// route, the first candidate.
    pub original: Arc<GroupRuntime>,
    /// A native route's candidate groups (then `original` is only the first of them).
    pub routed: Option<Arc<RouteTable>>,
    /// The error shape of the caller's protocol.
    pub shape: ErrorShape,
    /// The access key the caller authenticated with, if it used one (named in every record).
    pub access_key: Option<Arc<AccessKey>>,
    /// The serving thread the request runs on (none when called outside the serving loop), for
    /// the per-thread upstream pools and Redis clients.
    pub thread: Option<ServingThread>,
}

/// What a log record says of one attempt, beyond the request.
pub(super) struct Attempted<'a> {
    /// The group the attempt ran in.
    pub member: &'a GroupRuntime,
    /// The key it used, if it got as far as picking one.
    pub key: Option<&'a KeyMaterial>,
    /// The upstream URL, redacted and cut; empty before an upstream was picked.
    pub upstream_addr: String,
}

thread_local! {
    /// Each serving thread's UUIDv7 clock: `Uuid::now_v7` shares one behind a mutex that the
    /// threads would contend for on every request.
    static LOG_ID_CLOCK: uuid::ContextV7 = const { uuid::ContextV7::new() };
}

/// A log id: a UUIDv7, time-ordered (monotonic within a thread), so the primary-key index of
/// `request_logs` grows at its end.
fn log_id() -> String {
    let id = LOG_ID_CLOCK.with(|clock| uuid::Uuid::new_v7(uuid::Timestamp::now(clock)));
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    id.hyphenated().encode_lower(&mut buf).to_owned()
}

impl RequestCtx {
    /// The log record of one attempt. The request's last record (`kind` final) takes the
    /// request's own strings instead of copying them: nothing reads them afterwards.
    pub fn record(
        &mut self,
        at: Attempted<'_>,
        status: u16,
        error: &str,
        kind: RequestType,
    ) -> RequestLogRecord {
        let take = |s: &mut String| {
            if kind == RequestType::Final {
                std::mem::take(s)
            } else {
                s.clone()
            }
        };
        let g = &at.member.group;
        let parent = (self.original.group.is_aggregate() && self.original.group.id() != g.id())
            .then_some(&self.original.group);
        let body_logging = g.config.enable_request_body_logging;
        RequestLogRecord {
            id: log_id(),
            timestamp: chrono::Utc::now(),
            group_id: g.id(),
            group_name: g.def.name.clone(),
            parent_group_id: parent.map(|p| p.id()),
            parent_group_name: parent.map(|p| p.def.name.clone()).unwrap_or_default(),
            key_value: at.key.map(|k| k.stored.clone()).unwrap_or_default(),
            key_hash: at.key.map(|k| k.hash.clone()).unwrap_or_default(),
            model: take(&mut self.facts.model),
            is_success: error.is_empty() && status < 400,
            source_ip: take(&mut self.client_ip),
            status_code: i64::from(status),
            request_path: take(&mut self.request_path),
            duration_ms: self.start.elapsed().as_millis() as i64,
            error_message: error.to_owned(),
            user_agent: take(&mut self.user_agent),
            request_type: kind,
            upstream_addr: at.upstream_addr,
            is_stream: self.facts.stream,
            request_body: if body_logging {
                truncate_utf8(&String::from_utf8_lossy(&self.body), 65_000).to_owned()
            } else {
                String::new()
            },
            access_key_id: self.access_key.as_ref().map(|k| k.def.id),
            access_key_name: self
                .access_key
                .as_ref()
                .map(|k| k.def.name.clone())
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ids_are_v7_and_ordered_within_a_thread() {
        let ids: Vec<String> = (0..1000).map(|_| log_id()).collect();
        for id in &ids {
            let u = uuid::Uuid::parse_str(id).expect("a UUID");
            assert_eq!(u.get_version_num(), 7, "{id}");
            assert_eq!(id.len(), 36);
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "not increasing");
    }
}
