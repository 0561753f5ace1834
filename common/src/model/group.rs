//! Group-level value types: upstreams, header rules, group type.

use serde::{Deserialize, Serialize};

/// `standard` groups hold keys and upstreams; `aggregate` groups balance over standard sub-groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum GroupType {
    #[default]
    Standard,
    Aggregate,
}

impl GroupType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Aggregate => "aggregate",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "" | "standard" => Some(Self::Standard),
            "aggregate" => Some(Self::Aggregate),
            _ => None,
        }
    }
}

/// One upstream base URL with its weight (0 = disabled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upstream {
    pub url: String,
    pub weight: i64,
}

/// What a header rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeaderAction {
    Set,
    Remove,
}

/// A header rule applied to upstream requests after key injection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderRule {
    pub key: String,
    #[serde(default)]
    pub value: String,
    pub action: HeaderAction,
}
