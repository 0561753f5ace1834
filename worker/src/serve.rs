//! Serving HTTP on one thread per core.
//!
//! An acceptor on the main runtime takes connections from the listening socket and hands each to
//! the serving thread with the fewest open connections. Each serving thread runs a single-threaded
//! Tokio runtime: a proxied request is handled from first byte to last on the thread that owns its
//! connection, and the upstream connection it borrows belongs to that thread's pool
//! ([`crate::client`]), so the hot path has no cross-thread hand-offs or wake-ups. Every other
//! request (admin API, UI, health, metrics) is handed to the main runtime, where the database
//! pools, the Redis clients and the background jobs live.

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
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures::future::Either;
use http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::task::AbortOnDropHandle;
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

/// Starts `threads` serving threads, each serving `app`, and the acceptor that feeds them from
/// `listener`. Must be called on the main runtime: requests other than `/proxy/…` are run there.
pub fn start(listener: TcpListener, app: Router, threads: usize) -> io::Result<Serving> {
    let local = listener.local_addr()?;
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
        let incoming = Incoming {
            rx,
            open: open.clone(),
            local,
        };
        let split = Split {
            app: app.clone(),
            main: main.clone(),
        };
        let (done_tx, done_rx) = oneshot::channel();
        let stop = stop_rx.clone();
        let abort = abort_rx.clone();
        std::thread::Builder::new()
            .name(format!("gpt-load-http-{i}"))
            .spawn(move || {
                crate::client::enter_thread_pool(i);
                rt.block_on(serve(incoming, split, stop, abort));
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

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

async fn serve(
    incoming: Incoming,
    split: Split,
    mut stop: watch::Receiver<bool>,
    mut abort: watch::Receiver<bool>,
) {
    let server = axum::serve(
        {
            use axum::serve::ListenerExt;
            // A tapped listener's address type is its connect info.
            incoming.tap_io(|_| {})
        },
        Router::new()
            .fallback_service(split)
            .into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = stop.wait_for(|v| *v).await;
    });
    tokio::select! {
        r = server => {
            if let Err(e) = r {
                tracing::error!(error = %e, "serving thread stopped");
            }
        }
        // Only a sent abort cuts connections; a dropped `Serving` stops gracefully.
        r = abort.wait_for(|v| *v) => {
            if r.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// A serving thread's connections, as handed over by the acceptor.
struct Incoming {
    rx: mpsc::UnboundedReceiver<Handoff>,
    open: Arc<AtomicUsize>,
    local: SocketAddr,
}

impl axum::serve::Listener for Incoming {
    type Io = Counted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Counted, SocketAddr) {
        loop {
            let Some((std, peer)) = self.rx.recv().await else {
                // The acceptor stopped: nothing more comes; the graceful stop ends the server.
                return std::future::pending().await;
            };
            match TcpStream::from_std(std) {
                Ok(io) => {
                    let open = self.open.clone();
                    return (Counted { io, open }, peer);
                }
                Err(e) => {
                    self.open.fetch_sub(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "cannot take a connection over");
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
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

/// Runs `/proxy/…` on the serving thread and everything else on the main runtime.
#[derive(Clone)]
struct Split {
    app: Router,
    main: Handle,
}

type Handed = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl Service<Request> for Split {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<tower::util::Oneshot<Router, Request>, Handed>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let app = self.app.clone();
        if req.uri().path().starts_with("/proxy/") {
            return Either::Left(app.oneshot(req));
        }
        // Aborted if the connection goes away, as a handler running here would be dropped.
        let task = AbortOnDropHandle::new(self.main.spawn(app.oneshot(req)));
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
    use axum::extract::{ConnectInfo, Path};
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
        (addr, start(listener, app(), threads).expect("start"))
    }

    /// Set when the `/proxy/hang` handler has started.
    static HANGING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    /// Set when the `/proxy/slow` handler has started.
    static SLOW: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    fn app() -> Router {
        Router::new()
            .route(
                "/proxy/{*rest}",
                get(
                    |Path(rest): Path<String>,
                     ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                        match rest.as_str() {
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
                            "peer" => peer.to_string(),
                            _ => thread_name(),
                        }
                    },
                ),
            )
            .route("/api/x", get(|| async { thread_name() }))
            .route(
                "/api/peer",
                get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
            )
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
            let t = get_text(addr, "/proxy/g/v1/models").await;
            assert!(t.starts_with("gpt-load-http-"), "proxy ran on {t:?}");
            let t = get_text(addr, "/api/x").await;
            assert!(
                !t.starts_with("gpt-load-http-"),
                "admin request ran on serving thread {t:?}"
            );
        }
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
