//! The data plane through the real binary and a mock upstream that speaks each vendor's wire
//! format: rotation, retries, blacklisting and restore, cool-downs, all-keys-dead, streaming,
//! cancellation, redaction, limits, rules, aggregates, logs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use gpt_load_integration_tests::forward_proxy::ForwardProxy;
use gpt_load_integration_tests::harness::{Server, eventually};
use gpt_load_integration_tests::mock_upstream::{Behavior, MockUpstream};
use serde_json::{Value, json};

pub const PROXY_KEY: &str = "sk-client-proxy-key-for-tests-0001";

/// A server with write-through logging and a mock upstream.
pub struct Setup {
    pub server: Server,
    pub mock: MockUpstream,
}

impl Setup {
    pub async fn new(env: &[(&str, &str)]) -> Setup {
        let mock = MockUpstream::start().await;
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let server = Server::start(dir, env).await;
        let (status, v) = server
            .put("/api/settings", json!({"request_log_write_interval_minutes": 0, "proxy_keys": "sk-global-proxy-key-abcdef123456"}))
            .await;
        assert_eq!(status, 200, "{v}");
        Setup { server, mock }
    }

    /// A standard group on the mock with `keys`; returns its id.
    pub async fn group(&self, name: &str, channel: &str, keys: &[&str], extra: Value) -> i64 {
        let mut body = json!({
            "name": name, "channel_type": channel, "test_model": "test-model",
            "upstreams": [{"url": self.mock.url(), "weight": 1}], "proxy_keys": PROXY_KEY,
        });
        if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
            b.extend(e);
        }
        let id = self.server.create_group(body).await;
        if !keys.is_empty() {
            let (status, v) = self
                .server
                .post(
                    "/api/keys/add-multiple",
                    json!({"group_id": id, "keys_text": keys.join(",")}),
                )
                .await;
            assert_eq!(status, 200, "{v}");
        }
        id
    }

    pub fn chat(&self, group: &str) -> reqwest::RequestBuilder {
        self.server
            .client()
            .post(self.server.url(&format!("/proxy/{group}/v1/chat/completions")))
            .bearer_auth(PROXY_KEY)
            .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}))
    }

    pub async fn key_status(&self, group_id: i64) -> HashMap<String, (String, i64)> {
        let (_, v) = self
            .server
            .get(&format!("/api/keys?group_id={group_id}&page_size=100"))
            .await;
        v["data"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["key_value"].as_str().unwrap().to_owned(),
                    (
                        k["status"].as_str().unwrap().to_owned(),
                        k["failure_count"].as_i64().unwrap(),
                    ),
                )
            })
            .collect()
    }

    pub async fn logs(&self, query: &str) -> Vec<Value> {
        let (_, v) = self
            .server
            .get(&format!("/api/logs?page_size=1000&{query}"))
            .await;
        v["data"]["items"].as_array().cloned().unwrap_or_default()
    }

    /// Logs are written by a background writer: waits until at least `n` match `query`.
    pub async fn logs_at_least(&self, query: &str, n: usize) -> Vec<Value> {
        eventually(Duration::from_secs(10), || async {
            self.logs(query).await.len() >= n
        })
        .await;
        self.logs(query).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_is_even_and_keys_are_injected() {
    let t = Setup::new(&[]).await;
    t.group("rot", "openai", &["sk-a", "sk-b", "sk-c"], json!({}))
        .await;
    for _ in 0..300 {
        let r = t.chat("rot").send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    for k in ["sk-a", "sk-b", "sk-c"] {
        assert_eq!(t.mock.requests_for_key(k).len(), 100, "{k}");
    }
    let req = t.mock.last_request().unwrap();
    assert_eq!(
        req.header("host"),
        Some(t.mock.addr().to_string().as_str()),
        "the upstream's own Host"
    );
    assert!(
        !format!("{:?}", req.headers).contains(PROXY_KEY),
        "the client's proxy key never reaches the upstream"
    );
    // Fields the client's `Connection` header names are hop-by-hop: not forwarded.
    let r = t
        .chat("rot")
        .header("connection", "keep-alive, X-Hop-Only")
        .header("x-hop-only", "for the proxy")
        .header("x-end-to-end", "for the upstream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let req = t.mock.last_request().unwrap();
    assert_eq!(req.header("x-hop-only"), None);
    assert_eq!(req.header("x-end-to-end"), Some("for the upstream"));
    let body = t
        .chat("rot")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "echo: hello");
}

#[tokio::test(flavor = "multi_thread")]
async fn client_keys_and_groups_are_checked() {
    let t = Setup::new(&[]).await;
    t.group("auth", "openai", &["sk-a"], json!({})).await;
    let url = t.server.url("/proxy/auth/v1/chat/completions");
    let c = t.server.client();
    let body = json!({"model": "m", "messages": []});
    assert_eq!(c.post(&url).json(&body).send().await.unwrap().status(), 401);
    assert_eq!(
        c.post(&url)
            .bearer_auth("wrong")
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    for ok in [
        c.post(format!("{url}?key={PROXY_KEY}")).json(&body),
        c.post(&url).header("x-api-key", PROXY_KEY).json(&body),
        c.post(&url).header("x-goog-api-key", PROXY_KEY).json(&body),
        c.post(&url)
            .bearer_auth("sk-global-proxy-key-abcdef123456")
            .json(&body),
    ] {
        assert_eq!(ok.send().await.unwrap().status(), 200);
    }
    let r = c
        .post(t.server.url("/proxy/nope/v1/chat/completions"))
        .bearer_auth(PROXY_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        404,
        "an unknown group is a 404, not GPT-Load's 500"
    );
    // The query key is stripped before forwarding.
    assert_eq!(
        t.mock
            .requests()
            .iter()
            .filter(|r| r.query.as_deref().unwrap_or("").contains(PROXY_KEY))
            .count(),
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn vendor_channels_put_the_key_where_each_vendor_expects_it() {
    let t = Setup::new(&[]).await;
    t.group("anth", "anthropic", &["ak-1"], json!({})).await;
    t.group("gem", "gemini", &["AIza-1"], json!({})).await;
    let c = t.server.client();
    let r = c
        .post(t.server.url("/proxy/anth/v1/messages"))
        .header("x-api-key", PROXY_KEY)
        .header("anthropic-version", "2099-01-01")
        .json(&json!({"model": "claude-3-haiku", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let req = t.mock.last_request().unwrap();
    assert_eq!(req.header("x-api-key"), Some("ak-1"));
    assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));

    let r = c
        .post(t.server.url(&format!(
            "/proxy/gem/v1beta/models/gemini-2.0-flash:generateContent?key={PROXY_KEY}"
        )))
        .json(&json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let req = t.mock.last_request().unwrap();
    assert_eq!(req.query_param("key").as_deref(), Some("AIza-1"));
    assert_eq!(req.path, "/v1beta/models/gemini-2.0-flash:generateContent");

    let r = c
        .post(t.server.url("/proxy/gem/v1beta/openai/chat/completions"))
        .bearer_auth(PROXY_KEY)
        .json(
            &json!({"model": "gemini-2.0-flash", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        t.mock.last_request().unwrap().header("authorization"),
        Some("Bearer AIza-1")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_then_success_with_logs() {
    let t = Setup::new(&[]).await;
    let gid = t
        .group("retry", "openai", &["sk-bad", "sk-good"], json!({}))
        .await;
    t.mock.set_behavior(
        Some("sk-bad"),
        Behavior::openai_error(500, "upstream exploded", "server_error", None),
    );
    for _ in 0..4 {
        let r = t
            .chat("retry")
            .header("user-agent", "retry-test/1.0")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let logs = t
        .logs_at_least("group_name=retry&request_type=final", 4)
        .await;
    let logs = [logs, t.logs("group_name=retry&request_type=retry").await].concat();
    let retries = logs.iter().filter(|l| l["request_type"] == "retry").count();
    let finals = logs.iter().filter(|l| l["request_type"] == "final").count();
    assert_eq!(finals, 4);
    assert!(retries >= 1, "{logs:?}");
    assert!(logs.iter().any(|l| l["request_type"] == "retry"
        && l["status_code"] == 500
        && l["error_message"] == "upstream exploded"));
    // Every attempt's record carries the request's own facts (the last one takes them over).
    for l in &logs {
        assert_eq!(l["request_path"], "/proxy/retry/v1/chat/completions", "{l}");
        assert_eq!(l["model"], "gpt-4o-mini", "{l}");
        assert_eq!(l["source_ip"], "127.0.0.1", "{l}");
        assert_eq!(l["user_agent"], "retry-test/1.0", "{l}");
    }
    let ks = t.key_status(gid).await;
    assert_eq!(ks["sk-good"].0, "active");
    let counted = eventually(Duration::from_secs(5), || async {
        let (_, stats) = t.server.get("/api/dashboard/stats").await;
        stats["data"]["request_count"]["value"] == 4
    })
    .await;
    assert!(counted, "the dashboard counts the 4 requests");
}

/// A restore right after a failed key test is not undone by the test's status change, which
/// reaches the database through the record queue after the restore did.
#[tokio::test(flavor = "multi_thread")]
async fn a_restore_is_not_undone_by_an_older_queued_key_event() {
    let t = Setup::new(&[]).await;
    let gid = t
        .group(
            "flip",
            "openai",
            &["sk-flip"],
            json!({"config": {"blacklist_threshold": 1}}),
        )
        .await;
    t.mock
        .set_behavior(Some("sk-flip"), Behavior::openai_invalid_key("sk-flip"));
    let test = || async {
        let (status, v) = t
            .server
            .post(
                "/api/keys/test-multiple",
                json!({"group_id": gid, "keys_text": "sk-flip"}),
            )
            .await;
        assert_eq!(status, 200, "{v}");
    };
    for round in 0..3 {
        // Invalid in the database (as the UI shows it), then tested again: that failure's
        // event waits in the queue while the restore below writes the database.
        test().await;
        assert!(
            eventually(Duration::from_secs(5), || async {
                t.key_status(gid).await["sk-flip"].0 == "invalid"
            })
            .await,
            "round {round}: the failed test marks the key invalid"
        );
        test().await;
        let (status, v) = t
            .server
            .post(
                "/api/keys/restore-multiple",
                json!({"group_id": gid, "keys_text": "sk-flip"}),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        // Past the writer's next look at the queue and its key flush (every second).
        tokio::time::sleep(Duration::from_millis(1_600)).await;
        assert_eq!(
            t.key_status(gid).await["sk-flip"],
            ("active".to_owned(), 0),
            "round {round}: the restore stands"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_keys_are_blacklisted_then_restored_by_validation() {
    let t = Setup::new(&[]).await;
    let gid = t
        .group(
            "bl",
            "openai",
            &["sk-dead", "sk-live"],
            json!({"config": {"blacklist_threshold": 2}}),
        )
        .await;
    t.mock
        .set_behavior(Some("sk-dead"), Behavior::openai_invalid_key("sk-dead"));
    for _ in 0..10 {
        assert_eq!(t.chat("bl").send().await.unwrap().status(), 200);
    }
    assert!(
        eventually(Duration::from_secs(5), || async {
            t.key_status(gid).await["sk-dead"].0 == "invalid"
        })
        .await,
        "blacklisted key shows as invalid"
    );
    let dead_calls = t.mock.requests_for_key("sk-dead").len();
    assert_eq!(dead_calls, 2, "blacklisted after exactly the threshold");
    for _ in 0..10 {
        assert_eq!(t.chat("bl").send().await.unwrap().status(), 200);
    }
    assert_eq!(
        t.mock.requests_for_key("sk-dead").len(),
        dead_calls,
        "never used again while invalid"
    );

    // The key recovers upstream; a validation run brings it back.
    t.mock.set_behavior(Some("sk-dead"), Behavior::Ok);
    let (status, v) = t
        .server
        .post(
            "/api/keys/validate-group",
            json!({"group_id": gid, "status": "invalid"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let task = t.server.wait_task().await;
    assert_eq!(task["result"]["valid_keys"], 1, "{task}");
    let validation = t.mock.requests_for_key("sk-dead").pop().unwrap();
    assert_eq!(
        validation.header("host"),
        Some(t.mock.addr().to_string().as_str()),
        "validation carries the upstream's Host too"
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            t.key_status(gid).await["sk-dead"] == ("active".into(), 0)
        })
        .await
    );
    for _ in 0..10 {
        t.chat("bl").send().await.unwrap();
    }
    assert!(
        t.mock.requests_for_key("sk-dead").len() > dead_calls + 1,
        "back in rotation"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limited_keys_cool_down_without_counting() {
    let t = Setup::new(&[]).await;
    let gid = t
        .group(
            "cool",
            "openai",
            &["sk-limited", "sk-free"],
            json!({"config": {"blacklist_threshold": 1}}),
        )
        .await;
    t.mock
        .set_behavior(Some("sk-limited"), Behavior::rate_limited(2));
    for _ in 0..6 {
        assert_eq!(t.chat("cool").send().await.unwrap().status(), 200);
    }
    assert_eq!(
        t.mock.requests_for_key("sk-limited").len(),
        1,
        "skipped while cooling down"
    );
    assert_eq!(
        t.key_status(gid).await["sk-limited"],
        ("active".into(), 0),
        "a 429 is not a failure"
    );
    tokio::time::sleep(Duration::from_millis(2200)).await;
    t.mock.set_behavior(Some("sk-limited"), Behavior::Ok);
    for _ in 0..4 {
        t.chat("cool").send().await.unwrap();
    }
    assert!(
        t.mock.requests_for_key("sk-limited").len() >= 2,
        "back after the cool-down"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn all_keys_dead_answers_503_at_once() {
    let t = Setup::new(&[]).await;
    t.group(
        "dead",
        "openai",
        &["sk-1", "sk-2"],
        json!({"config": {"blacklist_threshold": 1, "max_retries": 1}}),
    )
    .await;
    t.mock.set_behavior(
        None,
        Behavior::openai_error(401, "invalid key", "invalid_request_error", None),
    );
    let r = t.chat("dead").send().await.unwrap();
    assert_eq!(r.status(), 401, "the upstream's error after retries");
    let started = Instant::now();
    let r = t.chat("dead").send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(started.elapsed() < Duration::from_millis(500));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "NO_KEYS_AVAILABLE");
    // Every key cooling (429) is a 503 too, with Retry-After.
    t.group("cooling", "openai", &["sk-x"], json!({})).await;
    t.mock
        .set_behavior(Some("sk-x"), Behavior::rate_limited(30));
    assert_eq!(t.chat("cooling").send().await.unwrap().status(), 429);
    let r = t.chat("cooling").send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_arrive_incrementally() {
    let t = Setup::new(&[]).await;
    t.group("stream", "openai", &["sk-s"], json!({})).await;
    t.mock.set_behavior(
        None,
        Behavior::SlowStream {
            chunks: 5,
            interval: Duration::from_millis(300),
        },
    );
    let started = Instant::now();
    let r = t
        .server
        .client()
        .post(t.server.url("/proxy/stream/v1/chat/completions"))
        .bearer_auth(PROXY_KEY)
        .json(&json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "one two three four five"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut stream = r.bytes_stream();
    let mut arrivals = Vec::new();
    let mut all = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        if !chunk.is_empty() {
            arrivals.push(started.elapsed());
            all.extend_from_slice(&chunk);
        }
    }
    let total = started.elapsed();
    assert!(total >= Duration::from_millis(1200), "{total:?}");
    assert!(
        arrivals[0] < total - Duration::from_millis(800),
        "first bytes {:?} of {total:?}: not buffered",
        arrivals[0]
    );
    assert!(String::from_utf8_lossy(&all).contains("[DONE]"));
}

#[tokio::test(flavor = "multi_thread")]
async fn client_disconnect_cancels_the_upstream_request() {
    let t = Setup::new(&[]).await;
    t.group("hang", "openai", &["sk-h"], json!({})).await;
    t.mock.set_behavior(None, Behavior::Hang);
    let r = t
        .chat("hang")
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(r.is_err(), "the client gave up");
    assert!(
        t.mock.wait_for_cancelled(1, Duration::from_secs(5)).await,
        "the upstream request was cancelled"
    );

    // Mid-stream too.
    t.mock.set_behavior(
        None,
        Behavior::SlowStream {
            chunks: 50,
            interval: Duration::from_millis(100),
        },
    );
    let before = t.mock.cancelled_count();
    let r = t
        .server
        .client()
        .post(t.server.url("/proxy/hang/v1/chat/completions"))
        .bearer_auth(PROXY_KEY)
        .json(&json!({"model": "m", "stream": true, "messages": []}))
        .send()
        .await
        .unwrap();
    let mut s = r.bytes_stream();
    let _ = s.next().await;
    drop(s);
    assert!(
        t.mock
            .wait_for_cancelled(before + 1, Duration::from_secs(5))
            .await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_keys_are_redacted_from_errors_and_logs() {
    let t = Setup::new(&[]).await;
    let secret = "sk-proj-SECRETVALUE1234567890";
    t.group(
        "redact",
        "openai",
        &[secret],
        json!({"config": {"max_retries": 0}}),
    )
    .await;
    t.mock
        .set_behavior(None, Behavior::openai_invalid_key(secret));
    let r = t.chat("redact").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body = r.text().await.unwrap();
    assert!(!body.contains(secret), "{body}");
    assert!(body.contains("sk-p****7890"), "{body}");
    let logs = t.logs_at_least("", 1).await;
    let err = logs[0]["error_message"].as_str().unwrap();
    assert!(
        !err.contains(secret) && !logs[0]["upstream_addr"].as_str().unwrap().contains(secret),
        "{err}"
    );
    assert!(
        !t.server.logs().contains(secret),
        "server logs leak the key"
    );
}

/// Writes a `len`-byte chat body to the proxy in full before reading anything (as simple HTTP
/// clients do), then returns the status line of the answer.
async fn upload_then_read(port: u16, len: usize, chunked: bool) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {len}")
    };
    let head = format!(
        "POST /proxy/lim/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {PROXY_KEY}\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let body = vec![b'x'; len];
    if chunked {
        for c in body.chunks(64 * 1024) {
            s.write_all(format!("{:x}\r\n", c.len()).as_bytes())
                .await
                .unwrap();
            s.write_all(c).await.unwrap();
            s.write_all(b"\r\n").await.unwrap();
        }
        s.write_all(b"0\r\n\r\n").await.unwrap();
    } else {
        s.write_all(&body).await.unwrap();
    }
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Declares a `len`-byte body with `Expect: 100-continue` and sends nothing more; returns the
/// status line of the first answer.
async fn refused_before_upload(port: u16, len: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let head = format!(
        "POST /proxy/lim/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {PROXY_KEY}\r\nContent-Length: {len}\r\nExpect: 100-continue\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer))
        .await
        .expect("answered and closed without the body")
        .unwrap();
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_get_413_and_concurrency_limit_429() {
    let t = Setup::new(&[
        ("MAX_REQUEST_BODY_MB", "1"),
        ("MAX_CONCURRENT_REQUESTS", "2"),
    ])
    .await;
    t.group("lim", "openai", &["sk-l"], json!({})).await;
    let big =
        json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(1_100_000)}]});
    let r = t
        .server
        .client()
        .post(t.server.url("/proxy/lim/v1/chat/completions"))
        .bearer_auth(PROXY_KEY)
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.headers().get("connection").map(|v| v.to_str().unwrap()),
        Some("close"),
        "the unread rest of the body makes the connection unusable"
    );
    // A client that sends the whole body before reading gets the 413, not a reset connection,
    // with a declared length and with a chunked body alike.
    for chunked in [false, true] {
        let status = upload_then_read(t.server.port, 8_000_000, chunked).await;
        assert!(
            status.starts_with("HTTP/1.1 413"),
            "chunked={chunked}: {status}"
        );
    }
    // A client that waits for `100 Continue` is refused at once, without being asked to upload.
    let status = refused_before_upload(t.server.port, 8_000_000).await;
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    assert_eq!(t.mock.request_count(), 0);

    // Two slow requests hold both slots (the mock has seen them, so they are in flight); a third
    // meanwhile is refused, and once they are done requests go through again.
    t.mock
        .set_behavior(None, Behavior::Delay(Duration::from_secs(3)));
    let seen = t.mock.request_count();
    let h1 = tokio::spawn(t.chat("lim").send());
    let h2 = tokio::spawn(t.chat("lim").send());
    if !t
        .mock
        .wait_for_requests(seen + 2, Duration::from_secs(10))
        .await
    {
        let (a, b) = (h1.await.unwrap(), h2.await.unwrap());
        let show = |r: reqwest::Result<reqwest::Response>| match r {
            Ok(r) => format!("status {}", r.status()),
            Err(e) => format!("error {e:?}"),
        };
        panic!(
            "the two slow requests did not both reach the upstream (it saw {}): {}, {}\nserver log:\n{}",
            t.mock.request_count() - seen,
            show(a),
            show(b),
            t.server.logs()
        );
    }
    let c = t.chat("lim").send().await.unwrap();
    let (a, b) = (h1.await.unwrap(), h2.await.unwrap());
    assert_eq!(a.unwrap().status(), 200);
    assert_eq!(b.unwrap().status(), 200);
    t.mock.reset_behaviors();
    assert_eq!(t.chat("lim").send().await.unwrap().status(), 200);
    assert_eq!(c.status(), 429);
}

#[tokio::test(flavor = "multi_thread")]
async fn header_rules_overrides_and_model_redirects() {
    let t = Setup::new(&[]).await;
    t.group(
        "rules",
        "openai",
        &["sk-r"],
        json!({
            "header_rules": [{"key": "X-Real-Key", "value": "k=${API_KEY} g=${GROUP_NAME}", "action": "set"}, {"key": "user-agent", "action": "remove"}],
            "param_overrides": {"temperature": 0.1},
            "model_redirect_rules": {"gpt-4o-mini": "gpt-4o-real"},
        }),
    )
    .await;
    let r = t
        .chat("rules")
        .header("user-agent", "my-sdk")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let req = t.mock.last_request().unwrap();
    assert_eq!(req.header("x-real-key"), Some("k=sk-r g=rules"));
    assert_eq!(req.header("user-agent"), None);
    let body = req.json().unwrap();
    assert_eq!(body["model"], "gpt-4o-real");
    assert_eq!(body["temperature"], 0.1);

    // Strict redirects refuse unknown models; model lists show the configured names.
    let (_, groups) = t.server.get("/api/groups").await;
    let id = groups["data"][0]["id"].as_i64().unwrap();
    t.server
        .put(
            &format!("/api/groups/{id}"),
            json!({"model_redirect_strict": true}),
        )
        .await;
    let r = t
        .server
        .client()
        .post(t.server.url("/proxy/rules/v1/chat/completions"))
        .bearer_auth(PROXY_KEY)
        .json(&json!({"model": "other", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = t
        .server
        .client()
        .get(t.server.url("/proxy/rules/v1/models"))
        .bearer_auth(PROXY_KEY)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["gpt-4o-mini"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn aggregates_balance_and_move_past_exhausted_members() {
    let t = Setup::new(&[]).await;
    let a = t.group("member-a", "openai", &["sk-ma"], json!({})).await;
    let b = t.group("member-b", "openai", &["sk-mb"], json!({})).await;
    let empty = t.group("member-empty", "openai", &[], json!({})).await;
    let agg = t.server.create_group(json!({"name": "agg", "group_type": "aggregate", "channel_type": "openai", "proxy_keys": PROXY_KEY})).await;
    let (status, v) = t
        .server
        .post(&format!("/api/groups/{agg}/sub-groups"), json!({"sub_groups": [{"group_id": a, "weight": 3}, {"group_id": b, "weight": 1}, {"group_id": empty, "weight": 100}]}))
        .await;
    assert_eq!(status, 200, "{v}");
    for _ in 0..40 {
        assert_eq!(t.chat("agg").send().await.unwrap().status(), 200);
    }
    let (na, nb) = (
        t.mock.requests_for_key("sk-ma").len(),
        t.mock.requests_for_key("sk-mb").len(),
    );
    assert_eq!(na + nb, 40);
    assert!(
        (28..=32).contains(&na),
        "weights 3:1 among the members with keys: {na}:{nb}"
    );
    let logs = t.logs_at_least("parent_group_name=agg", 40).await;
    assert_eq!(logs.len(), 40);
    assert!(logs.iter().all(|l| l["parent_group_id"] == agg));
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_requests_go_through_the_groups_proxy_url() {
    let t = Setup::new(&[]).await;
    let mock = t.mock.addr().to_string();

    // An HTTP proxy and a plain-http upstream: requests go to the proxy in absolute form (as
    // Go's transport sends them), with the URL's credentials as Basic auth ("user:s3cret"),
    // which the upstream never sees.
    let http = ForwardProxy::connect(Some("Basic dXNlcjpzM2NyZXQ="))
        .await
        .unwrap();
    let url = http.url("http", Some("user:s3cret"));
    t.group(
        "via-http",
        "openai",
        &["sk-h1"],
        json!({"config": {"proxy_url": url}}),
    )
    .await;
    for _ in 0..2 {
        assert_eq!(t.chat("via-http").send().await.unwrap().status(), 200);
    }
    let seen = http.tunnels();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for r in &seen {
        assert!(r.absolute_form && r.accepted, "{r:?}");
        assert_eq!(r.target, mock);
        assert_eq!(r.auth.as_deref(), Some("Basic dXNlcjpzM2NyZXQ="));
    }
    assert_eq!(t.mock.request_count(), 2);
    assert!(
        t.mock
            .requests()
            .iter()
            .all(|q| q.header("proxy-authorization").is_none())
    );

    // Credentials the proxy refuses: a 502 that names the proxy's refusal, not the password.
    let strict = ForwardProxy::connect(Some("Basic dXNlcjpzM2NyZXQ="))
        .await
        .unwrap();
    let url = strict.url("http", Some("user:n0t-the-passw0rd"));
    t.group(
        "bad-proxy",
        "openai",
        &["sk-h2"],
        json!({"config": {"proxy_url": url, "max_retries": 0}}),
    )
    .await;
    let r = t.chat("bad-proxy").send().await.unwrap();
    assert_eq!(r.status(), 502);
    let body = r.text().await.unwrap();
    assert!(body.contains("proxy"), "{body}");
    assert!(!body.contains("n0t-the-passw0rd"), "{body}");
    assert!(strict.tunnels().iter().all(|t| !t.accepted));
    assert_eq!(t.mock.request_count(), 2, "nothing reached the upstream");

    // An https upstream goes through a CONNECT tunnel, authenticated the same way (the mock
    // speaks plain HTTP, so the TLS handshake inside the tunnel then fails: a 502).
    t.group(
        "via-connect",
        "openai",
        &["sk-h3"],
        json!({"config": {"proxy_url": http.url("http", Some("user:s3cret")), "max_retries": 0},
               "upstreams": [{"url": format!("https://{mock}"), "weight": 1}]}),
    )
    .await;
    assert_eq!(t.chat("via-connect").send().await.unwrap().status(), 502);
    let seen = http.tunnels();
    let tunnel = seen.last().unwrap();
    assert!(!tunnel.absolute_form && tunnel.accepted, "{seen:?}");
    assert_eq!(tunnel.target, mock);
    assert_eq!(tunnel.auth.as_deref(), Some("Basic dXNlcjpzM2NyZXQ="));

    // SOCKS5 with username/password; the proxy resolves the target.
    let socks = ForwardProxy::socks5(Some(("u", "p"))).await.unwrap();
    let url = socks.url("socks5", Some("u:p"));
    let id = t
        .group(
            "via-socks",
            "openai",
            &["sk-s1"],
            json!({"config": {"proxy_url": url}}),
        )
        .await;
    assert_eq!(t.chat("via-socks").send().await.unwrap().status(), 200);
    let tunnels = socks.tunnels();
    assert_eq!(tunnels.len(), 1, "{tunnels:?}");
    assert_eq!(tunnels[0].target, mock);
    assert_eq!(tunnels[0].auth.as_deref(), Some("u:p"));
    assert_eq!(
        t.mock.last_request().unwrap().header("proxy-authorization"),
        None,
        "proxy credentials go to the proxy only"
    );

    // Clearing proxy_url takes effect without a restart: with the proxy gone (its tunnels
    // closed too), requests still succeed, so they go direct.
    let (status, v) = t
        .server
        .put(&format!("/api/groups/{id}"), json!({"config": {}}))
        .await;
    assert_eq!(status, 200, "{v}");
    drop(socks);
    assert!(
        eventually(Duration::from_secs(2), || async {
            t.chat("via-socks")
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await
    );
}

/// The `Access-Control-Allow-Origin` an answer carries.
fn allowed_origin(r: &reqwest::Response) -> Option<&str> {
    r.headers()
        .get("access-control-allow-origin")
        .and_then(|v| v.to_str().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_applies_to_proxied_requests_as_to_the_admin_api() {
    let t = Setup::new(&[
        ("ENABLE_CORS", "true"),
        ("ALLOWED_ORIGINS", "https://app.example"),
    ])
    .await;
    t.group("cors", "openai", &["sk-cors"], json!({})).await;
    let http = t.server.client();
    // A browser's preflight for a proxied call is answered without reaching the upstream.
    let pre = http
        .request(
            reqwest::Method::OPTIONS,
            t.server.url("/proxy/cors/v1/chat/completions"),
        )
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 200);
    assert_eq!(allowed_origin(&pre), Some("https://app.example"));
    assert!(t.mock.requests_for_key("sk-cors").is_empty());
    // The proxied call itself carries the header; an origin not allowed gets none.
    let ok = t
        .chat("cors")
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(allowed_origin(&ok), Some("https://app.example"));
    let other = t
        .chat("cors")
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    assert_eq!(allowed_origin(&other), None);
    // The admin API, served by the router on the main runtime, the same way.
    let admin = http
        .get(t.server.url("/api/groups"))
        .bearer_auth(gpt_load_integration_tests::harness::ADMIN_KEY)
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 200);
    assert_eq!(allowed_origin(&admin), Some("https://app.example"));
}
