//! The gpt-load data plane: `/proxy/{group}/{path}` with key rotation, retries, blacklisting,
//! cool-downs and streaming pass-through for the OpenAI, OpenAI Responses, Anthropic and Gemini
//! formats. Used by the master in single-node mode and by `IS_SLAVE` workers. Touches no database.

pub mod body;
pub mod channel;
pub mod client;
pub mod client_ip;
pub mod cluster;
pub mod credential;
pub mod decompress;
pub mod discover;
pub mod error;
pub mod failure;
pub mod integration;
pub mod metrics_endpoint;
pub mod node;
pub mod proxy;
pub mod rules;
pub mod serve;
pub mod state;
pub mod throttle;
pub mod tls;
pub mod upstream_base;
pub mod upstream_proxy;
pub mod validate;
pub mod weighted;

use std::convert::Infallible;

use axum::extract::Request;
use axum::response::Response;

pub use state::{ProxyLimits, WorkerState};

/// The proxy handler as a service: the serving threads ([`serve::start`]) hand it every
/// `/proxy/{group}/…` request directly, without a router; `thread` is the serving thread it is
/// built for (none off the serving loop), whose upstream pool and Redis client its requests use.
/// Cloning it clones the state's `Arc`.
pub fn proxy_service(
    state: WorkerState,
    thread: Option<gpt_load_common::serving_thread::ServingThread>,
) -> impl tower::Service<
    Request,
    Response = Response,
    Error = Infallible,
    Future = impl std::future::Future<Output = Result<Response, Infallible>> + Send + 'static,
> + Clone
+ Send
+ Sync
+ 'static {
    tower::service_fn(move |req: Request| {
        let state = state.clone();
        // Boxed: the handler's future is several kilobytes, and every move of an unboxed one
        // on its way into hyper's connection task copies all of it.
        let handling = Box::pin(proxy::proxy(state, thread, req));
        async move { Ok(handling.await) }
    })
}
