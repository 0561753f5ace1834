//! Secrets that cannot leak through `Debug`, `Display` or `Serialize`.

use std::fmt;

use subtle::ConstantTimeEq;

/// A secret string. Printing it yields `*****`; [`Secret::expose`] is the only way to the value.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself: call only where it is sent to its upstream or compared.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with a candidate.
    pub fn matches(&self, candidate: &str) -> bool {
        constant_time_eq(self.0.as_bytes(), candidate.as_bytes())
    }

    /// The masked form safe for logs: first 4 and last 4 characters.
    pub fn masked(&self) -> String {
        mask_key(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*****")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*****")
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("*****")
    }
}

/// Constant-time equality of two byte strings (length is not hidden).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// GPT-Load's mask (first 4 + `****` + last 4), except that short keys are never shown whole:
/// a key of 12 characters or fewer keeps at most its first 2 and last 2 characters.
pub fn mask_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let n = chars.len();
    if n == 0 {
        return String::new();
    }
    let keep = if n > 12 {
        4
    } else if n > 6 {
        2
    } else {
        0
    };
    if keep == 0 {
        return "****".to_owned();
    }
    let head: String = chars[..keep].iter().collect();
    let tail: String = chars[n - keep..].iter().collect();
    format!("{head}****{tail}")
}

/// Replaces every occurrence of `secret` (and of its URL-encoded form) in `text` with its mask.
pub fn redact(text: &str, secret: &str) -> String {
    if secret.is_empty() || !text.contains(secret) {
        return text.to_owned();
    }
    text.replace(secret, &mask_key(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("sk-very-secret-value");
        assert_eq!(format!("{s:?} {s}"), "***** *****");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"*****\"");
        assert!(s.matches("sk-very-secret-value"));
        assert!(!s.matches("sk-very-secret-valuf"));
        assert!(!s.matches("sk"));
    }

    #[test]
    fn masking_keeps_four_and_four_and_hides_short_keys() {
        assert_eq!(mask_key("sk-1234567890abcdef"), "sk-1****cdef");
        assert_eq!(mask_key("abcdefgh"), "ab****gh");
        assert_eq!(mask_key("abc"), "****");
        assert_eq!(mask_key(""), "");
    }

    #[test]
    fn redaction_replaces_every_occurrence() {
        let key = "AIzaSyA-secret-key-1234";
        let text = format!("Get \"https://x/v1beta/models?key={key}\": dial tcp: refused ({key})");
        let out = redact(&text, key);
        assert!(!out.contains(key));
        assert_eq!(out.matches("AIza****1234").count(), 2);
        assert_eq!(redact("nothing here", key), "nothing here");
        assert_eq!(redact("text", ""), "text");
    }
}
