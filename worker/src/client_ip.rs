//! The client address of a request: the peer, or — only when the peer is a trusted proxy — the
//! first `X-Forwarded-For` entry / `X-Real-IP` (GPT-Load trusts these from anyone).

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use http::request::Parts;
use ipnet::IpNet;

pub fn client_ip(parts: &Parts, trusted: &[IpNet]) -> String {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(p) = peer {
        if trusted.iter().any(|net| net.contains(&p)) {
            let forwarded = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(str::trim)
                .filter(|s| s.parse::<IpAddr>().is_ok())
                .or_else(|| {
                    parts
                        .headers
                        .get("x-real-ip")
                        .and_then(|v| v.to_str().ok())
                        .map(str::trim)
                        .filter(|s| s.parse::<IpAddr>().is_ok())
                });
            if let Some(f) = forwarded {
                return f.to_owned();
            }
        }
        return ip_string(p);
    }
    String::new()
}

/// `ip.to_string()`, without the formatting machinery for IPv4 (the common case, on every
/// proxied request: `Display` for `Ipv4Addr` costs about as much as the rest of this module).
fn ip_string(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut s = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        if octet >= 100 {
            s.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            s.push(char::from(b'0' + octet / 10 % 10));
        }
        s.push(char::from(b'0' + octet % 10));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(peer: &str, xff: Option<&str>) -> Parts {
        let mut b = http::Request::builder().uri("/");
        if let Some(x) = xff {
            b = b.header("x-forwarded-for", x);
        }
        let (mut p, _) = b.body(()).unwrap().into_parts();
        p.extensions
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        p
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        let mut ips: Vec<IpAddr> = [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.0.1",
            "127.0.0.1",
            "::1",
            "fd00::1:2",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        // Every octet value in every position.
        ips.extend((0..=255u8).map(|o| IpAddr::from([o, 255 - o, o / 3, o.wrapping_mul(7)])));
        for ip in ips {
            assert_eq!(ip_string(ip), ip.to_string());
        }
    }

    #[test]
    fn forwarded_headers_only_from_trusted_peers() {
        let trusted: Vec<IpNet> = vec!["10.0.0.1/32".parse().unwrap(), "fd00::/8".parse().unwrap()];
        assert_eq!(
            client_ip(&parts("10.0.0.1:5", Some("1.2.3.4, 10.0.0.1")), &trusted),
            "1.2.3.4"
        );
        assert_eq!(
            client_ip(&parts("9.9.9.9:5", Some("1.2.3.4")), &trusted),
            "9.9.9.9"
        );
        assert_eq!(
            client_ip(&parts("10.0.0.1:5", Some("garbage")), &trusted),
            "10.0.0.1"
        );
        // A range trusts every address in it, and only those.
        assert_eq!(
            client_ip(&parts("[fd12::1]:5", Some("5.6.7.8")), &trusted),
            "5.6.7.8"
        );
        assert_eq!(
            client_ip(&parts("10.0.0.2:5", Some("5.6.7.8")), &trusted),
            "10.0.0.2"
        );
    }
}
