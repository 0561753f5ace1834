//! Header rules (spec §4.1 step 7): `set` (with variables) or `remove`, applied after key injection
//! so they can override auth headers.

use gpt_load_common::model::{HeaderAction, HeaderRule};
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// A rule compiled once per snapshot.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    name: HeaderName,
    action: HeaderAction,
    value: String,
    has_vars: bool,
}

/// Compiles rules; rules with invalid header names are dropped.
pub fn compile(rules: &[HeaderRule]) -> Vec<CompiledRule> {
    rules
        .iter()
        .filter_map(|r| {
            let name = HeaderName::from_bytes(r.key.trim().as_bytes()).ok()?;
            Some(CompiledRule {
                name,
                action: r.action,
                has_vars: r.value.contains("${"),
                value: r.value.clone(),
            })
        })
        .collect()
}

/// Values for `${CLIENT_IP}`, `${TIMESTAMP_MS}`, `${TIMESTAMP_S}`, `${GROUP_NAME}`, `${API_KEY}`.
#[derive(Debug, Clone, Copy)]
pub struct Vars<'a> {
    pub client_ip: &'a str,
    pub group_name: &'a str,
    pub api_key: &'a str,
}

fn substitute(template: &str, vars: &Vars<'_>) -> String {
    let now = chrono::Utc::now();
    template
        .replace("${CLIENT_IP}", vars.client_ip)
        .replace("${TIMESTAMP_MS}", &now.timestamp_millis().to_string())
        .replace("${TIMESTAMP_S}", &now.timestamp().to_string())
        .replace("${GROUP_NAME}", vars.group_name)
        .replace("${API_KEY}", vars.api_key)
}

/// Applies the rules in order.
pub fn apply(rules: &[CompiledRule], headers: &mut HeaderMap, vars: &Vars<'_>) {
    for r in rules {
        match r.action {
            HeaderAction::Remove => {
                headers.remove(&r.name);
            }
            HeaderAction::Set => {
                let value = if r.has_vars {
                    substitute(&r.value, vars)
                } else {
                    r.value.clone()
                };
                if let Ok(v) = HeaderValue::from_str(&value) {
                    headers.insert(r.name.clone(), v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_with_variables_and_remove() {
        let rules = compile(&[
            HeaderRule {
                key: "X-Custom-Auth".into(),
                value: "Key ${API_KEY} from ${CLIENT_IP} in ${GROUP_NAME}".into(),
                action: HeaderAction::Set,
            },
            HeaderRule {
                key: "user-agent".into(),
                value: String::new(),
                action: HeaderAction::Remove,
            },
            HeaderRule {
                key: "X-Ts".into(),
                value: "${TIMESTAMP_S}".into(),
                action: HeaderAction::Set,
            },
            HeaderRule {
                key: "bad header".into(),
                value: "x".into(),
                action: HeaderAction::Set,
            },
        ]);
        assert_eq!(rules.len(), 3);
        let mut h = HeaderMap::new();
        h.insert("user-agent", HeaderValue::from_static("sdk"));
        apply(
            &rules,
            &mut h,
            &Vars {
                client_ip: "1.2.3.4",
                group_name: "g",
                api_key: "sk-1",
            },
        );
        assert_eq!(h["x-custom-auth"], "Key sk-1 from 1.2.3.4 in g");
        assert!(h.get("user-agent").is_none());
        let ts: i64 = h["x-ts"].to_str().unwrap().parse().unwrap();
        assert!((ts - chrono::Utc::now().timestamp()).abs() < 5);
    }
}
