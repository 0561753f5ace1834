//! A forward proxy for tests of `proxy_url`: HTTP (optionally requiring a `Proxy-Authorization`
//! value) with `CONNECT` tunnels and absolute-form requests for plain-http targets, or SOCKS5
//! (optionally requiring a username and password). It records every tunnel or request it was
//! asked for, then relays bytes both ways. An absolute-form request is forwarded in origin form
//! with `Connection: close`, so each one is seen on its own connection.

use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One tunnel request as the proxy saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelRecord {
    /// `host:port` the client asked for.
    pub target: String,
    /// `Proxy-Authorization` value (HTTP) or `user:password` (SOCKS5) sent by the client.
    pub auth: Option<String>,
    /// Whether the proxy opened the tunnel (false: refused for credentials).
    pub accepted: bool,
    /// An absolute-form request (`GET http://host/path`) rather than a tunnel.
    pub absolute_form: bool,
}

#[derive(Clone)]
enum Kind {
    Connect { require: Option<String> },
    Socks5 { require: Option<(String, String)> },
}

pub struct ForwardProxy {
    pub addr: SocketAddr,
    tunnels: Arc<Mutex<Vec<TunnelRecord>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ForwardProxy {
    /// Stops listening and closes every tunnel.
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ForwardProxy {
    /// An HTTP proxy (`CONNECT` tunnels and absolute-form requests to `http://` targets); with
    /// `require`, only for requests whose `Proxy-Authorization` equals it (else `407`).
    pub async fn connect(require: Option<&str>) -> std::io::Result<Self> {
        Self::start(Kind::Connect {
            require: require.map(str::to_owned),
        })
        .await
    }

    /// A SOCKS5 proxy; with `require`, username/password authentication must match it.
    pub async fn socks5(require: Option<(&str, &str)>) -> std::io::Result<Self> {
        Self::start(Kind::Socks5 {
            require: require.map(|(u, p)| (u.to_owned(), p.to_owned())),
        })
        .await
    }

    async fn start(kind: Kind) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let tunnels = Arc::new(Mutex::new(Vec::new()));
        let log = tunnels.clone();
        // Connections live in a JoinSet owned by the accept task: dropping the proxy aborts
        // that task and with it every open tunnel.
        let task = tokio::spawn(async move {
            let mut open = tokio::task::JoinSet::new();
            while let Ok((conn, _)) = listener.accept().await {
                while open.try_join_next().is_some() {}
                let (kind, log) = (kind.clone(), log.clone());
                open.spawn(async move {
                    let _ = match kind {
                        Kind::Connect { require } => serve_connect(conn, require, log).await,
                        Kind::Socks5 { require } => serve_socks5(conn, require, log).await,
                    };
                });
            }
        });
        Ok(Self {
            addr,
            tunnels,
            task,
        })
    }

    /// `http://127.0.0.1:port`-style URL of this proxy with `scheme` and optional user info.
    pub fn url(&self, scheme: &str, userinfo: Option<&str>) -> String {
        match userinfo {
            Some(u) => format!("{scheme}://{u}@{}", self.addr),
            None => format!("{scheme}://{}", self.addr),
        }
    }

    pub fn tunnels(&self) -> Vec<TunnelRecord> {
        self.tunnels.lock().clone()
    }
}

async fn serve_connect(
    mut conn: TcpStream,
    require: Option<String>,
    log: Arc<Mutex<Vec<TunnelRecord>>>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let end = loop {
        let n = conn.read(&mut buf).await?;
        if n == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let text = String::from_utf8_lossy(&head[..end]).into_owned();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let headers: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
    let auth = headers.iter().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("proxy-authorization")
            .then(|| value.trim().to_owned())
    });
    // Absolute form: `http://host:port/path?query`.
    let absolute = target
        .strip_prefix("http://")
        .map(|rest| rest.split_at(rest.find('/').unwrap_or(rest.len())));
    if method != "CONNECT" && absolute.is_none() {
        conn.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await?;
        return Ok(());
    }
    let accepted = require.is_none() || require == auth;
    log.lock().push(TunnelRecord {
        target: absolute.map_or(target, |(host, _)| host).to_owned(),
        auth,
        accepted,
        absolute_form: absolute.is_some(),
    });
    if !accepted {
        conn.write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n")
            .await?;
        return Ok(());
    }
    match absolute {
        None => {
            let mut upstream = TcpStream::connect(target).await?;
            conn.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await?;
            upstream.write_all(&head[end..]).await?;
            tokio::io::copy_bidirectional(&mut conn, &mut upstream).await?;
        }
        Some((host, path)) => {
            let mut upstream = TcpStream::connect(host).await?;
            let path = if path.is_empty() { "/" } else { path };
            let mut out = format!("{method} {path} HTTP/1.1\r\n");
            for h in headers {
                let name = h.split(':').next().unwrap_or("").trim();
                if !["proxy-authorization", "connection", "proxy-connection"]
                    .iter()
                    .any(|n| name.eq_ignore_ascii_case(n))
                {
                    out.push_str(h);
                    out.push_str("\r\n");
                }
            }
            out.push_str("Connection: close\r\n\r\n");
            upstream.write_all(out.as_bytes()).await?;
            upstream.write_all(&head[end..]).await?;
            tokio::io::copy_bidirectional(&mut conn, &mut upstream).await?;
        }
    }
    Ok(())
}

async fn serve_socks5(
    mut conn: TcpStream,
    require: Option<(String, String)>,
    log: Arc<Mutex<Vec<TunnelRecord>>>,
) -> std::io::Result<()> {
    let mut hello = [0u8; 2];
    conn.read_exact(&mut hello).await?;
    let mut methods = vec![0u8; usize::from(hello[1])];
    conn.read_exact(&mut methods).await?;
    let mut auth = None;
    let mut accepted = true;
    if let Some((user, pass)) = &require {
        if !methods.contains(&2) {
            conn.write_all(&[5, 0xff]).await?;
            return Ok(());
        }
        conn.write_all(&[5, 2]).await?;
        let mut ver_len = [0u8; 2];
        conn.read_exact(&mut ver_len).await?;
        let mut u = vec![0u8; usize::from(ver_len[1])];
        conn.read_exact(&mut u).await?;
        let mut plen = [0u8; 1];
        conn.read_exact(&mut plen).await?;
        let mut p = vec![0u8; usize::from(plen[0])];
        conn.read_exact(&mut p).await?;
        let (u, p) = (String::from_utf8_lossy(&u), String::from_utf8_lossy(&p));
        accepted = u == user.as_str() && p == pass.as_str();
        auth = Some(format!("{u}:{p}"));
        conn.write_all(&[1, if accepted { 0 } else { 1 }]).await?;
    } else {
        conn.write_all(&[5, 0]).await?;
    }
    // CONNECT request: VER CMD RSV ATYP ADDR PORT
    let mut req = [0u8; 4];
    if !accepted {
        log.lock().push(TunnelRecord {
            target: String::new(),
            auth,
            accepted,
            absolute_form: false,
        });
        return Ok(());
    }
    conn.read_exact(&mut req).await?;
    let host = match req[3] {
        1 => {
            let mut a = [0u8; 4];
            conn.read_exact(&mut a).await?;
            std::net::Ipv4Addr::from(a).to_string()
        }
        3 => {
            let mut len = [0u8; 1];
            conn.read_exact(&mut len).await?;
            let mut name = vec![0u8; usize::from(len[0])];
            conn.read_exact(&mut name).await?;
            String::from_utf8_lossy(&name).into_owned()
        }
        4 => {
            let mut a = [0u8; 16];
            conn.read_exact(&mut a).await?;
            format!("[{}]", std::net::Ipv6Addr::from(a))
        }
        _ => return Ok(()),
    };
    let mut port = [0u8; 2];
    conn.read_exact(&mut port).await?;
    let target = format!("{host}:{}", u16::from_be_bytes(port));
    log.lock().push(TunnelRecord {
        target: target.clone(),
        auth,
        accepted,
        absolute_form: false,
    });
    let mut upstream = TcpStream::connect(&target).await?;
    conn.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
    tokio::io::copy_bidirectional(&mut conn, &mut upstream).await?;
    Ok(())
}
