//! Plain-HTTP/1.1 upstream connections kept per serving thread.
//!
//! A request to an `http://` upstream that no forward proxy handles goes over one of these:
//! hyper's HTTP/1 connection, dialled by hyper-util's `HttpConnector` (name resolution, address
//! fallback, connect timeout, TCP options) and kept, once its response body has been read to the
//! end, in a list that belongs to the serving thread, so that the next request on the thread
//! takes it back without a lock shared between threads, a hash of the upstream's authority or a
//! task spawned to wait for the connection to become idle — what the general pool of hyper-util's
//! client costs on every request (callgrind: 88.3 k → 83.6 k instructions per proxied request
//! in the benchmark). HTTPS upstreams (HTTP/2 by ALPN, or TLS) and proxied requests keep that
//! client.
//!
//! A connection goes back only when its response was read to the end and hyper is ready to send
//! the next request on it; one whose body was dropped early (a client that went away) is closed,
//! as hyper closes a connection whose exchange was cut. A connection the upstream closed while
//! idle is dropped at checkout once its task has seen the close; one whose close is seen only
//! after the checkout, before the request was written, is replaced by a new connection for the
//! same request, as hyper-util's client does. A close that crosses the request on the wire (the
//! request written, the connection closed before a complete answer) fails a request that may not
//! be repeated — a `POST` without an idempotency key, as every chat completion is: the upstream
//! may have received it, and the proxy's own retry policy decides what comes next. A request that
//! may be repeated (Go's `isReplayable`: `GET`, `HEAD`, `OPTIONS`, `TRACE`, or one carrying
//! `Idempotency-Key` / `X-Idempotency-Key`) goes out again once on a new connection, as Go's HTTP
//! client (GPT-Load's) sends it again, when the connection had been idle at least
//! [`RESEND_AFTER_IDLE`]: an upstream closes an idle connection when its keep-alive ends, and a
//! copy of every request in case would cost ~1 % of the CPU of a proxied request.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::client::legacy::connect::HttpConnector;
use parking_lot::Mutex;
use tower::ServiceExt;

type Sender = SendRequest<Full<Bytes>>;

/// Why a request on a pooled connection failed.
#[derive(Debug, thiserror::Error)]
pub enum H1Error {
    /// No connection could be made (the connector's error as its source).
    #[error("client error (Connect)")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The request failed on the connection.
    #[error("client error (SendRequest)")]
    Send(#[source] hyper::Error),
}

/// An idle connection.
struct Idle {
    authority: Authority,
    sender: Sender,
    since: Instant,
}

/// One serving thread's idle connections, most recently used last.
#[derive(Default)]
pub struct ThreadConns {
    idle: Mutex<Vec<Idle>>,
    /// Whether a task closes expired idle connections (while there are any).
    sweeping: AtomicBool,
}

/// How connections are made and kept.
#[derive(Clone)]
pub struct H1Settings {
    pub connector: HttpConnector,
    pub idle_timeout: Duration,
    /// Idle connections kept per upstream authority on one thread.
    pub max_idle: usize,
    /// A request on a connection idle at least this long may be sent again
    /// ([`RESEND_AFTER_IDLE`]; tests set their own).
    pub resend_after_idle: Duration,
}

impl ThreadConns {
    /// An idle connection to `authority` that is ready for a request; closed, expired and
    /// not-ready ones met on the way are dropped.
    /// Returns it with how long it was idle.
    fn checkout(
        &self,
        authority: &Authority,
        idle_timeout: Duration,
    ) -> Option<(Sender, Duration)> {
        let mut idle = self.idle.lock();
        while let Some(i) = idle.iter().rposition(|c| c.authority == *authority) {
            let c = idle.swap_remove(i);
            let idle_for = c.since.elapsed();
            if c.sender.is_ready() && idle_for < idle_timeout {
                return Some((c.sender, idle_for));
            }
        }
        None
    }

    /// Keeps `sender` for the next request to `authority`, unless it cannot take one or the
    /// thread already keeps `max` connections to it. Connections that closed or expired while
    /// idle go on the way (whatever their upstream: one no longer used is never checked out).
    fn give_back(
        self: &Arc<Self>,
        authority: Authority,
        sender: Sender,
        max: usize,
        idle_timeout: Duration,
    ) {
        if !sender.is_ready() {
            return;
        }
        let now = Instant::now();
        {
            let mut idle = self.idle.lock();
            let mut same = 0;
            idle.retain(|c| {
                let live = !c.sender.is_closed() && now.duration_since(c.since) < idle_timeout;
                if live && c.authority == authority {
                    same += 1;
                }
                live
            });
            if same >= max {
                return;
            }
            idle.push(Idle {
                authority,
                sender,
                since: now,
            });
        }
        // A plain load on the way of every request; the swap only when no sweeper runs.
        if !self.sweeping.load(Ordering::Acquire) && !self.sweeping.swap(true, Ordering::AcqRel) {
            self.sweep_every(idle_timeout);
        }
    }

    /// Closes the connections that stay idle past `idle_timeout` even when no request comes
    /// (a thread gone quiet, an upstream no longer used): a task on this thread's runtime checks
    /// every `idle_timeout` while any are kept, and ends with the last one (the next one kept
    /// starts it again) or with the client.
    fn sweep_every(self: &Arc<Self>, idle_timeout: Duration) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.sweeping.store(false, Ordering::Release);
            return;
        };
        let conns = Arc::downgrade(self);
        rt.spawn(async move {
            let mut tick = tokio::time::interval(idle_timeout.max(Duration::from_millis(10)));
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(conns) = conns.upgrade() else {
                    return;
                };
                let now = Instant::now();
                let mut idle = conns.idle.lock();
                idle.retain(|c| {
                    !c.sender.is_closed() && now.duration_since(c.since) < idle_timeout
                });
                if idle.is_empty() {
                    conns.sweeping.store(false, Ordering::Release);
                    return;
                }
            }
        });
    }

    /// Idle connections kept (all authorities).
    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.idle.lock().len()
    }
}

/// Sends `req` (an absolute `http://` URI with a `Host` header) over a connection of `conns`,
/// or a new one, returning the response with a body that gives the connection back at its end.
pub async fn send(
    conns: &Arc<ThreadConns>,
    settings: &H1Settings,
    mut req: http::Request<Full<Bytes>>,
) -> Result<http::Response<UpstreamBody>, H1Error> {
    let uri = req.uri().clone();
    let Some(authority) = uri.authority().cloned() else {
        return Err(H1Error::Connect("the upstream URL has no host".into()));
    };
    // HTTP/1.1 needs one (a header rule may have removed the upstream's): the one proxied
    // requests carry by default.
    if !req.headers().contains_key(http::header::HOST) {
        let host = http::HeaderValue::from_str(crate::upstream_base::host_of(&authority))
            .map_err(|e| H1Error::Connect(Box::new(e)))?;
        req.headers_mut().insert(http::header::HOST, host);
    }
    // Origin form on the wire: the path and query only.
    *req.uri_mut() = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"))
        .into();
    let (mut sender, idle_for) = match conns.checkout(&authority, settings.idle_timeout) {
        Some((s, idle_for)) => (s, Some(idle_for)),
        // Boxed: the rare path's future would otherwise enlarge every request's.
        None => (Box::pin(connect(settings, &uri)).await?, None),
    };
    let reused = idle_for.is_some();
    // A connection idle long enough for the upstream's keep-alive to end may be closed just as
    // the request goes out: a copy to send again then, if it may be repeated (headers, and the
    // body's shared bytes).
    let copy = (idle_for.is_some_and(|d| d >= settings.resend_after_idle) && replayable(&req))
        .then(|| copy_of(&req));
    let resp = match sender.try_send_request(req).await {
        Ok(r) => r,
        Err(mut e) => {
            let again = match (e.take_message(), copy) {
                // Closed before the request was written: a connection that went stale while
                // idle.
                (Some(req), _) if reused => req,
                // Closed after it was written, before a complete answer: the upstream closed
                // the idle connection as the request went out. A repeatable request is sent
                // again once, on a new connection (the key is not to blame).
                (None, Some(copy)) if e.error().is_incomplete_message() => copy,
                _ => return Err(H1Error::Send(e.into_error())),
            };
            sender = Box::pin(connect(settings, &uri)).await?;
            Box::pin(sender.send_request(again))
                .await
                .map_err(H1Error::Send)?
        }
    };
    Ok(resp.map(|inner| UpstreamBody {
        inner,
        back: Some(GiveBack {
            conns: conns.clone(),
            authority,
            sender,
            max: settings.max_idle,
            idle_timeout: settings.idle_timeout,
        }),
    }))
}

/// How long a connection must have been idle for a request on it to be sent again when the
/// upstream closes it without an answer (below every common keep-alive timeout: Go's 90 s,
/// nginx's 75 s, Node's 5 s, gunicorn's 2 s).
pub const RESEND_AFTER_IDLE: Duration = Duration::from_millis(500);

static IDEMPOTENCY_KEY: http::HeaderName = http::HeaderName::from_static("idempotency-key");
static X_IDEMPOTENCY_KEY: http::HeaderName = http::HeaderName::from_static("x-idempotency-key");

/// Whether a request already written may be sent again: Go's `Request.isReplayable` (a safe
/// method, or a client that declared the request idempotent).
fn replayable(req: &http::Request<Full<Bytes>>) -> bool {
    use http::Method;
    matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) || req.headers().contains_key(&IDEMPOTENCY_KEY)
        || req.headers().contains_key(&X_IDEMPOTENCY_KEY)
}

/// A copy of `req` to send again: method, URI, version, headers, and the body (shared bytes).
fn copy_of(req: &http::Request<Full<Bytes>>) -> http::Request<Full<Bytes>> {
    let mut copy = http::Request::new(req.body().clone());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    copy
}

/// A new connection to `uri`'s authority, served by a task on the current runtime.
async fn connect(settings: &H1Settings, uri: &http::Uri) -> Result<Sender, H1Error> {
    let io = settings
        .connector
        .clone()
        .oneshot(uri.clone())
        .await
        .map_err(|e| H1Error::Connect(Box::new(e)))?;
    let (sender, conn) = http1::handshake(io).await.map_err(H1Error::Send)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

/// Where a connection goes once its response body is read.
struct GiveBack {
    conns: Arc<ThreadConns>,
    authority: Authority,
    sender: Sender,
    max: usize,
    idle_timeout: Duration,
}

/// An upstream response body: hyper's, passed through frame by frame. On a pooled connection,
/// the connection returns to its thread's list at the body's end; dropped before its end, the
/// body closes it. (Responses through hyper-util's pool carry nothing to give back.)
pub struct UpstreamBody {
    inner: Incoming,
    back: Option<GiveBack>,
}

impl From<Incoming> for UpstreamBody {
    fn from(inner: Incoming) -> Self {
        Self { inner, back: None }
    }
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("pooled", &self.back.is_some())
            .finish()
    }
}

impl UpstreamBody {
    /// Whether the body's connection goes back to a thread's list at its end.
    pub fn is_pooled(&self) -> bool {
        self.back.is_some()
    }

    fn give_back(&mut self) {
        if let Some(b) = self.back.take() {
            b.conns
                .give_back(b.authority, b.sender, b.max, b.idle_timeout);
        }
    }
}

impl Drop for UpstreamBody {
    /// A body that ended without being polled to its end (an empty one — `HEAD`, 204, 304,
    /// `Content-Length: 0` — which servers do not poll) still gives its connection back; one
    /// dropped halfway does not (`give_back` keeps only a connection ready for a request).
    fn drop(&mut self) {
        if self.back.is_some() && self.inner.is_end_stream() {
            self.give_back();
        }
    }
}

impl HttpBody for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        match &r {
            Poll::Ready(None) => this.give_back(),
            // Trailers end a message (a server stops polling after them).
            Poll::Ready(Some(Ok(f))) if f.is_trailers() || this.inner.is_end_stream() => {
                this.give_back()
            }
            Poll::Ready(Some(Err(_))) => this.back = None,
            _ => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An HTTP/1.1 server on loopback answering every request with `body`; counts the
    /// connections it accepted. With `one_per_connection` it closes each connection after its
    /// first answer (without saying so), as an upstream whose keep-alive timed out.
    async fn server(body: &'static str, one_per_connection: bool) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            match s.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        // Request bodies here are empty: drop the head.
                        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0);
                        buf.drain(..end + 4);
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if s.write_all(answer.as_bytes()).await.is_err() || one_per_connection {
                            return;
                        }
                    }
                });
            }
        });
        (format!("http://{addr}/v1/models"), accepted)
    }

    fn settings(idle_timeout: Duration, max_idle: usize) -> H1Settings {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        H1Settings {
            connector,
            idle_timeout,
            max_idle,
            resend_after_idle: RESEND_AFTER_IDLE,
        }
    }

    fn get(url: &str) -> http::Request<Full<Bytes>> {
        let uri: http::Uri = url.parse().expect("uri");
        let host = uri.authority().expect("authority").as_str().to_owned();
        http::Request::builder()
            .uri(uri)
            .header(http::header::HOST, host)
            .body(Full::new(Bytes::new()))
            .expect("request")
    }

    async fn body_of(resp: http::Response<UpstreamBody>) -> Bytes {
        resp.into_body().collect().await.expect("body").to_bytes()
    }

    #[tokio::test]
    async fn a_connection_read_to_the_end_carries_the_next_request() {
        let (url, accepted) = server("hello", false).await;
        let conns = Arc::new(ThreadConns::default());
        let s = settings(Duration::from_secs(90), 4);
        for _ in 0..5 {
            let resp = send(&conns, &s, get(&url)).await.expect("answered");
            assert_eq!(resp.status(), 200);
            assert_eq!(body_of(resp).await, "hello");
            assert_eq!(conns.idle_count(), 1, "the connection is kept");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection for all");
    }

    #[tokio::test]
    async fn an_empty_body_gives_its_connection_back_unpolled() {
        let (url, accepted) = server("", false).await;
        let conns = Arc::new(ThreadConns::default());
        let s = settings(Duration::from_secs(90), 4);
        for _ in 0..3 {
            let resp = send(&conns, &s, get(&url)).await.expect("answered");
            assert_eq!(resp.status(), 200);
            // As a server does with a body that is already at its end: never polled.
            drop(resp);
            assert_eq!(conns.idle_count(), 1, "the connection is kept");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_closes_its_connection() {
        let (url, accepted) = server("a longer body", false).await;
        let conns = Arc::new(ThreadConns::default());
        let s = settings(Duration::from_secs(90), 4);
        let resp = send(&conns, &s, get(&url)).await.expect("answered");
        drop(resp);
        assert_eq!(conns.idle_count(), 0, "not kept");
        let resp = send(&conns, &s, get(&url)).await.expect("answered");
        assert_eq!(body_of(resp).await, "a longer body");
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "a new connection");
    }

    #[tokio::test]
    async fn connections_the_upstream_closed_while_idle_are_replaced() {
        let (url, accepted) = server("ok", true).await;
        let conns = Arc::new(ThreadConns::default());
        let s = settings(Duration::from_secs(90), 4);
        for i in 0..20 {
            let resp = send(&conns, &s, get(&url)).await.expect("answered");
            assert_eq!(body_of(resp).await, "ok", "request {i}");
            if i % 2 == 0 {
                // Now and then a pause, so that the close is certainly seen before the next
                // checkout; without one it is seen at the checkout or before the write.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 20);
    }

    /// The race a resend covers: the upstream closes a kept connection after it went idle, and
    /// the close is not yet seen when the next request goes out on it (it still looks ready).
    /// Deterministic: the server (a thread of its own) closes when told, and the test's thread
    /// then blocks for `idle` (the FIN arrives while its runtime polls nothing) before sending
    /// again, with `resend_after_idle` as the pool's threshold. Returns the second request's
    /// outcome and how many connections the server took.
    async fn send_over_a_connection_closed_unseen(
        idle: Duration,
        resend_after_idle: Duration,
        second: fn(&str) -> http::Request<Full<Bytes>>,
    ) -> (Result<Bytes, H1Error>, usize) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (close_tx, close_rx) = std::sync::mpsc::channel::<()>();
        let (closed_tx, closed_rx) = std::sync::mpsc::channel::<()>();
        let done = Arc::new(AtomicBool::new(false));
        let client_done = done.clone();
        let server = std::thread::spawn(move || {
            let mut accepted = 0;
            // Non-blocking accepts polled until a deadline: a test whose client gave up does
            // not leave the thread waiting for a second connection.
            listener.set_nonblocking(true).expect("nonblocking");
            let deadline = Instant::now() + Duration::from_secs(5);
            while accepted < 2 && !done.load(Ordering::SeqCst) && Instant::now() < deadline {
                let mut s = match listener.accept() {
                    Ok((s, _)) => s,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                s.set_nonblocking(false).expect("blocking");
                accepted += 1;
                // The whole request, body included (unread bytes would make the close a reset).
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let whole = |buf: &[u8]| {
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    (buf.len() >= end + 4 + len).then_some(())
                };
                while whole(&buf).is_none() {
                    let n = s.read(&mut chunk).expect("read");
                    assert!(n > 0, "closed before a request");
                    buf.extend_from_slice(&chunk[..n]);
                }
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .expect("write");
                if accepted == 1 {
                    // Kept open (keep-alive) until the client holds it idle, then closed.
                    close_rx.recv().expect("told to close");
                    drop(s);
                    closed_tx.send(()).expect("report");
                }
            }
            accepted
        });
        let url = format!("http://{addr}/v1/models");
        let conns = Arc::new(ThreadConns::default());
        let s = H1Settings {
            resend_after_idle,
            ..settings(Duration::from_secs(90), 4)
        };
        let resp = send(&conns, &s, get(&url)).await.expect("answered");
        assert_eq!(body_of(resp).await, "ok");
        // Let the connection's task settle into waiting for the next request.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(conns.idle_count(), 1, "kept");
        close_tx.send(()).expect("tell");
        closed_rx.recv().expect("closed");
        std::thread::sleep(idle);
        assert!(
            conns.idle.lock().iter().all(|c| c.sender.is_ready()),
            "the closed connection still looks ready"
        );
        let second = match send(&conns, &s, second(&url)).await {
            Ok(resp) => Ok(body_of(resp).await),
            Err(e) => Err(e),
        };
        client_done.store(true, Ordering::SeqCst);
        (second, server.join().expect("server"))
    }

    /// How long the keep-alive tests hold a closed connection idle (enough for the FIN to
    /// arrive on loopback), and the resend threshold of those that expect a resend: the idle
    /// time measured from the give-back is at least the time blocked, so never below it.
    const TEST_IDLE: Duration = Duration::from_millis(100);

    /// A chat completion as clients send it: `POST` with a body, no idempotency key.
    fn post(url: &str) -> http::Request<Full<Bytes>> {
        let mut req = get(url);
        *req.method_mut() = http::Method::POST;
        *req.body_mut() = Full::new(Bytes::from_static(b"{\"model\":\"m\"}"));
        req
    }

    fn post_with_idempotency_key(url: &str) -> http::Request<Full<Bytes>> {
        let mut req = post(url);
        req.headers_mut()
            .insert(&IDEMPOTENCY_KEY, http::HeaderValue::from_static("k-1"));
        req
    }

    #[tokio::test]
    async fn a_repeatable_request_crossing_a_keep_alive_close_goes_out_again_on_a_new_connection() {
        for second in [get, post_with_idempotency_key] {
            let (second, accepted) =
                send_over_a_connection_closed_unseen(TEST_IDLE, TEST_IDLE, second).await;
            assert_eq!(second.expect("sent again"), "ok");
            assert_eq!(accepted, 2, "on a second connection");
        }
    }

    fn assert_incomplete(second: Result<Bytes, H1Error>) {
        match second {
            Err(H1Error::Send(e)) => assert!(e.is_incomplete_message(), "{e:?}"),
            other => panic!("expected an incomplete message, got {other:?}"),
        }
    }

    /// A `POST` without an idempotency key is never sent twice: the upstream may have received
    /// it. The close fails it (the proxy's retry policy takes over).
    #[tokio::test]
    async fn a_post_crossing_a_keep_alive_close_is_not_sent_again() {
        let (second, accepted) =
            send_over_a_connection_closed_unseen(TEST_IDLE, TEST_IDLE, post).await;
        assert_incomplete(second);
        assert_eq!(accepted, 1);
    }

    /// Below the idle time a keep-alive could end in, no copy is made: the close fails even a
    /// repeatable request. (A threshold far above the idle time: however slow the machine, the
    /// connection cannot have been idle that long.)
    #[tokio::test]
    async fn a_connection_closed_after_a_short_idle_fails_the_request_written_on_it() {
        let (second, accepted) =
            send_over_a_connection_closed_unseen(TEST_IDLE, Duration::from_secs(3600), get).await;
        assert_incomplete(second);
        assert_eq!(accepted, 1);
    }

    #[tokio::test]
    async fn idle_connections_expire_and_the_allowance_is_kept() {
        let (url, accepted) = server("ok", false).await;
        let conns = Arc::new(ThreadConns::default());
        let s = settings(Duration::from_millis(50), 2);
        // Three at once: three connections, of which two are kept.
        let all = futures::future::join_all((0..3).map(|_| send(&conns, &s, get(&url)))).await;
        for resp in all {
            assert_eq!(body_of(resp.expect("answered")).await, "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
        assert_eq!(conns.idle_count(), 2);
        tokio::time::sleep(Duration::from_millis(80)).await;
        let resp = send(&conns, &s, get(&url)).await.expect("answered");
        assert_eq!(body_of(resp).await, "ok");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            4,
            "expired ones are not used"
        );
        assert_eq!(conns.idle_count(), 1, "expired ones are dropped");

        // With no more requests, the rest is closed once it expires too.
        let deadline = Instant::now() + Duration::from_secs(5);
        while conns.idle_count() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(conns.idle_count(), 0, "expired while nothing came");
        assert!(!conns.sweeping.load(Ordering::Acquire), "the sweeper ended");

        let none = settings(Duration::from_secs(90), 0);
        let conns = Arc::new(ThreadConns::default());
        let resp = send(&conns, &none, get(&url)).await.expect("answered");
        assert_eq!(body_of(resp).await, "ok");
        assert_eq!(conns.idle_count(), 0, "an allowance of 0 keeps none");
    }

    #[tokio::test]
    async fn a_request_without_host_gets_the_urls() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut head = Vec::new();
            let mut chunk = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut chunk).await.expect("read");
                assert!(n > 0, "closed early");
                head.extend_from_slice(&chunk[..n]);
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{head}",
                head.len()
            );
            s.write_all(answer.as_bytes()).await.expect("write");
        });
        let mut req = get(&format!("http://{addr}/v1/models?x=1"));
        req.headers_mut().remove(http::header::HOST);
        let conns = Arc::new(ThreadConns::default());
        let resp = send(&conns, &settings(Duration::from_secs(90), 4), req)
            .await
            .expect("answered");
        let head = body_of(resp).await;
        let head = String::from_utf8_lossy(&head).to_lowercase();
        assert!(
            head.starts_with("get /v1/models?x=1 http/1.1\r\n"),
            "{head}"
        );
        assert!(head.contains(&format!("\r\nhost: {addr}\r\n")), "{head}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let conns = Arc::new(ThreadConns::default());
        let s = settings(Duration::from_secs(90), 4);
        let err = send(&conns, &s, get(&format!("http://127.0.0.1:{port}/")))
            .await
            .expect_err("refused");
        assert!(matches!(err, H1Error::Connect(_)), "{err:?}");
        let mut msg = err.to_string();
        let mut src = std::error::Error::source(&err);
        while let Some(e) = src {
            msg.push_str(": ");
            msg.push_str(&e.to_string());
            src = e.source();
        }
        assert!(
            msg.starts_with("client error (Connect): tcp connect error"),
            "{msg}"
        );
    }
}
