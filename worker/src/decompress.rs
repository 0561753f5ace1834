//! Upstream bodies the proxy reads itself (error bodies, model lists, validation answers),
//! decoded per `Content-Encoding`. Relayed bodies are never decoded.

use bytes::Bytes;
use http::header::HeaderMap;

/// Decodes a body per `Content-Encoding` (gzip, deflate, br, zstd); undecodable bodies stay as they are.
pub fn decompress(headers: &HeaderMap, body: Bytes) -> Bytes {
    use std::io::Read;
    let enc = headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let mut out = Vec::new();
    let ok = match enc.as_str() {
        "gzip" | "x-gzip" => flate2::read::MultiGzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .is_ok(),
        "deflate" => {
            flate2::read::ZlibDecoder::new(&body[..])
                .read_to_end(&mut out)
                .is_ok()
                || {
                    out.clear();
                    flate2::read::DeflateDecoder::new(&body[..])
                        .read_to_end(&mut out)
                        .is_ok()
                }
        }
        "br" => brotli::Decompressor::new(&body[..], 4096)
            .read_to_end(&mut out)
            .is_ok(),
        "zstd" => zstd::stream::read::Decoder::new(&body[..])
            .and_then(|mut d| d.read_to_end(&mut out))
            .is_ok(),
        _ => return body,
    };
    if ok { Bytes::from(out) } else { body }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn bodies_decompress_per_content_encoding() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"{\"error\":\"x\"}").unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONTENT_ENCODING,
            HeaderValue::from_static("gzip"),
        );
        assert_eq!(
            decompress(&h, Bytes::from(gz.finish().unwrap())),
            Bytes::from_static(b"{\"error\":\"x\"}")
        );
        assert_eq!(
            decompress(&h, Bytes::from_static(b"not gzip")),
            Bytes::from_static(b"not gzip")
        );
        assert_eq!(
            decompress(&HeaderMap::new(), Bytes::from_static(b"plain")),
            Bytes::from_static(b"plain")
        );
    }
}
