//! CORS from `ENABLE_CORS` and friends. A `*` origin is never combined with credentials (GPT-Load
//! reflected any Origin and could add credentials).

use axum::http::{HeaderName, HeaderValue, Method};
use gpt_load_common::config::CorsConfig;
use tower_http::cors::{AllowHeaders, AllowOrigin, Any, CorsLayer};

pub fn layer(cfg: &CorsConfig) -> Option<CorsLayer> {
    if !cfg.enabled {
        return None;
    }
    let any_origin = cfg.allowed_origins.iter().any(|o| o == "*");
    if any_origin {
        tracing::warn!("CORS allows any origin (ALLOWED_ORIGINS=*)");
    }
    let mut layer = CorsLayer::new().allow_methods(
        cfg.allowed_methods
            .iter()
            .filter_map(|m| m.parse::<Method>().ok())
            .collect::<Vec<_>>(),
    );
    layer = if any_origin {
        layer.allow_origin(Any)
    } else {
        layer.allow_origin(AllowOrigin::list(
            cfg.allowed_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        ))
    };
    layer = if cfg.allowed_headers.iter().any(|h| h == "*") {
        layer.allow_headers(AllowHeaders::any())
    } else {
        layer.allow_headers(
            cfg.allowed_headers
                .iter()
                .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
                .collect::<Vec<_>>(),
        )
    };
    if cfg.allow_credentials && !any_origin && !cfg.allowed_headers.iter().any(|h| h == "*") {
        layer = layer.allow_credentials(true);
    } else if cfg.allow_credentials {
        tracing::warn!(
            "ALLOW_CREDENTIALS ignored: it cannot be combined with a * origin or * headers"
        );
    }
    Some(layer)
}
