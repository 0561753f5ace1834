//! `POST /api/route/inspect`: where the native routes would send a request, and why every other
//! group is left out — the same rules the data plane applies ([`gpt_load_worker::proxy`]), read
//! from the live snapshot and key store.

use axum::extract::State;
use gpt_load_common::keystore::KeyStore;
use gpt_load_common::model::ChannelType;
use gpt_load_common::snapshot::access::AccessKey;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::response::{ApiError, ApiJson, ApiResult, ok};
use super::schema::{ChannelType as ChannelTypeDoc, Envelope};
use crate::state::AppState;

/// The request to inspect: who asks (an access key by id or by value; neither: a global proxy
/// key, unrestricted), in which protocol, for which model.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RouteInspectRequest {
    pub access_key_id: Option<i64>,
    /// An access key's value (never stored or echoed).
    pub key: Option<String>,
    #[schema(value_type = ChannelTypeDoc)]
    pub protocol: String,
    pub model: String,
}

/// A group the request could go to, in the order it would be tried.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteCandidate {
    pub group_id: i64,
    pub name: String,
    /// 0 is tried first; groups of one tier share by weight.
    pub tier: usize,
    pub priority: i64,
    pub weight: i64,
    pub active_keys: usize,
    pub cooling_keys: usize,
}

/// A group left out, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteExclusion {
    pub group_id: i64,
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RouteInspection {
    /// Whether the caller may make this request at all (its key usable, the protocol and model
    /// allowed by its filters).
    pub allowed: bool,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub reason: Option<String>,
    pub candidates: Vec<RouteCandidate>,
    pub excluded: Vec<RouteExclusion>,
}

#[utoipa::path(post, path = "/api/route/inspect", tag = "access-keys",
    operation_id = "inspectRoute",
    summary = "The groups a native-route request would go to, in order, and why others would not",
    request_body = RouteInspectRequest,
    responses((status = 200, body = Envelope<RouteInspection>)))]
pub async fn inspect(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RouteInspectRequest>,
) -> ApiResult<RouteInspection> {
    let protocol = ChannelType::parse(body.protocol.trim()).ok_or_else(|| {
        ApiError::validation("protocol must be one of openai, openai-response, anthropic, gemini")
    })?;
    let model = body.model.trim();
    if model.is_empty() {
        return Err(ApiError::validation("model is required"));
    }
    let snapshot = state.worker.snapshot();
    let key: Option<std::sync::Arc<AccessKey>> = match (&body.key, body.access_key_id) {
        (Some(k), _) if !k.is_empty() => {
            if snapshot.is_global_proxy_key(k) {
                None
            } else {
                Some(
                    snapshot
                        .access_key(k)
                        .cloned()
                        .ok_or_else(|| ApiError::not_found("no access key has this value"))?,
                )
            }
        }
        (_, Some(id)) => Some(
            snapshot
                .access_keys()
                .find(|k| k.def.id == id)
                .cloned()
                .ok_or_else(ApiError::resource_not_found)?,
        ),
        _ => None,
    };
    let mut reason = None;
    if let Some(k) = &key {
        // Allowed addresses need a request to check; the key's own state is checked here.
        if !k.def.enabled {
            reason = Some("the access key is disabled".to_owned());
        } else if k
            .def
            .expires_at
            .is_some_and(|t| chrono::Utc::now().timestamp() >= t)
        {
            reason = Some("the access key has expired".to_owned());
        } else if !k.allows_protocol(protocol) {
            reason = Some(format!(
                "the access key may not use the {} protocol",
                protocol.as_str()
            ));
        }
        if reason.is_none() && !k.allows_model(model) {
            reason = Some(format!("the access key may not use model '{model}'"));
        }
    }
    let channels = gpt_load_worker::proxy::channels_for(protocol);
    let mut eligible = Vec::new();
    let mut excluded = Vec::new();
    for g in snapshot.groups() {
        match gpt_load_worker::proxy::exclusion(g, channels, model, key.as_deref()) {
            Some(why) => excluded.push(RouteExclusion {
                group_id: g.id(),
                name: g.name().to_owned(),
                reason: why.reason(g, model),
            }),
            None => eligible.push(g.clone()),
        }
    }
    eligible.sort_by_key(|g| (g.def.priority, g.id()));
    let mut candidates = Vec::new();
    let mut tier = 0;
    let mut last_priority = eligible.first().map(|g| g.def.priority);
    for g in eligible {
        if Some(g.def.priority) != last_priority {
            tier += 1;
            last_priority = Some(g.def.priority);
        }
        let counts = state.store.counts(g.id()).await.unwrap_or_default();
        if counts.active == 0 {
            excluded.push(RouteExclusion {
                group_id: g.id(),
                name: g.name().to_owned(),
                reason: if counts.invalid > 0 {
                    "every key is blacklisted".into()
                } else {
                    "no active keys".into()
                },
            });
            continue;
        }
        candidates.push(RouteCandidate {
            group_id: g.id(),
            name: g.name().to_owned(),
            tier,
            priority: g.def.priority,
            weight: g.def.weight,
            active_keys: counts.active,
            cooling_keys: counts.cooling,
        });
    }
    ok(RouteInspection {
        allowed: reason.is_none(),
        reason,
        candidates,
        excluded,
    })
}
