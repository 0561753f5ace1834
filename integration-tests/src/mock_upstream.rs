//! A mock AI vendor API: an axum server on `127.0.0.1` that speaks OpenAI's, Anthropic's
//! and Gemini's wire formats, records every request, and misbehaves on demand.
//!
//! ```no_run
//! # async fn demo() {
//! use gpt_load_integration_tests::mock_upstream::{Behavior, MockUpstream};
//! let mock = MockUpstream::start().await;
//! mock.set_behavior(Some("sk-bad"), Behavior::openai_invalid_key("sk-bad"));
//! // point the proxy's upstream at `mock.url()`, send traffic, then:
//! let seen = mock.requests_for_key("sk-good");
//! # let _ = seen;
//! # }
//! ```
//!
//! # Endpoints
//!
//! Matched by path suffix, so any base-path prefix works:
//! - OpenAI: `POST …/chat/completions` (JSON, or SSE `chat.completion.chunk`s + `[DONE]`
//!   when `"stream": true`; `stream_options.include_usage` adds the usage chunk),
//!   `POST …/responses` (Responses API object, or `response.*` SSE events),
//!   `POST …/embeddings`, `GET …/models`, `GET …/models/{id}`.
//! - Anthropic: `POST …/messages` (JSON, or `message_start` … `message_stop` SSE),
//!   `POST …/messages/count_tokens`, `GET /v1/models` (when the request carries
//!   `anthropic-version` or `x-api-key`), `GET /v1/models/{id}`.
//! - Gemini: `POST …/models/{model}:generateContent`, `:streamGenerateContent` (SSE with
//!   `?alt=sse`, else a streamed JSON array), `:countTokens`, `:embedContent`,
//!   `:batchEmbedContents`; `GET /v1beta/models` (`pageSize`/`pageToken`, answers
//!   `nextPageToken`), `GET /v1beta/models/{id}`; the OpenAI-compatible surface under
//!   `/v1beta/openai/` (chat completions, embeddings, models).
//!
//! Generation endpoints echo the requested model and answer `"echo: <text of the last
//! user message>"`, so a test can check a body arrived intact. Anything else is a 404
//! in the guessed vendor's error format.
//!
//! # Fixtures
//!
//! The JSON bodies (generation answers, embeddings, model lists, error bodies) are files under
//! `integration-tests/fixtures/{openai,anthropic,gemini}/`, compiled in and filled per request
//! (`fixtures.rs`). Stream frames are assembled delta by delta in `stream.rs`; the whole
//! objects they carry (a Responses `response`, an Anthropic `message`, a Gemini chunk) come
//! from the fixtures too.
//!
//! # Recording
//!
//! Every request is recorded ([`Recorded`]) once its body was read and before its
//! behavior runs, with the API key it carried (`x-goog-api-key`, `?key=`, `x-api-key`,
//! then `Authorization: Bearer`, first found). Recording can be turned off for
//! benchmarks ([`MockUpstream::set_recording`]).
//!
//! # Scripting
//!
//! [`MockUpstream::set_behavior`] sets a [`Behavior`] per API key or as the default.
//! `Reset` needs the connection itself: the server runs its own accept loop (hyper-util
//! `auto` builder, HTTP/1 and h2c); each connection gets a [`ConnCtl`] in the request
//! extensions. A `Reset` handler flags it and wakes the connection task, which drops the
//! hyper connection; the socket wrapper ([`ConnIo`]) sets `SO_LINGER` to 0 in its `Drop`
//! when flagged, so the kernel sends a RST instead of a FIN.
//!
//! # TLS
//!
//! [`MockUpstream::start_tls_on`] serves the same API over TLS with a given server configuration
//! (a self-signed certificate from [`crate::tls::TestCert`], the ALPN protocols to offer:
//! `h2` and `http/1.1`, or `http/1.1` alone). Each connection's handshake runs on its own task,
//! before the connection is served as above.
//!
//! # Cancellation
//!
//! Each request carries a [`CancelGuard`] that counts a cancellation if the handler
//! future (or, for streams, the body) is dropped before the answer was complete —
//! which hyper does when the client closes the connection (HTTP/1) or resets the
//! stream (HTTP/2).

mod behavior;
mod fixtures;
mod stream;
mod wire;

use std::borrow::Cow;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode, Version};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use parking_lot::{Mutex, RwLock};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use behavior::{Behavior, anthropic_error_body, gemini_error_body, openai_error_body};
pub use wire::Vendor;

use behavior::Scripts;
use stream::{Deltas, StreamFormat, StreamKind, StreamPlan};
use wire::{Endpoint, GeminiAction, Prompt};

/// Largest request body the mock reads.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// Content deltas of a plain (unscripted) stream.
const DEFAULT_STREAM_CHUNKS: usize = 4;

/// One request the mock received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Arrival order, from 0 (not reset by [`MockUpstream::clear`]).
    pub seq: u64,
    /// HTTP method.
    pub method: Method,
    /// Path, as sent (not percent-decoded).
    pub path: String,
    /// Raw query string, without `?`.
    pub query: Option<String>,
    /// HTTP version.
    pub version: Version,
    /// Request headers, as received (`host` included).
    pub headers: HeaderMap,
    /// Request body bytes.
    pub body: Bytes,
    /// The API key the request carried, if any (see the module docs for where from).
    pub api_key: Option<String>,
    /// When the request's body had been read.
    pub received_at: Instant,
    cancelled: Arc<AtomicBool>,
}

impl Recorded {
    /// Whether the client went away before the answer was complete (see
    /// [`MockUpstream::cancelled_count`]).
    pub fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// A header's value, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body as UTF-8.
    pub fn body_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }

    /// A query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        wire::query_param(self.query.as_deref()?, name).map(Cow::into_owned)
    }
}

/// Model lists served by the models endpoints.
#[derive(Debug)]
struct Models {
    openai: Vec<String>,
    anthropic: Vec<String>,
    gemini: Vec<String>,
}

impl Models {
    fn get(&self, vendor: Vendor) -> &[String] {
        match vendor {
            Vendor::OpenAi => &self.openai,
            Vendor::Anthropic => &self.anthropic,
            Vendor::Gemini => &self.gemini,
        }
    }
}

/// State shared by the handle and the server.
#[derive(Debug)]
struct Shared {
    /// `created` timestamp of every answer (server start, Unix seconds).
    created: u64,
    next_seq: AtomicU64,
    total: AtomicUsize,
    recording: AtomicBool,
    log: Mutex<Vec<Recorded>>,
    cancelled: AtomicUsize,
    /// Woken on every new record and every cancellation.
    changed: Notify,
    /// Whether any behavior was ever set (the unscripted path skips the lock).
    scripted: AtomicBool,
    scripts: Mutex<Scripts>,
    models: RwLock<Models>,
}

impl Shared {
    fn behavior_for(&self, key: Option<&str>) -> Behavior {
        if !self.scripted.load(Ordering::Acquire) {
            return Behavior::Ok;
        }
        self.scripts.lock().next_for(key)
    }
}

/// Counts a cancellation if dropped while armed.
#[derive(Debug)]
pub(crate) struct CancelGuard {
    shared: Arc<Shared>,
    flag: Option<Arc<AtomicBool>>,
    armed: bool,
}

impl CancelGuard {
    /// The answer is complete (or the mock itself ended it): not a cancellation.
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if self.armed {
            if let Some(flag) = &self.flag {
                flag.store(true, Ordering::Release);
            }
            self.shared.cancelled.fetch_add(1, Ordering::AcqRel);
            self.shared.changed.notify_waiters();
        }
    }
}

/// Per-connection control, put in each request's extensions.
#[derive(Debug, Default)]
struct ConnCtl {
    reset: AtomicBool,
    wake: Notify,
}

impl ConnCtl {
    fn reset(&self) {
        self.reset.store(true, Ordering::Release);
        self.wake.notify_one();
    }
}

/// The accepted socket; sends a RST instead of a FIN when dropped after a reset.
struct ConnIo {
    stream: TcpStream,
    ctl: Arc<ConnCtl>,
}

impl Drop for ConnIo {
    fn drop(&mut self) {
        if self.ctl.reset.load(Ordering::Acquire) {
            // Best effort: if it fails the peer sees a FIN, still no response.
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// A running mock upstream. Dropping it stops the server and closes its connections.
#[derive(Debug)]
pub struct MockUpstream {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tls: bool,
    shutdown: CancellationToken,
}

/// How long a TLS client may take to complete its handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl MockUpstream {
    /// Starts a mock on `127.0.0.1:0`.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound (an environment failure; see
    /// [`MockUpstream::try_start`]).
    #[expect(
        clippy::expect_used,
        reason = "test support: failing to bind a loopback port is an environment failure"
    )]
    pub async fn start() -> Self {
        Self::try_start()
            .await
            .expect("mock upstream: bind 127.0.0.1:0")
    }

    /// Starts a mock on `127.0.0.1:0`.
    pub async fn try_start() -> io::Result<Self> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Starts a mock on `addr` (port 0 picks a free port). Must be called inside a tokio
    /// runtime; the server runs on spawned tasks until the handle is dropped.
    pub async fn start_on(addr: SocketAddr) -> io::Result<Self> {
        Self::start_with(addr, None).await
    }

    /// Starts a mock on `addr` that speaks TLS with `tls` (its certificate and the ALPN
    /// protocols it offers); [`MockUpstream::url`] is then `https://…`.
    pub async fn start_tls_on(
        addr: SocketAddr,
        tls: Arc<tokio_rustls::rustls::ServerConfig>,
    ) -> io::Result<Self> {
        Self::start_with(addr, Some(tokio_rustls::TlsAcceptor::from(tls))).await
    }

    async fn start_with(
        addr: SocketAddr,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let shared = Arc::new(Shared {
            created,
            next_seq: AtomicU64::new(0),
            total: AtomicUsize::new(0),
            recording: AtomicBool::new(true),
            log: Mutex::new(Vec::new()),
            cancelled: AtomicUsize::new(0),
            changed: Notify::new(),
            scripted: AtomicBool::new(false),
            scripts: Mutex::new(Scripts::default()),
            models: RwLock::new(Models {
                openai: wire::default_models(Vendor::OpenAi),
                anthropic: wire::default_models(Vendor::Anthropic),
                gemini: wire::default_models(Vendor::Gemini),
            }),
        });
        let router = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let shutdown = CancellationToken::new();
        let is_tls = tls.is_some();
        tokio::spawn(accept_loop(listener, tls, router, shutdown.clone()));
        Ok(Self {
            shared,
            addr,
            tls: is_tls,
            shutdown,
        })
    }

    /// `http://127.0.0.1:PORT`, or `https://…` over TLS (no trailing slash).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every recorded request, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.log.lock().clone()
    }

    /// The recorded requests that carried `key`.
    pub fn requests_for_key(&self, key: &str) -> Vec<Recorded> {
        self.shared
            .log
            .lock()
            .iter()
            .filter(|r| r.api_key.as_deref() == Some(key))
            .cloned()
            .collect()
    }

    /// The most recent recorded request.
    pub fn last_request(&self) -> Option<Recorded> {
        self.shared.log.lock().last().cloned()
    }

    /// Requests received since start, recorded or not (never reset).
    pub fn request_count(&self) -> usize {
        self.shared.total.load(Ordering::Acquire)
    }

    /// Forgets the recorded requests and zeroes [`MockUpstream::cancelled_count`].
    /// Behaviors are kept (see [`MockUpstream::reset_behaviors`]).
    pub fn clear(&self) {
        self.shared.log.lock().clear();
        self.shared.cancelled.store(0, Ordering::Release);
    }

    /// Requests whose client went away before the answer was complete: a handler
    /// dropped while hanging or delaying, or a stream body dropped before its last frame.
    pub fn cancelled_count(&self) -> usize {
        self.shared.cancelled.load(Ordering::Acquire)
    }

    /// Waits until at least `n` requests are recorded; false on timeout.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, || self.shared.log.lock().len() >= n)
            .await
    }

    /// Waits until [`MockUpstream::cancelled_count`] reaches `n`; false on timeout.
    pub async fn wait_for_cancelled(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, || self.cancelled_count() >= n)
            .await
    }

    async fn wait_until(&self, timeout: Duration, cond: impl Fn() -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if cond() {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return cond();
            }
        }
    }

    /// Sets how requests carrying `key` are answered, or with `None` the default for
    /// keys without a behavior of their own (and for requests without a key). Replaces
    /// any previous behavior (and restarts its sequence).
    pub fn set_behavior(&self, key: Option<&str>, behavior: Behavior) {
        self.shared.scripts.lock().set(key, behavior);
        self.shared.scripted.store(true, Ordering::Release);
    }

    /// Back to [`Behavior::Ok`] for every key.
    pub fn reset_behaviors(&self) {
        *self.shared.scripts.lock() = Scripts::default();
        self.shared.scripted.store(false, Ordering::Release);
    }

    /// Turns request recording on (the default) or off. Off, nothing is stored per
    /// request (for benchmarks); [`MockUpstream::request_count`] still counts.
    pub fn set_recording(&self, on: bool) {
        self.shared.recording.store(on, Ordering::Release);
    }

    /// Replaces the model ids `vendor`'s models endpoints list (bare ids, e.g.
    /// `gemini-2.0-flash`; Gemini answers them as `models/<id>`).
    pub fn set_models(&self, vendor: Vendor, ids: Vec<String>) {
        let mut models = self.shared.models.write();
        match vendor {
            Vendor::OpenAi => models.openai = ids,
            Vendor::Anthropic => models.anthropic = ids,
            Vendor::Gemini => models.gemini = ids,
        }
    }
}

/// Accepts connections until `shutdown`; each one is served on its own task (after its TLS
/// handshake, with `tls`).
async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    router: Router,
    shutdown: CancellationToken,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_connection(
                    stream,
                    tls.clone(),
                    router.clone(),
                    Arc::clone(&builder),
                    shutdown.clone(),
                ));
            }
            // Out of descriptors and the like: back off instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

/// Serves one connection (after its TLS handshake, with `tls`) until it closes, a handler asks
/// for a reset, or shutdown.
async fn serve_connection(
    stream: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    router: Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    shutdown: CancellationToken,
) {
    let ctl = Arc::new(ConnCtl::default());
    let io = ConnIo {
        stream,
        ctl: Arc::clone(&ctl),
    };
    let Some(tls) = tls else {
        return serve_io(TokioIo::new(io), ctl, router, builder, shutdown).await;
    };
    let handshake = tokio::select! {
        () = shutdown.cancelled() => return,
        r = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(io)) => r,
    };
    // A failed or slow handshake just closes the connection, as a real server does.
    if let Ok(Ok(io)) = handshake {
        serve_io(TokioIo::new(io), ctl, router, builder, shutdown).await;
    }
}

async fn serve_io<I>(
    io: TokioIo<I>,
    ctl: Arc<ConnCtl>,
    router: Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    shutdown: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let req_ctl = Arc::clone(&ctl);
    let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
        req.extensions_mut().insert(Arc::clone(&req_ctl));
        tower::Service::call(&mut router.clone(), req)
    });
    let conn = builder.serve_connection(io, service);
    tokio::select! {
        _ = conn => {}
        () = ctl.wake.notified() => {}
        () = shutdown.cancelled() => {}
    }
}

/// How an `Ok`-like answer is shaped.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// JSON, or a stream if the request asked for one.
    AsRequested,
    Slow {
        chunks: usize,
        interval: Duration,
    },
    Large {
        bytes: usize,
    },
    Abort {
        after: usize,
    },
}

/// Everything about the request the answer needs.
struct Ctx<'a> {
    shared: &'a Shared,
    seq: u64,
    endpoint: Endpoint<'a>,
    query: Option<&'a str>,
    body: &'a [u8],
}

/// The one handler: record, pick the behavior, answer.
/// Behaviour chosen from outside the process (benchmarks, browser tests): an `x-mock-behavior`
/// request header (`large-stream=BYTES`, `slow-stream=CHUNKS,MILLIS`, `status=CODE`,
/// `delay=MILLIS`), or an API key starting with `mock-fail-` (401 in the vendor's format) or
/// `mock-429-` (rate limited, `Retry-After: 30`).
fn external_behavior(headers: &axum::http::HeaderMap, key: Option<&str>) -> Option<Behavior> {
    if let Some(k) = key {
        if k.starts_with("mock-fail-") {
            return Some(Behavior::Error {
                code: 401,
                message: "Incorrect API key provided".into(),
            });
        }
        if k.starts_with("mock-429-") {
            return Some(Behavior::rate_limited(30));
        }
    }
    let v = headers.get("x-mock-behavior")?.to_str().ok()?;
    let (name, arg) = v.split_once('=').unwrap_or((v, ""));
    let num = |s: &str| s.trim().parse::<u64>().ok();
    match name.trim() {
        "large-stream" => Some(Behavior::LargeStream {
            bytes: num(arg)? as usize,
        }),
        "slow-stream" => {
            let (c, ms) = arg.split_once(',')?;
            Some(Behavior::SlowStream {
                chunks: num(c)? as usize,
                interval: Duration::from_millis(num(ms)?),
            })
        }
        "status" => Some(Behavior::status(u16::try_from(num(arg)?).ok()?)),
        "delay" => Some(Behavior::Delay(Duration::from_millis(num(arg)?))),
        _ => None,
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let seq = shared.next_seq.fetch_add(1, Ordering::Relaxed);
    shared.total.fetch_add(1, Ordering::AcqRel);
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(body) => body,
        Err(err) => {
            return text_response(
                StatusCode::BAD_REQUEST,
                format!("mock upstream: unreadable body: {err}"),
            );
        }
    };
    let conn = parts.extensions.get::<Arc<ConnCtl>>().cloned();
    let query = parts.uri.query();
    let key = wire::api_key(&parts.headers, query);
    let key_in_query = query.is_some_and(|q| wire::query_param(q, "key").is_some());
    let endpoint = wire::route(
        &parts.method,
        parts.uri.path(),
        &parts.headers,
        key_in_query,
    );

    let flag = shared.recording.load(Ordering::Acquire).then(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let record = Recorded {
            seq,
            method: parts.method.clone(),
            path: parts.uri.path().to_owned(),
            query: query.map(str::to_owned),
            version: parts.version,
            headers: parts.headers.clone(),
            body: body.clone(),
            api_key: key.as_deref().map(str::to_owned),
            received_at: Instant::now(),
            cancelled: Arc::clone(&flag),
        };
        shared.log.lock().push(record);
        shared.changed.notify_waiters();
        flag
    });
    let mut guard = CancelGuard {
        shared: Arc::clone(&shared),
        flag,
        armed: true,
    };

    let behavior = external_behavior(&parts.headers, key.as_deref())
        .unwrap_or_else(|| shared.behavior_for(key.as_deref()));
    let ctx = Ctx {
        shared: &shared,
        seq,
        endpoint,
        query,
        body: &body,
    };
    match behavior {
        Behavior::Ok | Behavior::Sequence(_) => answer(&ctx, Mode::AsRequested, guard),
        Behavior::Delay(delay) => {
            tokio::time::sleep(delay).await;
            answer(&ctx, Mode::AsRequested, guard)
        }
        Behavior::SlowStream { chunks, interval } => {
            answer(&ctx, Mode::Slow { chunks, interval }, guard)
        }
        Behavior::LargeStream { bytes } => answer(&ctx, Mode::Large { bytes }, guard),
        Behavior::AbortStream { after_chunks } => answer(
            &ctx,
            Mode::Abort {
                after: after_chunks,
            },
            guard,
        ),
        Behavior::Status {
            code,
            body,
            headers,
        } => {
            guard.disarm();
            status_response(code, body, &headers)
        }
        Behavior::Error { code, message } => {
            guard.disarm();
            vendor_error(endpoint.vendor(), code, &message)
        }
        Behavior::Hang => {
            // Armed: dropping this future (client gone) counts a cancellation.
            let _guard = guard;
            std::future::pending().await
        }
        Behavior::Reset => {
            guard.disarm();
            match conn {
                Some(conn) => {
                    conn.reset();
                    std::future::pending().await
                }
                None => text_response(
                    StatusCode::BAD_GATEWAY,
                    "mock upstream: Reset needs a connection".to_owned(),
                ),
            }
        }
    }
}

/// The answer of an `Ok`-like behavior: either a whole response or a stream plan.
enum Answer {
    Full(Response),
    Stream(StreamPlan),
}

fn answer(ctx: &Ctx<'_>, mode: Mode, mut guard: CancelGuard) -> Response {
    match build_answer(ctx, mode) {
        Answer::Full(res) => {
            guard.disarm();
            res
        }
        Answer::Stream(plan) => {
            let content_type = plan.format.content_type();
            let mut res = Response::new(stream::stream_body(plan, guard));
            let headers = res.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            res
        }
    }
}

fn build_answer(ctx: &Ctx<'_>, mode: Mode) -> Answer {
    let vendor = ctx.endpoint.vendor();
    let generation = match ctx.endpoint {
        Endpoint::Chat => Some((StreamKind::Chat, wire::parse_chat(ctx.body))),
        Endpoint::Responses => Some((StreamKind::Responses, wire::parse_responses(ctx.body))),
        Endpoint::Messages => Some((StreamKind::Anthropic, wire::parse_chat(ctx.body))),
        Endpoint::Gemini {
            model,
            action: GeminiAction::Generate,
        } => Some((
            StreamKind::GeminiSse,
            wire::parse_gemini(model, ctx.body, false),
        )),
        Endpoint::Gemini {
            model,
            action: GeminiAction::Stream,
        } => {
            let sse = ctx
                .query
                .and_then(|q| wire::query_param(q, "alt"))
                .is_some_and(|alt| alt == "sse");
            let kind = if sse {
                StreamKind::GeminiSse
            } else {
                StreamKind::GeminiArray
            };
            Some((kind, wire::parse_gemini(model, ctx.body, true)))
        }
        _ => None,
    };

    let (kind, prompt) = match generation {
        Some((kind, Ok(prompt))) => (kind, prompt),
        Some((_, Err(err))) => {
            return Answer::Full(vendor_error(
                vendor,
                400,
                &format!("mock upstream: invalid JSON body: {err}"),
            ));
        }
        None if matches!(mode, Mode::AsRequested) => {
            return Answer::Full(other_endpoint(ctx));
        }
        None => {
            // A stream behavior on an endpoint without a stream of its own: use the
            // vendor's generation stream with an empty prompt.
            let kind = match vendor {
                Vendor::OpenAi => StreamKind::Chat,
                Vendor::Anthropic => StreamKind::Anthropic,
                Vendor::Gemini => StreamKind::GeminiSse,
            };
            let model = wire::body_model(ctx.body).unwrap_or(Cow::Borrowed("mock"));
            (kind, Prompt::empty(model))
        }
    };

    let streaming = !matches!(mode, Mode::AsRequested) || prompt.stream;
    if !streaming {
        return Answer::Full(generation_json(ctx, kind, &prompt));
    }
    let (deltas, interval, abort_after) = match mode {
        Mode::AsRequested => (
            Deltas::Parts(stream::split_even(&prompt.reply, DEFAULT_STREAM_CHUNKS).into_iter()),
            Duration::ZERO,
            None,
        ),
        Mode::Slow { chunks, interval } => (
            Deltas::Parts(stream::split_even(&prompt.reply, chunks).into_iter()),
            interval,
            None,
        ),
        Mode::Large { bytes } => (
            Deltas::Fill {
                first: Some(prompt.reply.clone()),
                min_bytes: bytes,
            },
            Duration::ZERO,
            None,
        ),
        Mode::Abort { after } => (
            Deltas::Parts(stream::split_even(&prompt.reply, after.saturating_add(1)).into_iter()),
            Duration::ZERO,
            Some(after),
        ),
    };
    Answer::Stream(StreamPlan {
        format: StreamFormat::new(kind, ctx.seq, ctx.shared.created, &prompt),
        deltas,
        interval,
        abort_after,
        full_text: prompt.reply,
    })
}

/// The non-streamed answer of a generation endpoint.
fn generation_json(ctx: &Ctx<'_>, kind: StreamKind, prompt: &Prompt<'_>) -> Response {
    match kind {
        // The benchmark's baseline: written straight into one buffer.
        StreamKind::Chat => json_bytes(
            StatusCode::OK,
            wire::chat_completion(ctx.seq, ctx.shared.created, prompt),
        ),
        StreamKind::Responses => json_response(
            StatusCode::OK,
            &wire::responses_object(
                &wire::make_id("resp_mock", ctx.seq),
                &wire::make_id("msg_mock", ctx.seq),
                ctx.shared.created,
                prompt,
                Some(&prompt.reply),
            ),
        ),
        StreamKind::Anthropic => json_response(
            StatusCode::OK,
            &wire::anthropic_message(
                &wire::make_id("msg_mock", ctx.seq),
                prompt,
                Some(&prompt.reply),
            ),
        ),
        StreamKind::GeminiSse | StreamKind::GeminiArray => json_bytes(
            StatusCode::OK,
            wire::gemini_response(
                &prompt.model,
                &wire::make_id("mock-resp-", ctx.seq),
                &prompt.reply,
                prompt.prompt_tokens,
                Some(wire::tokens(&prompt.reply)),
            ),
        ),
    }
}

/// Answers of the endpoints that are not generation.
fn other_endpoint(ctx: &Ctx<'_>) -> Response {
    let vendor = ctx.endpoint.vendor();
    let invalid = |err: serde_json::Error| {
        vendor_error(
            vendor,
            400,
            &format!("mock upstream: invalid JSON body: {err}"),
        )
    };
    let not_found = |what: &str| vendor_error(vendor, 404, &format!("model `{what}` not found"));
    let models = ctx.shared.models.read();
    let found = |v: Option<Value>, id: &str| match v {
        Some(v) => json_response(StatusCode::OK, &v),
        None => not_found(id),
    };
    match ctx.endpoint {
        Endpoint::Embeddings => match wire::openai_embeddings(ctx.body) {
            Ok(v) => json_bytes(StatusCode::OK, v),
            Err(err) => invalid(err),
        },
        Endpoint::OpenAiModels { gemini } => {
            let ids = if gemini {
                &models.gemini
            } else {
                &models.openai
            };
            json_response(StatusCode::OK, &wire::openai_models(ids, gemini))
        }
        Endpoint::OpenAiModel { id } => {
            found(wire::openai_model_one(models.get(Vendor::OpenAi), id), id)
        }
        Endpoint::MessagesCountTokens => match wire::parse_chat(ctx.body) {
            Ok(p) => json_bytes(
                StatusCode::OK,
                fixtures::ANTHROPIC_COUNT_TOKENS
                    .render(&[("input_tokens", fixtures::Fill::Num(p.prompt_tokens))]),
            ),
            Err(err) => invalid(err),
        },
        Endpoint::AnthropicModels => json_response(
            StatusCode::OK,
            &wire::anthropic_models(&models.anthropic, ctx.query),
        ),
        Endpoint::AnthropicModel { id } => {
            found(wire::anthropic_model_one(&models.anthropic, id), id)
        }
        Endpoint::Gemini { model, action } => match action {
            GeminiAction::CountTokens => match wire::parse_gemini(model, ctx.body, false) {
                Ok(p) => json_bytes(
                    StatusCode::OK,
                    fixtures::GEMINI_COUNT_TOKENS
                        .render(&[("total_tokens", fixtures::Fill::Num(p.prompt_tokens))]),
                ),
                Err(err) => invalid(err),
            },
            GeminiAction::Embed | GeminiAction::BatchEmbed => {
                match wire::gemini_embeddings(ctx.body, action == GeminiAction::BatchEmbed) {
                    Ok(v) => json_bytes(StatusCode::OK, v),
                    Err(err) => invalid(err),
                }
            }
            // Handled as generation.
            GeminiAction::Generate | GeminiAction::Stream => not_found(model),
        },
        Endpoint::GeminiModels => match wire::gemini_models(&models.gemini, ctx.query) {
            Ok(v) => json_response(StatusCode::OK, &v),
            Err(msg) => vendor_error(vendor, 400, &msg),
        },
        Endpoint::GeminiModel { id } => {
            let bare = id.strip_prefix("models/").unwrap_or(id);
            found(wire::gemini_model_one(&models.gemini, bare), id)
        }
        Endpoint::Chat | Endpoint::Responses | Endpoint::Messages | Endpoint::NotFound(_) => {
            vendor_error(vendor, 404, "mock upstream: no such endpoint")
        }
    }
}

fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response {
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    json_bytes(status, serde_json::to_vec(v).unwrap_or_default())
}

fn text_response(status: StatusCode, body: String) -> Response {
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

fn vendor_error(vendor: Vendor, code: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_bytes(
        status,
        wire::vendor_error_body(vendor, code, message).into_bytes(),
    )
}

fn status_response(code: u16, body: String, headers: &[(String, String)]) -> Response {
    let json = body.trim_start().starts_with(['{', '[']);
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let map = res.headers_mut();
    map.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(if json {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        }),
    );
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            map.insert(name, value);
        }
    }
    res
}

#[cfg(test)]
mod tests;
