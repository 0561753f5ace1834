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

/// Replaces every occurrence of `secret` in `text` with its mask: as it is, percent-encoded (as
/// the proxy puts it in a query, in either hex case) and JSON-escaped (`/` as `\/`), the forms in
/// which an upstream URL or an upstream's echo carries it. Redact before truncating: a cut copy
/// is no longer found.
pub fn redact(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        return text.to_owned();
    }
    // Most keys are letters, digits, `-` and `_`: their only form is the raw one, and most texts
    // (an upstream URL without the key, an error message) hold none of it. Nothing is computed
    // for them beyond one search.
    let plain = secret
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'));
    if plain {
        return if text.contains(secret) {
            text.replace(secret, &mask_key(secret))
        } else {
            text.to_owned()
        };
    }
    let mut out = std::borrow::Cow::Borrowed(text);
    let mask = mask_key(secret);
    let encoded = crate::urlenc::encode_component(secret);
    let forms = [
        Some(secret.to_owned()),
        Some(lower_hex_escapes(&encoded)),
        Some(encoded),
        secret.contains('/').then(|| secret.replace('/', "\\/")),
    ];
    for form in forms.iter().flatten() {
        if out.contains(form.as_str()) {
            out = std::borrow::Cow::Owned(out.replace(form.as_str(), &mask));
        }
    }
    out.into_owned()
}

/// `%2F` → `%2f`: the same escapes in lowercase hex.
fn lower_hex_escapes(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut escape = 0;
    for c in encoded.chars() {
        if c == '%' {
            escape = 2;
            out.push(c);
        } else if escape > 0 {
            escape -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A URL without the `user:password@` of its authority (for logs: upstream URLs may carry
/// credentials).
pub fn strip_userinfo(url: &str) -> std::borrow::Cow<'_, str> {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    match url[start..end].rfind('@') {
        Some(at) => std::borrow::Cow::Owned(format!("{}{}", &url[..start], &url[start + at + 1..])),
        None => std::borrow::Cow::Borrowed(url),
    }
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

    #[test]
    fn redaction_finds_encoded_and_escaped_forms() {
        let key = "AIzaSy/B+c=secret-0123";
        let masked = mask_key(key);
        for text in [
            "https://x/v1beta/models/m:generateContent?key=AIzaSy%2FB%2Bc%3Dsecret-0123".to_owned(),
            "?key=AIzaSy%2fB%2bc%3dsecret-0123".to_owned(),
            r#"{"error":"bad key AIzaSy\/B+c=secret-0123"}"#.to_owned(),
            format!("raw {key}"),
        ] {
            let out = redact(&text, key);
            assert!(!out.contains("secret-0123"), "{text} -> {out}");
            assert!(out.contains(&masked), "{text} -> {out}");
        }
    }

    #[test]
    fn userinfo_is_stripped_from_urls() {
        assert_eq!(
            strip_userinfo("https://user:pa%40ss@up.example:8443/v1/x?a=b@c"),
            "https://up.example:8443/v1/x?a=b@c"
        );
        assert_eq!(
            strip_userinfo("http://up.example/p@q"),
            "http://up.example/p@q"
        );
        assert_eq!(strip_userinfo("http://u@h"), "http://h");
    }
}
