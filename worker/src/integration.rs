//! Integration info (spec §7): which groups a proxy key can use and their paths, so clients can
//! configure themselves. Authenticated by the proxy key in `?key=`; failures are throttled per
//! address by the caller.

use axum::response::{IntoResponse, Response};
use gpt_load_common::model::ChannelType;
use gpt_load_common::snapshot::{ConfigSnapshot, GroupSnapshot};
use http::StatusCode;
use serde::Serialize;

use crate::error::json_error;
use crate::state::Runtime;

/// One entry of the answer.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IntegrationGroupInfo {
    pub name: String,
    pub display_name: String,
    pub channel_type: String,
    pub path: String,
}

/// The proxy key in `?key=`.
pub fn query_key(query: Option<&str>) -> Option<String> {
    let q = query?;
    q.split('&')
        .find_map(|p| p.strip_prefix("key="))
        .filter(|v| !v.is_empty())
        .map(|v| {
            crate::credential::extract_client_key(
                &http::HeaderMap::new(),
                Some(&format!("key={v}")),
            )
            .0
        })
}

/// `custom` when an OpenAI-style group validates against a non-default endpoint.
fn effective_channel_type(g: &GroupSnapshot) -> String {
    let ct = g.def.channel_type;
    if matches!(ct, ChannelType::OpenAi | ChannelType::OpenAiResponse) {
        let ep = &g.def.validation_endpoint;
        if !ep.is_empty() && ep != ct.default_validation_endpoint() {
            return "custom".into();
        }
    }
    ct.as_str().to_owned()
}

fn info(g: &GroupSnapshot, group_specific: bool) -> IntegrationGroupInfo {
    let channel_type = effective_channel_type(g);
    let path = match (channel_type.as_str(), group_specific) {
        ("custom", true) => g.def.validation_endpoint.clone(),
        ("custom", false) => format!("/proxy/{}{}", g.def.name, g.def.validation_endpoint),
        (_, true) => String::new(),
        (_, false) => format!("/proxy/{}", g.def.name),
    };
    IntegrationGroupInfo {
        name: g.def.name.clone(),
        display_name: g.def.display_name.clone(),
        channel_type,
        path,
    }
}

/// Every group the key may use, in the groups' list order.
pub fn groups_for_key(snapshot: &ConfigSnapshot, key: &str) -> Vec<IntegrationGroupInfo> {
    snapshot
        .groups()
        .iter()
        .filter(|g| snapshot.authorizes(g, key))
        .map(|g| info(g, false))
        .collect()
}

/// `data` in GPT-Load's success envelope (this route is outside `/api`: always `操作成功`).
pub fn success(data: Vec<IntegrationGroupInfo>) -> Response {
    axum::Json(serde_json::json!({"code": 0, "message": "操作成功", "data": data})).into_response()
}

/// `/proxy/{group}/api/integration/info?key=`.
pub fn group_info(runtime: &Runtime, group: &str, query: Option<&str>) -> Response {
    let Some(key) = query_key(query) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
            "Proxy key is required",
        );
    };
    let Some(g) = runtime.group(group) else {
        return json_error(StatusCode::NOT_FOUND, "NOT_FOUND", "Group not found");
    };
    if !runtime.snapshot.authorizes(&g.group, &key) {
        return json_error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
            "Invalid or unauthorized proxy key",
        );
    }
    success(vec![info(&g.group, true)])
}
