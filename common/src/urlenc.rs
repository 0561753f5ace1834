//! Percent-encoding as URLs carry it (RFC 3986): the one encoder the proxy uses for values it
//! puts in a query, and the decoder it reads clients' paths and queries with. Redaction
//! ([`crate::secret::redact`]) looks for a key in the forms these produce.

/// Percent-encodes a query component (RFC 3986 unreserved characters kept, uppercase hex).
pub fn encode_component(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

/// Decodes `%XX` escapes (a `%` not followed by two hex digits stays as it is); with
/// `plus_is_space`, `+` decodes to a space as in form-encoded queries. Invalid UTF-8 is replaced.
pub fn decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_all_but_unreserved_and_decodes_back() {
        assert_eq!(encode_component("AIza/+x= y~._-"), "AIza%2F%2Bx%3D%20y~._-");
        for s in ["plain", "a/b+c=d e", "ü€", "%%41", ""] {
            assert_eq!(decode(&encode_component(s), false), s);
        }
    }

    #[test]
    fn decodes_escapes_in_any_case_and_leaves_broken_ones() {
        assert_eq!(decode("%6Bey=%2e%2E%2f", false), "key=../");
        assert_eq!(decode("100%", false), "100%");
        assert_eq!(decode("%zz%4", false), "%zz%4");
        assert_eq!(decode("a+b", true), "a b");
        assert_eq!(decode("a+b", false), "a+b");
    }
}
