//! Hop-by-hop headers (RFC 9110 §7.6.1) stay on their hop, in both directions; the client's
//! credentials and the headers the upstream request gets its own of are not forwarded either.

use http::header::{HeaderMap, HeaderName};

use crate::channel;

/// Hop-by-hop headers: never passed on, in either direction. `HeaderName`s, not strings:
/// comparing a standard header is comparing a tag, and removing one needs no parse.
static HOP_BY_HOP: [HeaderName; 7] = [
    http::header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::TE,
    http::header::TRAILER,
    http::header::TRANSFER_ENCODING,
    http::header::UPGRADE,
];

/// Request headers never forwarded upstream: the hop-by-hop ones, the client's credentials, and
/// those the upstream request gets its own of.
fn strip_request(name: &HeaderName) -> bool {
    use http::header::{AUTHORIZATION, CONTENT_LENGTH, HOST, PROXY_AUTHORIZATION};
    HOP_BY_HOP.contains(name)
        || [
            &AUTHORIZATION,
            &PROXY_AUTHORIZATION,
            &channel::X_API_KEY,
            &channel::X_GOOG_API_KEY,
            &HOST,
            &CONTENT_LENGTH,
        ]
        .contains(&name)
}

/// Removes the hop-by-hop headers of an upstream response before it goes back to the client,
/// with those its `Connection` header names.
pub fn strip_response(headers: &mut HeaderMap) {
    // A response has a handful of headers and usually none of these: one pass comparing names
    // costs less than a hashed lookup per name.
    if headers.keys().any(|k| HOP_BY_HOP.contains(k)) {
        // Usually empty (`Connection: keep-alive` names nothing else): no allocation then.
        let listed: Vec<HeaderName> = connection_listed(headers).collect();
        for name in listed {
            headers.remove(name);
        }
        for h in &HOP_BY_HOP {
            headers.remove(h);
        }
    }
}

/// The fields a `Connection` header names: hop-by-hop as well, so a proxy removes them. The
/// options most clients and servers send (`keep-alive`, `close`) and the names [`HOP_BY_HOP`]
/// removes anyway are skipped without a parse, as are tokens that are not header names.
fn connection_listed(headers: &HeaderMap) -> impl Iterator<Item = HeaderName> + '_ {
    headers
        .get_all(http::header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| {
            !t.is_empty()
                && !t.eq_ignore_ascii_case(b"close")
                && !HOP_BY_HOP
                    .iter()
                    .any(|h| t.eq_ignore_ascii_case(h.as_str().as_bytes()))
        })
        .filter_map(|t| HeaderName::from_bytes(t).ok())
}

/// The client's headers that go upstream: all but [`strip_request`]'s and those the client's
/// `Connection` header names.
pub fn forward_headers(src: &HeaderMap) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(src.len());
    let mut connection = false;
    for (k, v) in src {
        if !strip_request(k) {
            h.append(k.clone(), v.clone());
        } else if k == http::header::CONNECTION {
            connection = true;
        }
    }
    // Only then a second look (many clients send `Connection: keep-alive`, which names nothing
    // more and costs no allocation).
    if connection {
        for name in connection_listed(src) {
            h.remove(name);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn hop_by_hop_and_credentials_are_not_forwarded() {
        let mut h = HeaderMap::new();
        for n in [
            "authorization",
            "x-api-key",
            "x-goog-api-key",
            "host",
            "connection",
            "content-length",
            "keep-alive",
            "proxy-connection",
            "proxy-authorization",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "x-keep",
            "accept",
        ] {
            h.insert(HeaderName::from_static(n), HeaderValue::from_static("v"));
        }
        let f = forward_headers(&h);
        let names: Vec<_> = f.keys().map(|k| k.as_str().to_owned()).collect();
        assert_eq!(names.len(), 2);
        assert!(f.contains_key("x-keep") && f.contains_key("accept"));
    }

    #[test]
    fn hop_by_hop_response_headers_are_not_copied_back() {
        let mut h = HeaderMap::new();
        for n in [
            "connection",
            "keep-alive",
            "proxy-connection",
            "transfer-encoding",
            "upgrade",
            "trailer",
            "te",
            "content-type",
            "x-request-id",
        ] {
            h.insert(HeaderName::from_static(n), HeaderValue::from_static("v"));
        }
        strip_response(&mut h);
        let mut names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-type", "x-request-id"]);
    }

    #[test]
    fn headers_a_connection_header_lists_are_hop_by_hop_too() {
        // RFC 9110 §7.6.1: a proxy removes the fields a `Connection` header names, in either
        // direction; names in any case, over several header lines, malformed tokens ignored.
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Trace-Hop ,,x-other, not a name"),
        );
        h.append(
            http::header::CONNECTION,
            HeaderValue::from_static("x-second-line"),
        );
        // A line with a byte that is not visible ASCII still names its valid tokens.
        h.append(
            http::header::CONNECTION,
            HeaderValue::from_bytes(b"x-obs-line, \x80bad").expect("obs-text is a valid value"),
        );
        for n in [
            "x-trace-hop",
            "x-other",
            "x-second-line",
            "x-obs-line",
            "accept",
        ] {
            h.insert(HeaderName::from_static(n), HeaderValue::from_static("v"));
        }
        let f = forward_headers(&h);
        let names: Vec<_> = f.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["accept"]);
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
        strip_response(&mut h);
        let mut names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["accept", "content-type"]);
    }
}
