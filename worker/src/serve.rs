//! Serving HTTP on one thread per core.
//!
//! An acceptor on the main runtime takes connections from the listening socket and hands each to
//! the serving thread with the fewest open connections. Each serving thread runs a single-threaded
//! Tokio runtime and serves its connections with hyper directly: a proxied request goes straight
//! to the proxy service (no router on the way) and is handled from first
//! byte to last on the thread that owns its connection, and the upstream connection it borrows
//! belongs to that thread's pool ([`crate::client`]), so the hot path has no cross-thread
//! hand-offs or wake-ups (a Redis key store gives each serving thread a Redis connection of its
//! own too). Every other request (admin API, UI, health, metrics) is handed to the app's router on
//! the main runtime, where the database pools, the shared Redis client and the background jobs
//! live.
//!
//! Connections are held to [`ConnLimits`], so that clients that send nothing, drip their headers,
//! or take no bytes of an answer cannot keep connections (and file descriptors) forever:
//! - a request's headers must arrive within the header deadline, counted from the connection's
//!   start (covering the protocol detection, where hyper has no timer) and, on HTTP/1, from the
//!   end of the previous answer — so it is also the keep-alive idle limit;
//! - an answer the client takes no bytes of for the write timeout is cut (an answer it reads,
//!   streamed or not, never is: slow upstreams are the group's timeouts' business);
//! - past the connection cap, new connections are closed at once, with a log line.
//!
//! HTTP/2 connections (prior knowledge only, no TLS here) have the first-request deadline and the
//! write timeout; between requests hyper's keep-alive pings close dead peers.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use futures::future::Either;
use gpt_load_common::serving_thread::ServingThread;
use http::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::task::{AbortOnDropHandle, TaskTracker};
use tower::{Service, ServiceExt};

/// How many serving threads to run: `TOKIO_WORKER_THREADS` when set, else one per core.
pub fn threads() -> usize {
    std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
}

/// Deadlines and limits of client connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// A request's headers must arrive within this, from the connection's start or (HTTP/1) the
    /// end of the previous answer.
    pub header_timeout: Duration,
    /// An answer the client takes no bytes of for this long is cut.
    pub write_timeout: Duration,
    /// Open connections at most, over all serving threads.
    pub max_connections: usize,
}

impl ConnLimits {
    /// The limits a node's configuration sets: the header deadline is `SERVER_READ_TIMEOUT` or
    /// `SERVER_IDLE_TIMEOUT`, whichever is shorter (hyper has one timer for both); with no
    /// `SERVER_MAX_CONNECTIONS`, three quarters of the open-file limit, the rest being left to
    /// upstream connections, the database and Redis.
    pub fn from_config(cfg: &gpt_load_common::config::StaticConfig) -> Self {
        let max_connections = if cfg.max_connections > 0 {
            cfg.max_connections
        } else {
            (open_file_limit() / 4 * 3).max(64)
        };
        Self {
            header_timeout: cfg.read_timeout.min(cfg.idle_timeout),
            write_timeout: cfg.write_timeout,
            max_connections,
        }
    }
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(600),
            max_connections: 10_000,
        }
    }
}

/// The process's open-file limit, raised first to its hard maximum (as Go's runtime does for
/// GPT-Load): a proxy holds a descriptor per client and per upstream connection.
fn open_file_limit() -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            limit = raised;
        }
    }
    // `None` is unlimited.
    limit.current.map_or(usize::MAX / 2, |n| {
        usize::try_from(n).unwrap_or(usize::MAX / 2)
    })
}

/// Running serving threads; dropping this starts a graceful stop without waiting for it.
pub struct Serving {
    /// Stops the acceptor (which then closes the listening socket).
    stop_accepting: watch::Sender<bool>,
    acceptor: tokio::task::JoinHandle<()>,
    stop: watch::Sender<bool>,
    abort: watch::Sender<bool>,
    done: Vec<oneshot::Receiver<()>>,
    open: Vec<Arc<AtomicUsize>>,
}

/// A connection on its way to a serving thread.
type Handoff = (std::net::TcpStream, SocketAddr);

/// The acceptor's end of one serving thread.
struct Lane {
    tx: mpsc::UnboundedSender<Handoff>,
    open: Arc<AtomicUsize>,
}

/// The main runtime, for work started on a serving thread that must outlive it.
static MAIN: OnceLock<Handle> = OnceLock::new();

/// Runs `task` on the main runtime when serving threads are running (so that it is not cancelled
/// when its serving thread stops), else on the current runtime.
pub fn spawn_detached<F>(task: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    match MAIN.get() {
        Some(main) => drop(main.spawn(task)),
        None => drop(tokio::spawn(task)),
    }
}

/// Starts `threads` serving threads and the acceptor that feeds them from `listener`. `proxy`
/// builds, for each serving thread, the service that answers `/proxy/{group}/…` on that thread
/// itself, with no router in between (so the service knows its thread as a value; it must be
/// cheap to clone: once per request); `app` answers every other request on the main runtime.
/// Both see the client's address as `ConnectInfo<SocketAddr>`. Must be called on the main runtime.
pub fn start<F, P>(
    listener: TcpListener,
    app: Router,
    proxy: F,
    threads: usize,
    limits: ConnLimits,
) -> io::Result<Serving>
where
    F: Fn(ServingThread) -> P,
    P: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    P::Future: Send + 'static,
{
    let main = Handle::current();
    let _ = MAIN.set(main.clone());
    let (stop, stop_rx) = watch::channel(false);
    let (abort, abort_rx) = watch::channel(false);
    let mut done = Vec::with_capacity(threads);
    let mut lanes = Vec::with_capacity(threads);
    for i in 0..threads.max(1) {
        // Built here, so that a failure stops the start instead of leaving a dead thread.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let open = Arc::new(AtomicUsize::new(0));
        let lane = ThreadLane {
            rx,
            open: open.clone(),
            limits,
            routes: Routes {
                proxy: proxy(ServingThread(i)),
                app: app.clone(),
                main: main.clone(),
            },
        };
        let (done_tx, done_rx) = oneshot::channel();
        let stop = stop_rx.clone();
        let abort = abort_rx.clone();
        std::thread::Builder::new()
            .name(format!("gpt-load-http-{i}"))
            .spawn(move || {
                rt.block_on(serve(lane, stop, abort));
                // Dropping the runtime cancels what the thread still runs.
                drop(rt);
                let _ = done_tx.send(());
            })?;
        done.push(done_rx);
        lanes.push(Lane { tx, open });
    }
    let open = lanes.iter().map(|l| l.open.clone()).collect();
    let (stop_accepting, accepting) = watch::channel(false);
    let acceptor = main.spawn(accept(listener, lanes, accepting, limits.max_connections));
    Ok(Serving {
        stop_accepting,
        acceptor,
        stop,
        abort,
        done,
        open,
    })
}

impl Serving {
    /// Open connections per serving thread.
    pub fn open_connections(&self) -> Vec<usize> {
        self.open
            .iter()
            .map(|o| o.load(Ordering::Relaxed))
            .collect()
    }

    /// Stops accepting (the listening socket is closed when this returns), lets open requests
    /// finish within `grace`, then closes what is left. Returns whether every connection
    /// finished in time.
    pub async fn shutdown(self, grace: Duration) -> bool {
        let _ = self.stop_accepting.send(true);
        let _ = self.acceptor.await;
        let _ = self.stop.send(true);
        let all = futures::future::join_all(self.done);
        let mut all = std::pin::pin!(all);
        let drained = tokio::time::timeout(grace, &mut all).await.is_ok();
        if !drained {
            let _ = self.abort.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(2), all).await;
        }
        drained
    }
}

/// Accepts until told to stop (then the socket closes), giving each connection to the serving
/// thread with the fewest open ones; past `max_connections` open ones, closes new ones at once.
async fn accept(
    listener: TcpListener,
    mut lanes: Vec<Lane>,
    mut stop: watch::Receiver<bool>,
    max_connections: usize,
) {
    let mut refused: u64 = 0;
    let mut last_said: Option<std::time::Instant> = None;
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|v| *v) => return,
            r = listener.accept() => r,
        };
        let (tcp, peer) = match accepted {
            Ok(c) => c,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors, typically: wait for some to be released (as hyper).
                tracing::error!(error = %e, "accept error");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let open: usize = lanes.iter().map(|l| l.open.load(Ordering::Relaxed)).sum();
        if open >= max_connections {
            // Closed at once: the descriptor is free again, and the client sees a reset rather
            // than a connection nobody serves.
            drop(tcp);
            refused += 1;
            if last_said.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                tracing::warn!(
                    open,
                    limit = max_connections,
                    refused,
                    %peer,
                    "connection limit reached (SERVER_MAX_CONNECTIONS): closing new connections"
                );
                last_said = Some(std::time::Instant::now());
                refused = 0;
            }
            continue;
        }
        // Responses are written as headers then body frames: no Nagle delay between them.
        let _ = tcp.set_nodelay(true);
        let mut handoff = match tcp.into_std() {
            Ok(std) => (std, peer),
            Err(e) => {
                tracing::warn!(error = %e, "cannot hand a connection over");
                continue;
            }
        };
        loop {
            let Some((i, lane)) = lanes
                .iter()
                .enumerate()
                .min_by_key(|(_, l)| l.open.load(Ordering::Relaxed))
            else {
                tracing::error!("no serving thread is left; not accepting");
                return;
            };
            lane.open.fetch_add(1, Ordering::Relaxed);
            match lane.tx.send(handoff) {
                Ok(()) => break,
                Err(mpsc::error::SendError(back)) => {
                    // Its thread has stopped: the next one takes the connection.
                    tracing::error!(thread = i, "a serving thread has stopped");
                    handoff = back;
                    lanes.swap_remove(i);
                }
            }
        }
    }
}

/// The accept errors that concern one connection only (as axum's and hyper's accept loops).
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// A serving thread's end: the connections handed to it and what answers their requests.
struct ThreadLane<P> {
    rx: mpsc::UnboundedReceiver<Handoff>,
    open: Arc<AtomicUsize>,
    limits: ConnLimits,
    routes: Routes<P>,
}

/// Serves the connections handed to this thread until `stop`, then lets them finish (each is
/// told to close once its request in flight is answered); `abort` returns at once, and dropping
/// the thread's runtime then cuts what is left. A dropped `abort` sender (a dropped [`Serving`])
/// does not cut: the graceful stop proceeds.
async fn serve<P>(
    lane: ThreadLane<P>,
    stop: watch::Receiver<bool>,
    mut abort: watch::Receiver<bool>,
) where
    P: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    P::Future: Send + 'static,
{
    let ThreadLane {
        mut rx,
        open,
        limits,
        routes,
    } = lane;
    let connections = TaskTracker::new();
    // Takes a handed-over connection and serves it on this thread.
    let take = |(std, peer): Handoff| match TcpStream::from_std(std) {
        Ok(io) => {
            let io = Counted {
                io,
                open: open.clone(),
                write_timeout: limits.write_timeout,
                write_stall: None,
            };
            let asked = Arc::new(AtomicBool::new(false));
            let service = ConnService {
                routes: routes.clone(),
                peer,
                asked: asked.clone(),
            };
            connections.spawn(connection(io, service, asked, limits, stop.clone()));
        }
        Err(e) => {
            open.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "cannot take a connection over");
        }
    };
    let serving = async {
        let mut stopping = stop.clone();
        loop {
            let handoff = tokio::select! {
                // A dropped sender (a dropped `Serving`) stops too.
                _ = stopping.wait_for(|v| *v) => break,
                handoff = rx.recv() => handoff,
            };
            let Some(handoff) = handoff else {
                // The acceptor is gone: nothing more comes.
                let _ = stopping.wait_for(|v| *v).await;
                break;
            };
            take(handoff);
        }
        // Connections handed over just before the stop are served too: told at once to close
        // after their first answer, rather than reset unread.
        while let Ok(handoff) = rx.try_recv() {
            take(handoff);
        }
        drop(rx);
        connections.close();
        connections.wait().await;
    };
    tokio::select! {
        () = serving => {}
        Ok(_) = abort.wait_for(|v| *v) => {}
    }
}

/// Serves one connection (HTTP/1.1, or HTTP/2 with prior knowledge, as `axum::serve`) until it
/// closes; on `stop` it is told to close once the request in flight is answered. A connection
/// whose first request has not arrived within the header deadline is closed (`asked` is set by
/// the service on each request).
async fn connection<P>(
    io: Counted,
    service: ConnService<P>,
    asked: Arc<AtomicBool>,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
) where
    P: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    P::Future: Send + 'static,
{
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    // Pings find dead peers of idle HTTP/2 connections. (No extended CONNECT: every CONNECT is
    // answered 405, nothing here tunnels.)
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.header_timeout)
        .keep_alive_timeout(Duration::from_secs(20));
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    let first_request = tokio::time::sleep(limits.header_timeout);
    let mut first_request = std::pin::pin!(first_request);
    let mut waiting_first = true;
    loop {
        tokio::select! {
            biased;
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::trace!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.wait_for(|v| *v) => break,
            () = &mut first_request, if waiting_first => {
                waiting_first = false;
                if !asked.load(Ordering::Relaxed) {
                    tracing::debug!("no request within the header deadline; closing the connection");
                    return;
                }
            }
        }
    }
    conn.as_mut().graceful_shutdown();
    if let Err(e) = conn.await {
        tracing::trace!(error = %e, "connection ended with an error");
    }
}

/// A connection that counts as open on its serving thread until dropped, and that fails a write
/// the client has taken no bytes of for `write_timeout`.
struct Counted {
    io: TcpStream,
    open: Arc<AtomicUsize>,
    write_timeout: Duration,
    /// Armed while a write waits on the client (a full socket buffer); disarmed by any progress.
    write_stall: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Counted {
    /// Passes a write's result on, timing out one that keeps waiting on the client.
    fn watch_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if r.is_ready() {
            self.write_stall = None;
            return r;
        }
        let timeout = self.write_timeout;
        let stall = self
            .write_stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if stall.as_mut().poll(cx).is_ready() {
            self.write_stall = None;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took no bytes of the answer within SERVER_WRITE_TIMEOUT",
            )));
        }
        Poll::Pending
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch_write(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch_write(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.watch_write(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// What answers requests on a serving thread.
#[derive(Clone)]
struct Routes<P> {
    proxy: P,
    app: Router,
    main: Handle,
}

/// One connection's requests: `/proxy/{group}/…` to the proxy service on this thread, the rest
/// to the app on the main runtime.
struct ConnService<P> {
    routes: Routes<P>,
    peer: SocketAddr,
    /// Set on the first request (the connection's first-request deadline is then off).
    asked: Arc<AtomicBool>,
}

/// Whether `path` is for the proxy: `/proxy/` and a group (the bare prefix is the app's 404),
/// or a native route.
fn is_proxy_path(path: &str) -> bool {
    crate::proxy::is_proxy_path(path)
}

type Handed = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

type Answer = Result<Response, Infallible>;

/// A `HEAD` request's answer without its body: hyper drops it on HTTP/1 but sends it on HTTP/2
/// (the router did this for the app; the proxy path has no router).
fn without_body(r: Answer) -> Answer {
    r.map(|resp| resp.map(|_| Body::empty()))
}

type ProxyFuture<P> = Either<
    tower::util::Oneshot<P, Request>,
    futures::future::Map<tower::util::Oneshot<P, Request>, fn(Answer) -> Answer>,
>;

impl<P> hyper::service::Service<http::Request<hyper::body::Incoming>> for ConnService<P>
where
    P: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    P::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<ProxyFuture<P>, Handed>;

    fn call(&self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        self.asked.store(true, Ordering::Relaxed);
        if req.method() == http::Method::CONNECT {
            // Nothing here tunnels: a 2xx would tell the client its tunnel is open.
            return Either::Right(Box::pin(async {
                Ok(crate::error::ProxyError::Connect.into_response())
            }));
        }
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(self.peer));
        if is_proxy_path(req.uri().path()) {
            let head = req.method() == http::Method::HEAD;
            let answer = self.routes.proxy.clone().oneshot(req);
            return Either::Left(if head {
                Either::Right(answer.map(without_body as fn(Answer) -> Answer))
            } else {
                Either::Left(answer)
            });
        }
        // Aborted if the connection goes away, as a handler running here would be dropped.
        let task =
            AbortOnDropHandle::new(self.routes.main.spawn(self.routes.app.clone().oneshot(req)));
        Either::Right(Box::pin(async move {
            Ok(match task.await {
                Ok(Ok(resp)) => resp,
                // The main runtime is stopping (or the handler panicked).
                Ok(Err(never)) => match never {},
                Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn thread_name() -> String {
        std::thread::current().name().unwrap_or("").to_owned()
    }

    /// One `GET` on a fresh connection: the client's own address and the answer's body.
    async fn request(addr: SocketAddr, path: &str) -> (String, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let me = s.local_addr().expect("local").to_string();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        (
            me,
            out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned(),
        )
    }

    async fn get_text(addr: SocketAddr, path: &str) -> String {
        request(addr, path).await.1
    }

    /// Serving threads on a fresh loopback port.
    async fn serving(threads: usize) -> (SocketAddr, Serving) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        (
            addr,
            start(listener, app(), proxy, threads, ConnLimits::default()).expect("start"),
        )
    }

    /// Set when the `/proxy/hang` handler has started.
    static HANGING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    /// Set when the `/proxy/slow` handler has started.
    static SLOW: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    /// The app on the main runtime. Its `/proxy/` route must never see a request for a group:
    /// those go to the proxy service.
    fn app() -> Router {
        Router::new()
            .route("/proxy/{*rest}", get(|| async { "router" }))
            .route("/api/x", get(|| async { thread_name() }))
            .route(
                "/api/peer",
                get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
            )
            .fallback(|| async { format!("app 404 on {}", thread_name()) })
    }

    /// The proxy service: answers by the path after `/proxy/`.
    fn proxy(
        thread: ServingThread,
    ) -> tower::util::BoxCloneSyncService<Request, Response, Infallible> {
        tower::util::BoxCloneSyncService::new(tower::service_fn(move |req: Request| async move {
            let peer = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.to_string())
                .unwrap_or_default();
            let text = match req.uri().path().trim_start_matches("/proxy/") {
                "hang" => {
                    HANGING.store(true, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    String::new()
                }
                "slow" => {
                    SLOW.store(true, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "done".to_owned()
                }
                "peer" => peer,
                // The serving thread the service was built for, and the one it runs on.
                "slot" => format!("Some({}) {}", thread.index(), thread_name()),
                _ => thread_name(),
            };
            Ok(text.into_response())
        }))
    }

    /// Waits (up to 5 s) until `cond` holds.
    async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting: {what}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn proxy_requests_stay_on_serving_threads_and_the_rest_goes_to_the_main_runtime() {
        let (addr, serving) = serving(2).await;
        for _ in 0..4 {
            // Straight to the proxy service, on a serving thread (the router's route says "router").
            let t = get_text(addr, "/proxy/g/v1/models").await;
            assert!(t.starts_with("gpt-load-http-"), "proxy ran on {t:?}");
            let t = get_text(addr, "/api/x").await;
            assert!(
                !t.starts_with("gpt-load-http-"),
                "admin request ran on serving thread {t:?}"
            );
        }
        // The bare prefix names no group: the app's answer, from the main runtime.
        let t = get_text(addr, "/proxy/").await;
        assert!(
            t.starts_with("app 404 on ") && !t.contains("gpt-load-http-"),
            "{t:?}"
        );
        // Handlers see the client's address on both sides of the split.
        for path in ["/proxy/peer", "/api/peer"] {
            let (me, peer) = request(addr, path).await;
            assert_eq!(peer, me, "{path}");
        }
        assert!(serving.shutdown(Duration::from_secs(5)).await, "idle stop");
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "still accepting after shutdown"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_thread_s_proxy_service_knows_the_thread_it_runs_on() {
        let (addr, serving) = serving(2).await;
        let mut seen = std::collections::BTreeSet::new();
        let mut kept = Vec::new();
        for _ in 0..4 {
            // Kept open, so that the next connection goes to the other thread.
            let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            s.write_all(b"GET /proxy/slot HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .expect("write");
            let mut buf = vec![0u8; 4096];
            let mut got = String::new();
            while !got.contains("gpt-load-http-") {
                let n = s.read(&mut buf).await.expect("read");
                assert!(n > 0, "closed early");
                got.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            let body = got.rsplit("\r\n\r\n").next().unwrap_or_default().to_owned();
            let (slot, name) = body.split_once(' ').expect("slot and name");
            assert_eq!(
                format!(
                    "gpt-load-http-{}",
                    slot.trim_start_matches("Some(").trim_end_matches(')')
                ),
                name
            );
            seen.insert(name.to_owned());
            kept.push(s);
        }
        assert_eq!(seen.len(), 2, "{seen:?}");
        drop(kept);
        assert!(serving.shutdown(Duration::from_secs(5)).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn head_over_http2_gets_no_body_on_the_proxy_path() {
        use http_body_util::{BodyExt, Empty};
        let (addr, serving) = serving(1).await;
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .expect("h2c handshake");
        tokio::spawn(conn);
        let mut ask = |method: http::Method| {
            let req = http::Request::builder()
                .method(method)
                .uri(format!("http://{addr}/proxy/who"))
                .body(Empty::<bytes::Bytes>::new())
                .expect("request");
            send.send_request(req)
        };
        let get = ask(http::Method::GET).await.expect("GET");
        let body = get.into_body().collect().await.expect("body").to_bytes();
        assert!(body.starts_with(b"gpt-load-http-"), "{body:?}");
        let head = ask(http::Method::HEAD).await.expect("HEAD");
        assert_eq!(head.status(), StatusCode::OK);
        let body = head.into_body().collect().await.expect("body").to_bytes();
        assert!(body.is_empty(), "HEAD answered with a body: {body:?}");
        assert!(serving.shutdown(Duration::from_secs(5)).await);
    }

    /// One request on a connection kept open; the thread that answered.
    async fn ask_and_keep(addr: SocketAddr) -> (tokio::net::TcpStream, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /proxy/who HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .expect("write");
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("gpt-load-http-") {
            let n = s.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed early");
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&got).into_owned();
        let name = text
            .rsplit("\r\n\r\n")
            .next()
            .unwrap_or_default()
            .to_owned();
        (s, name)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_are_spread_over_the_threads_by_open_count() {
        let (addr, serving) = serving(3).await;
        let mut kept = Vec::new();
        let mut by_thread = std::collections::BTreeMap::<String, usize>::new();
        for _ in 0..9 {
            let (s, name) = ask_and_keep(addr).await;
            *by_thread.entry(name).or_default() += 1;
            kept.push(s);
        }
        assert_eq!(
            by_thread.values().copied().collect::<Vec<_>>(),
            vec![3, 3, 3],
            "{by_thread:?}"
        );
        assert_eq!(serving.open_connections(), vec![3, 3, 3]);
        // Closed connections stop counting: the next three go one to each thread again.
        kept.truncate(0);
        eventually("closes seen", || {
            serving.open_connections().iter().all(|n| *n == 0)
        })
        .await;
        let mut again = std::collections::BTreeSet::new();
        for _ in 0..3 {
            let (s, name) = ask_and_keep(addr).await;
            again.insert(name);
            kept.push(s);
        }
        assert_eq!(again.len(), 3, "{again:?}");
        drop(kept);
        assert!(serving.shutdown(Duration::from_secs(5)).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_outliving_the_grace_period_is_cut() {
        let (addr, serving) = serving(1).await;
        let hung = tokio::spawn(async move { get_text(addr, "/proxy/hang").await });
        eventually("handler started", || HANGING.load(Ordering::SeqCst)).await;
        let t = std::time::Instant::now();
        assert!(!serving.shutdown(Duration::from_millis(300)).await);
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        // The cut connection ends (closed, no answer) instead of hanging for a minute.
        let body = tokio::time::timeout(Duration::from_secs(3), hung)
            .await
            .expect("connection closed")
            .expect("task");
        assert_eq!(body, "");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_the_handle_stops_gracefully() {
        let (addr, serving) = serving(1).await;
        let slow = tokio::spawn(async move { get_text(addr, "/proxy/slow").await });
        eventually("handler started", || SLOW.load(Ordering::SeqCst)).await;
        drop(serving);
        // The request in flight is answered, not cut ...
        let body = tokio::time::timeout(Duration::from_secs(5), slow)
            .await
            .expect("answered")
            .expect("task");
        assert_eq!(body, "done");
        // ... and the socket closes.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            assert!(std::time::Instant::now() < deadline, "still accepting");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
