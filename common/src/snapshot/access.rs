//! Access keys as the data plane sees them: found by the SHA-256 digest of the key (the key itself
//! never reaches a worker), with the rules that decide whether a request may use them.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::model::ChannelType;

/// An access key's definition in the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKeyDef {
    pub id: i64,
    pub name: String,
    /// SHA-256 of the key.
    pub digest: [u8; 32],
    pub enabled: bool,
    /// Unix seconds after which the key is refused; `None`: never.
    pub expires_at: Option<i64>,
    /// Addresses or CIDRs the key may be used from; empty: any.
    pub allowed_ips: Vec<String>,
    /// Group ids the key may reach; empty: any.
    pub groups: Vec<i64>,
    /// Model names or glob patterns (`*`, `?`); empty: any.
    pub models: Vec<String>,
    /// Protocols (`openai`, `openai-response`, `anthropic`, `gemini`); empty: any.
    pub protocols: Vec<ChannelType>,
}

/// An access key ready for lookups.
#[derive(Debug)]
pub struct AccessKey {
    pub def: AccessKeyDef,
    nets: Vec<IpNet>,
}

impl AccessKey {
    pub fn new(def: AccessKeyDef) -> Self {
        let nets = def
            .allowed_ips
            .iter()
            .filter_map(|s| parse_net(s))
            .collect();
        Self { def, nets }
    }

    /// Whether the key may be used at all, now (`now` in Unix seconds), from `ip`; the refusal
    /// says why (the caller is then not authenticated: a 401).
    pub fn usable(&self, now: i64, ip: &str) -> Result<(), &'static str> {
        if !self.def.enabled {
            return Err("this access key is disabled");
        }
        if self.def.expires_at.is_some_and(|t| now >= t) {
            return Err("this access key has expired");
        }
        if !self.def.allowed_ips.is_empty() {
            let allowed = ip
                .parse::<IpAddr>()
                .is_ok_and(|a| self.nets.iter().any(|n| n.contains(&a)));
            if !allowed {
                return Err("this access key may not be used from this address");
            }
        }
        Ok(())
    }

    /// Whether the key's filters let it use `protocol`.
    pub fn allows_protocol(&self, protocol: ChannelType) -> bool {
        self.def.protocols.is_empty() || self.def.protocols.contains(&protocol)
    }

    /// Whether the key's filters let it reach group `id`.
    pub fn allows_group(&self, id: i64) -> bool {
        self.def.groups.is_empty() || self.def.groups.contains(&id)
    }

    /// Whether the key's filters let it ask for `model` (an empty model passes: there is nothing
    /// to filter on, as for a model list).
    pub fn allows_model(&self, model: &str) -> bool {
        model.is_empty()
            || self.def.models.is_empty()
            || self.def.models.iter().any(|p| glob_match(p, model))
    }
}

/// An address (`10.0.0.1`) or a network (`10.0.0.0/8`).
pub fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// Glob matching for model names: `*` any run of characters, `?` one character; anything else
/// literal, case-sensitive (model names are).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    if !pattern.contains(['*', '?']) {
        return pattern == text;
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matching with one backtrack point: linear in practice, no recursion.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(f: impl FnOnce(&mut AccessKeyDef)) -> AccessKey {
        let mut def = AccessKeyDef {
            id: 1,
            name: "k".into(),
            digest: [0; 32],
            enabled: true,
            expires_at: None,
            allowed_ips: vec![],
            groups: vec![],
            models: vec![],
            protocols: vec![],
        };
        f(&mut def);
        AccessKey::new(def)
    }

    #[test]
    fn globs() {
        for (p, t) in [
            ("gpt-4o", "gpt-4o"),
            ("gpt-*", "gpt-4o-mini"),
            ("*", ""),
            ("*mini", "gpt-4o-mini"),
            ("claude-?-sonnet", "claude-4-sonnet"),
            ("a*b*c", "axxbyyc"),
        ] {
            assert!(glob_match(p, t), "{p} {t}");
        }
        for (p, t) in [
            ("gpt-4o", "gpt-4o-mini"),
            ("gpt-*", "o3"),
            ("?", ""),
            ("a*b*c", "axxbyy"),
            ("GPT-*", "gpt-4o"),
        ] {
            assert!(!glob_match(p, t), "{p} {t}");
        }
    }

    #[test]
    fn usability_and_filters() {
        assert!(key(|_| {}).usable(100, "1.2.3.4").is_ok());
        assert_eq!(
            key(|d| d.enabled = false).usable(100, "1.2.3.4"),
            Err("this access key is disabled")
        );
        let exp = key(|d| d.expires_at = Some(100));
        assert!(exp.usable(99, "1.2.3.4").is_ok());
        assert!(exp.usable(100, "1.2.3.4").is_err());
        let ips = key(|d| d.allowed_ips = vec!["10.0.0.0/8".into(), "::1".into()]);
        assert!(ips.usable(0, "10.1.2.3").is_ok());
        assert!(ips.usable(0, "::1").is_ok());
        assert!(ips.usable(0, "11.0.0.1").is_err());
        assert!(ips.usable(0, "not an ip").is_err());
        let f = key(|d| {
            d.groups = vec![2];
            d.models = vec!["gpt-*".into()];
            d.protocols = vec![ChannelType::OpenAi];
        });
        assert!(f.allows_group(2) && !f.allows_group(3));
        assert!(f.allows_model("gpt-4o") && !f.allows_model("claude-3") && f.allows_model(""));
        assert!(f.allows_protocol(ChannelType::OpenAi));
        assert!(!f.allows_protocol(ChannelType::Anthropic));
    }
}
