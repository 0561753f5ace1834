//! Defects found by trying the product from outside, each pinned through the real binary: raw
//! sockets that send nothing, drip headers or read nothing; paths that would leave the upstream's
//! base path; forwarded addresses a client writes itself; key parameters smuggled beside the
//! vendor key; `CONNECT`; keys in encoded forms, cut URLs and URL credentials.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gpt_load_integration_tests::harness::{ADMIN_KEY, Server, eventually};
use gpt_load_integration_tests::mock_upstream::{Behavior, MockUpstream};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::proxy::{PROXY_KEY, Setup};

/// Reads until the server closes the connection or `within` passes; whether it closed.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Sends `raw` on a new connection and reads the whole answer (the request asks to close).
async fn raw_request(port: u16, raw: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(raw.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A server whose connections are held to two seconds and to at most 40 at once.
async fn strict_server() -> Server {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    Server::start(
        dir,
        &[
            ("SERVER_READ_TIMEOUT", "2"),
            ("SERVER_IDLE_TIMEOUT", "2"),
            ("SERVER_WRITE_TIMEOUT", "2"),
            ("SERVER_MAX_CONNECTIONS", "40"),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_dripping_and_idle_connections_are_closed() {
    let server = strict_server().await;
    let port = server.port;
    let started = Instant::now();
    // Sends nothing at all.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // Drips a header line every 700 ms: never a whole request head within the deadline.
    let mut drip = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let dripping = tokio::spawn(async move {
        let _ = drip.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").await;
        for i in 0..30 {
            tokio::time::sleep(Duration::from_millis(700)).await;
            if drip
                .write_all(format!("X-Drip-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                return (true, i);
            }
            // A closed connection shows on the read side first.
            let mut probe = [0u8; 1];
            if let Ok(Ok(0)) =
                tokio::time::timeout(Duration::from_millis(1), drip.read(&mut probe)).await
            {
                return (true, i);
            }
        }
        (false, 30)
    });
    // Answered once, then kept open without a next request.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    idle.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");

    assert!(
        closed_within(&mut silent, Duration::from_secs(6)).await,
        "a silent connection stays open"
    );
    assert!(
        closed_within(&mut idle, Duration::from_secs(6)).await,
        "an idle keep-alive connection stays open"
    );
    let (closed, lines) = dripping.await.unwrap();
    assert!(
        closed,
        "a dripping connection stayed open for {lines} lines"
    );
    assert!(lines <= 6, "closed only after {lines} header lines");
    assert!(started.elapsed() < Duration::from_secs(15));
    // The server still answers.
    let answer = raw_request(
        port,
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_connection_cap_new_connections_are_closed_and_the_server_recovers() {
    let server = strict_server().await;
    let port = server.port;
    // Sixty connections that say nothing (their fill the cap of 40).
    let mut held = Vec::new();
    for _ in 0..60 {
        held.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }
    // The ones past the cap are closed at once (looked at all together, well within the
    // header deadline that closes the others).
    let closed_at_once = futures::future::join_all(
        held.iter_mut()
            .map(|s| closed_within(s, Duration::from_millis(500))),
    )
    .await
    .into_iter()
    .filter(|closed| *closed)
    .count();
    assert!(
        (15..=25).contains(&closed_at_once),
        "{closed_at_once} of 60 closed at once with a cap of 40"
    );
    assert!(
        eventually(Duration::from_secs(3), || async {
            server.logs().contains("connection limit reached")
        })
        .await,
        "{}",
        server.logs()
    );
    // Once the silent ones are closed by the header deadline, requests are served again.
    let served = eventually(Duration::from_secs(10), || async {
        raw_request(
            port,
            "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await
        .starts_with("HTTP/1.1 200")
    })
    .await;
    assert!(served, "{}", server.logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_the_client_does_not_read_is_cut_after_the_write_timeout() {
    let mock = MockUpstream::start().await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let server = Server::start(dir, &[("SERVER_WRITE_TIMEOUT", "2")]).await;
    let (status, v) = server
        .post(
            "/api/groups",
            json!({"name": "big", "channel_type": "openai", "test_model": "m",
                "upstreams": [{"url": mock.url(), "weight": 1}], "proxy_keys": PROXY_KEY}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let id = v["data"]["id"].as_i64().unwrap();
    server
        .post(
            "/api/keys/add-multiple",
            json!({"group_id": id, "keys_text": "sk-big"}),
        )
        .await;
    // Far more than the socket buffers hold.
    mock.set_behavior(
        None,
        Behavior::LargeStream {
            bytes: 256 * 1024 * 1024,
        },
    );
    let body = r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let mut s = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    s.write_all(
        format!(
            "POST /proxy/big/v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {PROXY_KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // Read nothing for a while: the server's writes stall, then it gives up.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    let drained = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(n) => got += n,
            }
        }
    })
    .await
    .unwrap_or(false);
    assert!(drained, "the connection was not cut");
    assert!(
        got < 64 * 1024 * 1024,
        "the whole answer came through ({got} bytes)"
    );
    assert!(
        mock.wait_for_cancelled(1, Duration::from_secs(5)).await,
        "the upstream request is cancelled with it"
    );
}

/// A raw `..` path through the real server (hyper does not normalise paths): refused before
/// any upstream call. The encoded spellings are the in-process tests' (`worker/tests/it/auth.rs`).
#[tokio::test(flavor = "multi_thread")]
async fn dot_segments_never_reach_the_upstream() {
    let t = Setup::new(&[]).await;
    t.group("tenant-a", "openai", &["sk-tenant-a"], json!({}))
        .await;
    let answer = raw_request(
        t.server.port,
        &format!(
            "GET /proxy/tenant-a/../../tenant-b/admin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {PROXY_KEY}\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("segment"), "{answer}");
    assert_eq!(t.mock.request_count(), 0, "{:?}", t.mock.requests());
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarded_addresses_are_read_from_the_right() {
    let t = Setup::new(&[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    t.group("fwd", "openai", &["sk-fwd"], json!({})).await;
    // Behind an appending proxy (this test): the client wrote a new address each time, the
    // proxy appended the one it saw. The throttle counts the real one.
    let mut codes = Vec::new();
    for i in 0..30 {
        let r = t
            .server
            .client()
            .get(t.server.url("/api/groups"))
            .bearer_auth("wrong-admin-key")
            .header("X-Forwarded-For", format!("9.9.{i}.9, 203.0.113.7"))
            .send()
            .await
            .unwrap();
        codes.push(r.status().as_u16());
    }
    assert!(
        codes.contains(&429),
        "the throttle never engaged: {codes:?}"
    );
    assert!(codes.iter().all(|c| *c == 401 || *c == 429), "{codes:?}");
    // The blocked address is the real one: another client behind the same proxy gets through.
    let r = t
        .server
        .client()
        .get(t.server.url("/api/groups"))
        .bearer_auth(ADMIN_KEY)
        .header("X-Forwarded-For", "203.0.113.8")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Logged source addresses cannot be forged either.
    let r = t
        .chat("fwd")
        .header("X-Forwarded-For", "6.6.6.6, 198.51.100.4")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let logs = t.logs_at_least("", 1).await;
    assert_eq!(logs[0]["source_ip"], "198.51.100.4", "{}", logs[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_key_parameter_travels_beside_the_injected_gemini_key() {
    let t = Setup::new(&[]).await;
    t.group("gem", "gemini", &["AIza-real-key-1"], json!({}))
        .await;
    let answer = raw_request(
        t.server.port,
        &format!(
            "POST /proxy/gem/v1beta/models/gemini-2.0-flash:generateContent?alt=sse&key={PROXY_KEY}&kEy=client-one&%6Bey=client-two&KEY&%4B%45%59=client-three HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let req = t.mock.last_request().unwrap();
    let query = req.query.clone().unwrap_or_default();
    assert!(!query.contains("client"), "{query}");
    assert!(!query.contains(PROXY_KEY), "{query}");
    assert_eq!(query, "alt=sse&key=AIza-real-key-1");
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_is_refused_with_405() {
    let t = Setup::new(&[]).await;
    for target in ["example.com:443", "127.0.0.1:22"] {
        let answer = raw_request(
            t.server.port,
            &format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("allow: get"),
            "{answer}"
        );
    }
}

/// The Gemini channel puts the key in the query, percent-encoded: a key with `+`, `/` or `=`
/// appears there only encoded, and must be masked in that form too — in the logged upstream
/// address, the logged error and the answer — also when the URL is longer than the logged part,
/// and URL credentials are never logged.
#[tokio::test(flavor = "multi_thread")]
async fn keys_in_encoded_form_cut_urls_and_url_credentials_are_redacted() {
    let t = Setup::new(&[("ENCRYPTION_KEY", "an-encryption-key-for-tests-0123")]).await;
    let key = "AIzaQq+Zx/Wv=UNIQUE7TOKEN42xyz";
    let encoded = "AIzaQq%2BZx%2FWv%3DUNIQUE7TOKEN42xyz";
    t.group(
        "gem",
        "gemini",
        &[key],
        json!({"config": {"max_retries": 0}}),
    )
    .await;
    // The upstream echoes the URL it was called with, as some gateways do in errors.
    let echo = json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
        "message": format!("bad request for /v1beta/models/m:generateContent?key={encoded}")}});
    t.mock
        .set_behavior(None, Behavior::status_with_body(400, echo.to_string()));
    let r = t
        .server
        .client()
        .post(t.server.url(&format!(
            "/proxy/gem/v1beta/models/m:generateContent?key={PROXY_KEY}"
        )))
        .json(&json!({"contents": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let answer = r.text().await.unwrap();
    // The upstream got the key itself.
    assert_eq!(
        t.mock.last_request().unwrap().query_param("key").as_deref(),
        Some(key)
    );
    // A model name long enough that the key sits across the logged URL's 500-byte cut.
    t.mock.set_behavior(None, Behavior::Ok);
    let origin_len = t.mock.url().len();
    let model = "m".repeat(500 - origin_len - "/v1beta/models/:generateContent?key=".len() - 20);
    let r = t
        .server
        .client()
        .post(t.server.url(&format!(
            "/proxy/gem/v1beta/models/{model}:generateContent?key={PROXY_KEY}"
        )))
        .json(&json!({"contents": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let logs = t.logs_at_least("", 2).await;
    let secret_parts = ["UNIQUE7", "Qq+Zx", "Qq%2BZx", "Zx%2FWv", "Zx/Wv"];
    // (`key_value` is the admin API's own field: the key, shown to the administrator.)
    let logged = |l: &Value| format!("{} {}", l["upstream_addr"], l["error_message"]);
    for text in [
        answer.clone(),
        logged(&logs[0]),
        logged(&logs[1]),
        t.server.logs(),
    ] {
        for part in secret_parts {
            assert!(!text.contains(part), "{part} in {text}");
        }
    }
    // In the database too (encrypted keys do not make the logged columns secret).
    let db = t.server.dir.path().join("data").join("gpt-load.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT upstream_addr, error_message FROM request_logs")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 2);
    for (addr, err) in &rows {
        for part in secret_parts {
            assert!(!addr.contains(part) && !err.contains(part), "{addr} {err}");
        }
    }
    pool.close().await;

    // An upstream URL with credentials: used, never logged.
    let with_user = t
        .mock
        .url()
        .replacen("http://", "http://operator:hunter2-pass@", 1);
    let (status, v) = t
        .server
        .post(
            "/api/groups",
            json!({"name": "cred", "channel_type": "openai", "test_model": "m",
                "upstreams": [{"url": with_user, "weight": 1}], "proxy_keys": PROXY_KEY}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let id = v["data"]["id"].as_i64().unwrap();
    t.server
        .post(
            "/api/keys/add-multiple",
            json!({"group_id": id, "keys_text": "sk-cred"}),
        )
        .await;
    assert_eq!(t.chat("cred").send().await.unwrap().status(), 200);
    let logs: Vec<Value> = t.logs_at_least("group_name=cred", 1).await;
    let addr = logs[0]["upstream_addr"].as_str().unwrap();
    assert!(
        !addr.contains("hunter2") && !addr.contains("operator"),
        "{addr}"
    );
    assert!(addr.starts_with("http://127.0.0.1:"), "{addr}");
}
