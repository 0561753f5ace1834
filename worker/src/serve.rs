//! Serving HTTP on one thread per core.
//!
//! Each serving thread runs a single-threaded Tokio runtime and accepts from the one listening
//! socket. A proxied request is handled from first byte to last on the thread that accepted its
//! connection, and the upstream connection it borrows belongs to that thread's pool
//! ([`crate::client`]): the hot path has no cross-thread hand-offs or wake-ups. Every other request
//! (admin API, UI, health, metrics) is handed to the main runtime, where the database pools, the
//! Redis clients and the background jobs live.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures::future::Either;
use http::StatusCode;
use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch};
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
    stop: watch::Sender<bool>,
    abort: watch::Sender<bool>,
    done: Vec<oneshot::Receiver<()>>,
}

/// Starts `threads` serving threads on `listener`, each serving `app`. Must be called on the main
/// runtime: requests other than `/proxy/…` are run there.
pub fn start(
    listener: tokio::net::TcpListener,
    app: Router,
    threads: usize,
) -> std::io::Result<Serving> {
    let listener = listener.into_std()?;
    let main = Handle::current();
    let (stop, stop_rx) = watch::channel(false);
    let (abort, abort_rx) = watch::channel(false);
    let mut serving = Serving {
        stop,
        abort,
        done: Vec::with_capacity(threads),
    };
    for i in 0..threads.max(1) {
        let listener = listener.try_clone()?;
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
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    // Dropping the runtime afterwards cancels what the thread still runs.
                    Ok(rt) => rt.block_on(serve(listener, split, stop, abort)),
                    Err(e) => tracing::error!(error = %e, "cannot start a serving thread"),
                }
                let _ = done_tx.send(());
            })?;
        serving.done.push(done_rx);
    }
    Ok(serving)
}

impl Serving {
    /// Stops accepting, lets open requests finish within `grace`, then closes what is left.
    /// Returns whether every connection finished in time.
    pub async fn shutdown(self, grace: Duration) -> bool {
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

async fn serve(
    listener: std::net::TcpListener,
    split: Split,
    mut stop: watch::Receiver<bool>,
    mut abort: watch::Receiver<bool>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "serving thread cannot use the listener");
            return;
        }
    };
    let server = axum::serve(
        {
            use axum::serve::ListenerExt;
            // Responses are written as headers then body frames: no Nagle delay between them.
            listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            })
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
        _ = abort.wait_for(|v| *v) => {}
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
        let task = self.main.spawn(app.oneshot(req));
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
    use axum::extract::Path;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn thread_name() -> String {
        std::thread::current().name().unwrap_or("").to_owned()
    }

    async fn get_text(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned()
    }

    fn app() -> Router {
        Router::new()
            .route(
                "/proxy/{*rest}",
                get(|Path(rest): Path<String>| async move {
                    if rest == "hang" {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                    thread_name()
                }),
            )
            .route("/api/x", get(|| async { thread_name() }))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn proxy_requests_stay_on_serving_threads_and_the_rest_goes_to_the_main_runtime() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let serving = start(listener, app(), 2).expect("start");
        for _ in 0..4 {
            let t = get_text(addr, "/proxy/g/v1/models").await;
            assert!(t.starts_with("gpt-load-http-"), "proxy ran on {t:?}");
            let t = get_text(addr, "/api/x").await;
            assert!(
                !t.starts_with("gpt-load-http-"),
                "admin request ran on serving thread {t:?}"
            );
        }
        assert!(serving.shutdown(Duration::from_secs(5)).await, "idle stop");
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "still accepting after shutdown"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_outliving_the_grace_period_is_cut() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let serving = start(listener, app(), 1).expect("start");
        let hung = tokio::spawn(async move { get_text(addr, "/proxy/hang").await });
        tokio::time::sleep(Duration::from_millis(200)).await;
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
}
