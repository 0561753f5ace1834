//! The client address of a request: the peer, or — only when the peer is a trusted proxy — the
//! address its `X-Forwarded-For` chain names (GPT-Load trusts these from anyone).
//!
//! The chain is walked from the right: each proxy appends the address it received the request
//! from (nginx's `$proxy_add_x_forwarded_for`, cloud load balancers), so only the entries to the
//! right of the last trusted hop were written by trusted proxies. The client is the rightmost
//! entry that is not itself a trusted proxy; what a client wrote to the left of it is ignored.
//! `X-Real-IP` is read only when there is no `X-Forwarded-For`.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use http::request::Parts;
use ipnet::IpNet;

pub fn client_ip(parts: &Parts, trusted: &[IpNet]) -> String {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let Some(p) = peer else {
        return String::new();
    };
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if trusted.is_empty() || !is_trusted(&p) {
        return ip_string(p);
    }
    let mut forwarded = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    if forwarded.is_empty() {
        return parts
            .headers
            .get("x-real-ip")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .and_then(|s| s.parse::<IpAddr>().ok())
            .map_or_else(|| ip_string(p), ip_string);
    }
    // From the right: past trusted proxies to the first address that is not one. An entry that
    // is not an address ends the walk: what lies left of it cannot be believed either.
    let mut client = p;
    while let Some(entry) = forwarded.pop() {
        match entry.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    ip_string(client)
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
            client_ip(&parts("10.0.0.1:5", Some("1.2.3.4")), &trusted),
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

    #[test]
    fn the_chain_is_walked_from_the_right_past_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/24".parse().unwrap()];
        // An appending proxy keeps what the client sent first: the client cannot pick its address.
        assert_eq!(
            client_ip(&parts("10.0.0.1:5", Some("6.6.6.6, 1.2.3.4")), &trusted),
            "1.2.3.4"
        );
        // Two trusted hops: the address the first one saw.
        assert_eq!(
            client_ip(
                &parts("10.0.0.1:5", Some("6.6.6.6, 1.2.3.4, 10.0.0.7")),
                &trusted
            ),
            "1.2.3.4"
        );
        // Garbage right of the trusted hops ends the walk at the last trusted address.
        assert_eq!(
            client_ip(
                &parts("10.0.0.1:5", Some("1.2.3.4, junk, 10.0.0.7")),
                &trusted
            ),
            "10.0.0.7"
        );
        // Only trusted addresses: the leftmost of them.
        assert_eq!(
            client_ip(&parts("10.0.0.1:5", Some("10.0.0.9, 10.0.0.8")), &trusted),
            "10.0.0.9"
        );
        // Several header lines are one list, in order.
        let mut p = parts("10.0.0.1:5", Some("6.6.6.6"));
        p.headers
            .append("x-forwarded-for", "1.2.3.4".parse().unwrap());
        assert_eq!(client_ip(&p, &trusted), "1.2.3.4");
        // X-Real-IP only without X-Forwarded-For.
        let mut p = parts("10.0.0.1:5", None);
        p.headers.insert("x-real-ip", "5.5.5.5".parse().unwrap());
        assert_eq!(client_ip(&p, &trusted), "5.5.5.5");
    }
}
