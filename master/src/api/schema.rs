//! Schemas of values the API stores as JSON text or plain strings (so their Rust fields are
//! `Value` or `String`), declared once here for the OpenAPI document.

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ChannelType {
    Openai,
    OpenaiResponse,
    Gemini,
    Anthropic,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupType {
    Standard,
    Aggregate,
}

/// An upstream base URL and its weight.
#[derive(ToSchema)]
pub struct Upstream {
    /// An http(s) base URL.
    pub url: String,
    #[schema(minimum = 0)]
    pub weight: i64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HeaderAction {
    Set,
    Remove,
}

/// A header the proxy sets on, or removes from, upstream requests.
#[derive(ToSchema)]
pub struct HeaderRule {
    /// Header name (stored canonical, e.g. `X-Foo`).
    pub key: String,
    /// May use `${CLIENT_IP}`, `${GROUP_NAME}`, `${API_KEY}`, `${TIMESTAMP_MS}`, `${TIMESTAMP_S}`.
    pub value: String,
    pub action: HeaderAction,
}

/// Per-group overrides of system settings (keys from `/api/groups/config-options`).
#[derive(ToSchema)]
pub struct GroupConfig {
    /// Seconds, ≥ 1.
    pub request_timeout: Option<i64>,
    /// Seconds, ≥ 1.
    pub idle_conn_timeout: Option<i64>,
    /// Seconds, ≥ 1.
    pub connect_timeout: Option<i64>,
    pub max_idle_conns: Option<i64>,
    pub max_idle_conns_per_host: Option<i64>,
    /// Seconds, ≥ 1.
    pub response_header_timeout: Option<i64>,
    pub proxy_url: Option<String>,
    pub max_retries: Option<i64>,
    /// 0: never blacklist.
    pub blacklist_threshold: Option<i64>,
    /// Comma-separated codes or ranges, e.g. `400-403,405-999`.
    pub failover_status_codes: Option<String>,
    pub key_validation_interval_minutes: Option<i64>,
    pub key_validation_concurrency: Option<i64>,
    pub key_validation_timeout_seconds: Option<i64>,
    pub enable_request_body_logging: Option<bool>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Active,
    Invalid,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RequestType {
    Retry,
    Final,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SettingType {
    Int,
    Bool,
    String,
}

/// A setting's value: an integer, a boolean or a string, by its type.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum SettingValue {
    Int(i64),
    Bool(bool),
    Str(String),
}

/// GPT-Load's success envelope.
#[derive(ToSchema)]
pub struct Envelope<T> {
    /// Always 0.
    pub code: i64,
    /// Localised (`Accept-Language`).
    pub message: String,
    pub data: T,
}

/// A success with a message and no data.
#[derive(ToSchema)]
pub struct MessageResponse {
    /// Always 0.
    pub code: i64,
    pub message: String,
}

/// An error: `code` is a string such as `VALIDATION_FAILED`; `message` says what is wrong.
#[derive(ToSchema)]
pub struct ErrorResponse {
    pub code: String,
    pub message: String,
}
