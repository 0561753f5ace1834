//! An upstream's base URL, split once per snapshot for the per-request join with the client's
//! path, and the `Host` header its requests carry.

use crate::channel::UpstreamTarget;

/// An upstream base URL split for fast joining.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamBase {
    /// `scheme://authority`.
    pub origin: String,
    /// Base path without a trailing `/` (may be empty).
    pub path: String,
    /// The `Host` header its requests carry, built once here (hyper's client formatted it on
    /// every request).
    pub host: http::HeaderValue,
}

/// The `Host` header for an upstream URL's authority: host and port as the URL writes them,
/// without user info — what Go (GPT-Load) sends, and over HTTP/2 the same as the `:authority`
/// hyper derives from the URL.
pub fn host_of(authority: &http::uri::Authority) -> &str {
    authority.as_str().rsplit('@').next().unwrap_or_default()
}

impl UpstreamBase {
    pub fn parse(url: &str) -> Option<Self> {
        let uri: http::Uri = url.trim().parse().ok()?;
        let scheme = uri.scheme_str()?;
        if scheme != "http" && scheme != "https" {
            return None;
        }
        let authority = uri.authority()?;
        let host = host_of(authority);
        Some(Self {
            origin: format!("{scheme}://{authority}"),
            path: uri.path().trim_end_matches('/').to_owned(),
            host: http::HeaderValue::from_str(host).ok()?,
        })
    }

    pub fn url(&self) -> String {
        format!("{}{}", self.origin, self.path)
    }

    /// The upstream request's target: this base joined with the client's path (after
    /// `/proxy/{group}`) and query.
    pub fn target(&self, client_path: &str, query: Option<&str>) -> UpstreamTarget {
        let mut path = String::with_capacity(self.path.len() + client_path.len());
        path.push_str(&self.path);
        path.push_str(client_path);
        UpstreamTarget {
            origin: self.origin.clone(),
            path,
            query: query.map(str::to_owned),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_bases_split_and_reject_bad_urls() {
        let b = UpstreamBase::parse("https://api.example.com/openai/").unwrap();
        assert_eq!(b.origin, "https://api.example.com");
        assert_eq!(b.path, "/openai");
        assert_eq!(
            UpstreamBase::parse("http://127.0.0.1:8080").unwrap().path,
            ""
        );
        assert!(UpstreamBase::parse("ftp://x").is_none());
        let host = |url: &str| UpstreamBase::parse(url).unwrap().host;
        assert_eq!(host("https://api.example.com/v1"), "api.example.com");
        assert_eq!(host("https://api.example.com:443"), "api.example.com:443");
        assert_eq!(host("http://127.0.0.1:80/x"), "127.0.0.1:80");
        assert_eq!(host("http://127.0.0.1:8080"), "127.0.0.1:8080");
        assert_eq!(host("https://user:pw@[::1]:8443/"), "[::1]:8443");
        assert!(UpstreamBase::parse("not a url").is_none());
    }
}
