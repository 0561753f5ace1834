//! The native routes: the vendors' own paths (`/v1/chat/completions`, `/v1/messages`,
//! `/v1beta/models/{model}:generateContent`, …) with no group in the URL. The caller's key — an
//! access key, or a global proxy key acting as an unrestricted one — and the model it asks for
//! choose the groups: those whose channel speaks the route's protocol, that serve the model and
//! that the key may use, best priority tier first, weighted within a tier.
//!
//! Admission here is the group route's chain without the group: throttle → path → credential →
//! caller (access key usable, protocol allowed) → body → model allowed → candidates → permit.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use gpt_load_common::model::ChannelType;
use gpt_load_common::snapshot::GroupSnapshot;
use gpt_load_common::snapshot::access::AccessKey;
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode};

use super::admission::{check_throttle, has_dot_segment, usable};
use crate::error::{ErrorShape, ProxyError};
use crate::state::{RouteScope, Runtime, WorkerState};

/// What a native route is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A request relayed to a group chosen by its model.
    Model,
    /// `GET /v1/models` in OpenAI's shape.
    ModelsOpenAi,
    /// `GET /v1/models` with `anthropic-version`: Anthropic's shape.
    ModelsAnthropic,
    /// `GET /v1beta/models`: Gemini's shape.
    ModelsGemini,
}

/// A recognised native route.
#[derive(Debug, Clone, Copy)]
pub(super) struct NativeRoute {
    /// The protocol the caller speaks (what access key protocol filters name).
    pub protocol: ChannelType,
    /// The channel types whose groups serve it.
    pub channels: &'static [ChannelType],
    pub shape: ErrorShape,
    pub kind: Kind,
}

const OPENAI: &[ChannelType] = &[ChannelType::OpenAi];
/// An OpenAI channel's base serves the Responses API too.
const RESPONSES: &[ChannelType] = &[ChannelType::OpenAiResponse, ChannelType::OpenAi];
const OPENAI_MODELS: &[ChannelType] = &[ChannelType::OpenAi, ChannelType::OpenAiResponse];
const ANTHROPIC: &[ChannelType] = &[ChannelType::Anthropic];
const GEMINI: &[ChannelType] = &[ChannelType::Gemini];

const GEMINI_ACTIONS: &[&str] = &[
    "generateContent",
    "streamGenerateContent",
    "countTokens",
    "embedContent",
    "batchEmbedContents",
];

fn route_of(
    protocol: ChannelType,
    channels: &'static [ChannelType],
    shape: ErrorShape,
    kind: Kind,
) -> Option<NativeRoute> {
    Some(NativeRoute {
        protocol,
        channels,
        shape,
        kind,
    })
}

/// The native route for a request, if it is one.
pub(super) fn route(method: &Method, path: &str, parts: &Parts) -> Option<NativeRoute> {
    use ChannelType as C;
    use ErrorShape as S;
    let post = method == Method::POST;
    let get = method == Method::GET;
    match path {
        "/v1/chat/completions" | "/v1/embeddings" if post => {
            route_of(C::OpenAi, OPENAI, S::OpenAi, Kind::Model)
        }
        "/v1/responses" if post => route_of(C::OpenAiResponse, RESPONSES, S::OpenAi, Kind::Model),
        "/v1/messages" | "/v1/messages/count_tokens" if post => {
            route_of(C::Anthropic, ANTHROPIC, S::Anthropic, Kind::Model)
        }
        "/v1/models" if get => {
            let gemini_client = parts.headers.contains_key("x-goog-api-key")
                || parts
                    .uri
                    .query()
                    .is_some_and(|q| q.split('&').any(|p| p.starts_with("key=")));
            if gemini_client {
                route_of(C::Gemini, GEMINI, S::Gemini, Kind::ModelsGemini)
            } else if parts.headers.contains_key("anthropic-version") {
                route_of(C::Anthropic, ANTHROPIC, S::Anthropic, Kind::ModelsAnthropic)
            } else {
                route_of(C::OpenAi, OPENAI_MODELS, S::OpenAi, Kind::ModelsOpenAi)
            }
        }
        "/v1beta/models" if get => route_of(C::Gemini, GEMINI, S::Gemini, Kind::ModelsGemini),
        _ if post => {
            // Gemini serves `v1` beside `v1beta` (google-genai uses `v1` with a custom base URL).
            let rest = path
                .strip_prefix("/v1beta/models/")
                .or_else(|| path.strip_prefix("/v1/models/"))?;
            let (model, action) = rest.rsplit_once(':')?;
            (!model.is_empty() && !model.contains('/') && GEMINI_ACTIONS.contains(&action))
                .then_some(())?;
            route_of(C::Gemini, GEMINI, S::Gemini, Kind::Model)
        }
        _ => None,
    }
}

/// The channel types whose groups serve a native route of `protocol` (what the route inspector
/// asks).
pub fn channels_for(protocol: ChannelType) -> &'static [ChannelType] {
    match protocol {
        ChannelType::OpenAi => OPENAI,
        ChannelType::OpenAiResponse => RESPONSES,
        ChannelType::Anthropic => ANTHROPIC,
        ChannelType::Gemini => GEMINI,
    }
}

/// The error shape for a path under the native prefixes that is no route.
pub(super) fn shape_for_path(path: &str) -> ErrorShape {
    if path.starts_with("/v1beta/") || (path.starts_with("/v1/models/") && path.contains(':')) {
        ErrorShape::Gemini
    } else if path.starts_with("/v1/messages") {
        ErrorShape::Anthropic
    } else {
        ErrorShape::OpenAi
    }
}

/// Who is calling.
#[derive(Debug, Clone)]
pub(super) enum Caller {
    /// A global proxy key: every group, every model.
    ProxyKey,
    Access(Arc<AccessKey>),
}

impl Caller {
    pub fn access_key(&self) -> Option<&Arc<AccessKey>> {
        match self {
            Caller::ProxyKey => None,
            Caller::Access(k) => Some(k),
        }
    }

    fn allows_model(&self, model: &str) -> bool {
        self.access_key().is_none_or(|k| k.allows_model(model))
    }
}

/// Admission up to the body: throttle, path, credential, caller, protocol. A wrong key counts
/// toward the address's throttle.
pub(super) fn identify(
    state: &WorkerState,
    runtime: &Runtime,
    parts: &Parts,
    route: &NativeRoute,
    client_ip: &str,
) -> Result<(Caller, Option<String>), ProxyError> {
    check_throttle(state, client_ip)?;
    if has_dot_segment(parts.uri.path()) {
        return Err(ProxyError::DotSegment);
    }
    let (key, query) = crate::credential::extract_client_key(&parts.headers, parts.uri.query());
    if key.is_empty() {
        return Err(ProxyError::Unauthorized);
    }
    let snapshot = &runtime.snapshot;
    // One hash for both lookups; the key itself is never compared.
    let d = gpt_load_common::snapshot::digest(&key);
    let caller = if snapshot.is_global_digest(&d) {
        Caller::ProxyKey
    } else if let Some(k) = snapshot.access_key_by_digest(&d) {
        usable(k, client_ip)?;
        Caller::Access(k.clone())
    } else {
        state.0.throttle.record_failure(client_ip);
        return Err(ProxyError::Unauthorized);
    };
    if let Caller::Access(k) = &caller
        && !k.allows_protocol(route.protocol)
    {
        return Err(ProxyError::Forbidden(format!(
            "this access key may not use the {} protocol",
            route.protocol.as_str()
        )));
    }
    Ok((caller, query))
}

fn channel_bits(channels: &[ChannelType]) -> u8 {
    channels
        .iter()
        .map(|c| match c {
            ChannelType::OpenAi => 1,
            ChannelType::OpenAiResponse => 2,
            ChannelType::Gemini => 4,
            ChannelType::Anthropic => 8,
        })
        .fold(0, |a, b| a | b)
}

/// The groups that may serve `model` for `caller` on `route`, or why there are none.
pub(super) fn candidates(
    runtime: &Runtime,
    route: &NativeRoute,
    caller: &Caller,
    model: &str,
) -> Result<Arc<crate::state::RouteTable>, ProxyError> {
    if model.is_empty() {
        return Err(ProxyError::BadRequest(
            "the request names no model; native routes choose the group by its model".into(),
        ));
    }
    if !caller.allows_model(model) {
        return Err(ProxyError::Forbidden(format!(
            "this access key may not use model '{model}'"
        )));
    }
    let scope = RouteScope {
        channels: channel_bits(route.channels),
        access_key: caller.access_key().map(|k| k.def.id),
    };
    let key = caller.access_key().map(|k| &**k);
    let table = runtime.route_table(scope, model, |g| {
        exclusion(g, route.channels, model, key).is_none()
    });
    if !table.is_empty() {
        return Ok(table);
    }
    let served = runtime
        .snapshot
        .groups()
        .iter()
        .any(|g| exclusion(g, route.channels, model, None).is_none());
    Err(if served {
        ProxyError::Forbidden(format!(
            "no group this access key may use serves model '{model}'"
        ))
    } else {
        ProxyError::ModelNotFound(format!(
            "The model '{model}' is not served on {} by any group",
            route.protocol.as_str()
        ))
    })
}

/// Why a group is not a native-route candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exclusion {
    Aggregate,
    Channel,
    NoModels,
    Model,
    KeyGroupFilter,
    ZeroWeight,
}

impl Exclusion {
    /// The reason in words (for the route inspector).
    pub fn reason(self, g: &GroupSnapshot, model: &str) -> String {
        match self {
            Self::Aggregate => "an aggregate group: reachable only through /proxy/{group}".into(),
            Self::Channel => format!(
                "its channel ({}) does not serve this protocol",
                g.def.channel_type.as_str()
            ),
            Self::NoModels => "no models configured: reachable only through /proxy/{group}".into(),
            Self::Model => format!("does not serve model '{model}'"),
            Self::KeyGroupFilter => "the access key's group filter excludes it".into(),
            Self::ZeroWeight => "weight 0: takes no traffic".into(),
        }
    }
}

/// Why `g` is not a candidate for `model` on a route served by `channels` for a caller with
/// `key` (`None`: a global proxy key), if it is not: the one rule the data plane routes by and
/// the route inspector explains.
pub fn exclusion(
    g: &GroupSnapshot,
    channels: &[ChannelType],
    model: &str,
    key: Option<&AccessKey>,
) -> Option<Exclusion> {
    if g.is_aggregate() {
        Some(Exclusion::Aggregate)
    } else if !channels.contains(&g.def.channel_type) {
        Some(Exclusion::Channel)
    } else if g.def.models.is_empty() {
        Some(Exclusion::NoModels)
    } else if !g.def.serves_model(model) {
        Some(Exclusion::Model)
    } else if key.is_some_and(|k| !k.allows_group(g.id())) {
        Some(Exclusion::KeyGroupFilter)
    } else if g.def.weight <= 0 {
        Some(Exclusion::ZeroWeight)
    } else {
        None
    }
}

/// The model names `caller` may use on `route`: the exact names and aliases of the groups it may
/// reach (glob patterns name no model to list).
fn model_names(runtime: &Runtime, route: &NativeRoute, caller: &Caller) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for g in runtime.snapshot.groups() {
        if g.is_aggregate()
            || g.def.models.is_empty()
            || !route.channels.contains(&g.def.channel_type)
            || caller.access_key().is_some_and(|k| !k.allows_group(g.id()))
        {
            continue;
        }
        let exact = g.def.models.iter().filter(|m| !m.contains(['*', '?']));
        let aliases = g.def.model_redirect_rules.keys();
        for m in exact.chain(aliases) {
            if caller.allows_model(m) && g.def.serves_model(m) {
                out.insert(m.clone());
            }
        }
    }
    out
}

/// `GET /v1/models` and `GET /v1beta/models`, in the caller's protocol's shape.
pub(super) fn model_list(runtime: &Runtime, route: &NativeRoute, caller: &Caller) -> Response {
    let names = model_names(runtime, route, caller);
    let body = match route.kind {
        Kind::ModelsAnthropic => serde_json::json!({
            "data": names.iter().map(|m| serde_json::json!({
                "type": "model",
                "id": m,
                "display_name": m,
                "created_at": "1970-01-01T00:00:00Z",
            })).collect::<Vec<_>>(),
            "has_more": false,
            "first_id": names.first(),
            "last_id": names.last(),
        }),
        Kind::ModelsGemini => serde_json::json!({
            "models": names.iter().map(|m| serde_json::json!({
                "name": format!("models/{m}"),
                "displayName": m,
                "supportedGenerationMethods": GEMINI_ACTIONS,
            })).collect::<Vec<_>>(),
        }),
        _ => serde_json::json!({
            "object": "list",
            "data": names.iter().map(|m| serde_json::json!({
                "id": m,
                "object": "model",
                "created": 0,
                "owned_by": "gpt-load",
            })).collect::<Vec<_>>(),
        }),
    };
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: Method, path: &str, anthropic: bool) -> Parts {
        let mut b = http::Request::builder().method(method).uri(path);
        if anthropic {
            b = b.header("anthropic-version", "2023-06-01");
        }
        b.body(()).unwrap().into_parts().0
    }

    fn r(method: Method, path: &str) -> Option<NativeRoute> {
        route(&method, path, &parts(method.clone(), path, false))
    }

    #[test]
    fn routes_by_method_and_path() {
        let chat = r(Method::POST, "/v1/chat/completions").unwrap();
        assert_eq!(
            (chat.protocol, chat.shape, chat.kind),
            (ChannelType::OpenAi, ErrorShape::OpenAi, Kind::Model)
        );
        assert_eq!(
            r(Method::POST, "/v1/responses").unwrap().protocol,
            ChannelType::OpenAiResponse
        );
        assert_eq!(
            r(Method::POST, "/v1/messages/count_tokens").unwrap().shape,
            ErrorShape::Anthropic
        );
        let gem = r(
            Method::POST,
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        )
        .unwrap();
        assert_eq!((gem.protocol, gem.kind), (ChannelType::Gemini, Kind::Model));
        assert_eq!(
            r(Method::GET, "/v1/models").unwrap().kind,
            Kind::ModelsOpenAi
        );
        let p = parts(Method::GET, "/v1/models", true);
        assert_eq!(
            route(&Method::GET, "/v1/models", &p).unwrap().kind,
            Kind::ModelsAnthropic
        );
        assert_eq!(
            r(Method::GET, "/v1beta/models").unwrap().kind,
            Kind::ModelsGemini
        );
        for (m, p) in [
            (Method::GET, "/v1/chat/completions"),
            (Method::POST, "/v1/chat"),
            (Method::POST, "/v1beta/models/x:deleteEverything"),
            (Method::POST, "/v1beta/models/:generateContent"),
            (Method::POST, "/v1beta/models/a/b:generateContent"),
            (Method::POST, "/v2/chat/completions"),
        ] {
            assert!(r(m.clone(), p).is_none(), "{m} {p}");
        }
        assert_eq!(shape_for_path("/v1beta/x"), ErrorShape::Gemini);
        assert_eq!(shape_for_path("/v1/messages/x"), ErrorShape::Anthropic);
        assert_eq!(shape_for_path("/v1/x"), ErrorShape::OpenAi);
    }
}
