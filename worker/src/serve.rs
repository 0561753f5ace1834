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

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use futures::future::Either;
use http::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioIo};
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
/// answers `/proxy/{group}/…` on the serving thread itself, with no router in between (it must be
/// cheap to clone: once per request); `app` answers every other request on the main runtime.
/// Both see the client's address as `ConnectInfo<SocketAddr>`. Must be called on the main runtime.
pub fn start<P>(listener: TcpListener, app: Router, proxy: P, threads: usize) -> io::Result<Serving>
where
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
            routes: Routes {
                proxy: proxy.clone(),
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
                crate::client::enter_thread_pool(i);
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
    let acceptor = main.spawn(accept(listener, lanes, accepting));
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
/// thread with the fewest open ones.
async fn accept(listener: TcpListener, mut lanes: Vec<Lane>, mut stop: watch::Receiver<bool>) {
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
        routes,
    } = lane;
    let connections = TaskTracker::new();
    // Takes a handed-over connection and serves it on this thread.
    let take = |(std, peer): Handoff| match TcpStream::from_std(std) {
        Ok(io) => {
            let io = Counted {
                io,
                open: open.clone(),
            };
            let service = ConnService {
                routes: routes.clone(),
                peer,
            };
            connections.spawn(connection(io, service, stop.clone()));
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
/// closes; on `stop` it is told to close once the request in flight is answered.
async fn connection<P>(io: Counted, service: ConnService<P>, mut stop: watch::Receiver<bool>)
where
    P: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    P::Future: Send + 'static,
{
    let mut builder = Builder::new(TokioExecutor::new());
    // Extended CONNECT over HTTP/2, as axum enables it.
    builder.http2().enable_connect_protocol();
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        biased;
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::trace!(error = %e, "connection ended with an error");
            }
            return;
        }
        _ = stop.wait_for(|v| *v) => {}
    }
    conn.as_mut().graceful_shutdown();
    if let Err(e) = conn.await {
        tracing::trace!(error = %e, "connection ended with an error");
    }
}

/// A connection that counts as open on its serving thread until dropped.
struct Counted {
    io: TcpStream,
    open: Arc<AtomicUsize>,
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
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
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
}

/// Whether `path` is for the proxy (`/proxy/` and a group; the bare prefix is the app's 404).
fn is_proxy_path(path: &str) -> bool {
    path.len() > "/proxy/".len() && path.starts_with("/proxy/")
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
            start(listener, app(), proxy(), threads).expect("start"),
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
    fn proxy() -> tower::util::BoxCloneSyncService<Request, Response, Infallible> {
        tower::util::BoxCloneSyncService::new(tower::service_fn(|req: Request| async move {
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
