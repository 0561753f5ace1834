//! The domain model: channel types, groups, upstreams, keys and settings.

pub mod group;
pub mod settings;
pub mod status_matcher;

pub use group::{GroupType, HeaderAction, HeaderRule, Upstream};
pub use settings::{EffectiveConfig, SETTING_DEFS, SettingKind, SystemSettings};
pub use status_matcher::StatusMatcher;

use serde::{Deserialize, Serialize};

/// The API format a group speaks (spec §5). `channel-types` lists them in this stable order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChannelType {
    #[serde(rename = "openai")]
    OpenAi,
    #[serde(rename = "openai-response")]
    OpenAiResponse,
    #[serde(rename = "gemini")]
    Gemini,
    #[serde(rename = "anthropic")]
    Anthropic,
}

impl ChannelType {
    pub const ALL: [ChannelType; 4] = [
        ChannelType::OpenAi,
        ChannelType::OpenAiResponse,
        ChannelType::Gemini,
        ChannelType::Anthropic,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::OpenAiResponse => "openai-response",
            Self::Gemini => "gemini",
            Self::Anthropic => "anthropic",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The validation path used when a group sets none.
    pub fn default_validation_endpoint(self) -> &'static str {
        match self {
            Self::OpenAi => "/v1/chat/completions",
            Self::OpenAiResponse => "/v1/responses",
            Self::Gemini => "/v1beta/models",
            Self::Anthropic => "/v1/messages",
        }
    }
}

impl std::fmt::Display for ChannelType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key's status in the database; cool-down is a live state only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Active,
    Invalid,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Invalid => "invalid",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "invalid" => Some(Self::Invalid),
            _ => None,
        }
    }
}

/// A group name is a URL segment: `^[a-z0-9_-]{1,100}$`.
pub fn is_valid_group_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Splits a comma-separated proxy-key list (trimmed, empties dropped).
pub fn split_proxy_keys(s: &str) -> Vec<String> {
    s.split([',', '\n'])
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names() {
        assert!(is_valid_group_name("openai-main_2"));
        assert!(!is_valid_group_name("OpenAI"));
        assert!(!is_valid_group_name(""));
        assert!(!is_valid_group_name(&"a".repeat(101)));
        assert!(!is_valid_group_name("a/b"));
    }

    #[test]
    fn channel_types_round_trip_in_stable_order() {
        let names: Vec<_> = ChannelType::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names, ["openai", "openai-response", "gemini", "anthropic"]);
        for c in ChannelType::ALL {
            assert_eq!(ChannelType::parse(c.as_str()), Some(c));
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{c}\""));
        }
        assert_eq!(ChannelType::parse("azure"), None);
    }

    #[test]
    fn proxy_key_lists() {
        assert_eq!(split_proxy_keys(" a, b ,,c\nd "), ["a", "b", "c", "d"]);
        assert!(split_proxy_keys("").is_empty());
    }
}
