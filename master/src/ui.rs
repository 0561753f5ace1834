//! Serving the web UI: assets with long-cache headers, `index.html` uncached, client-side routes
//! falling back to `index.html` (compression is a layer in [`crate::app::router`]).
//!
//! Where the files come from, first match wins: `UI_DIR` on disk; the UI embedded in the binary
//! at build time (`ui/dist`, so one binary is the whole product, wherever it is started — debug
//! builds embed it too, so tests see what a release serves); `ui/dist` under the working
//! directory; else a page saying how to build the UI. `build.rs` makes cargo rebuild when
//! `ui/dist` changes and refuses a release build without it.

use std::borrow::Cow;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use rust_embed::RustEmbed;

// Relative to the crate's manifest (`rust-embed` interpolates no variables without its
// `interpolate-folder-path` feature: a `$CARGO_MANIFEST_DIR` path silently embedded nothing).
#[derive(RustEmbed)]
#[folder = "../ui/dist"]
#[allow_missing = true]
struct Embedded;

/// Names the built UI's files (set by `build.rs`): reading it makes a change of `ui/dist` a
/// change of this crate's inputs, so cargo embeds the new files.
pub const EMBEDDED_FINGERPRINT: &str = env!("GPT_LOAD_UI_FINGERPRINT");

/// Whether this binary carries the UI.
pub fn embedded() -> bool {
    Embedded::get("index.html").is_some()
}

static UI_DIR: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Sets the directory of the built UI (first call wins).
pub fn set_dir(dir: Option<PathBuf>) {
    let _ = UI_DIR.set(dir.filter(|d| d.join("index.html").is_file()));
}

fn disk_dir() -> Option<&'static Path> {
    UI_DIR
        .get_or_init(|| Some(PathBuf::from("ui/dist")).filter(|d| d.join("index.html").is_file()))
        .as_deref()
}

fn safe_rel(path: &str) -> Option<&Path> {
    let rel = Path::new(path.trim_start_matches('/'));
    rel.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then_some(rel)
}

/// A file of the UI, from disk or the embedded copy.
async fn load(rel: &Path) -> Option<Cow<'static, [u8]>> {
    if let Some(dir) = UI_DIR.get().and_then(|d| d.as_deref()) {
        return tokio::fs::read(dir.join(rel)).await.ok().map(Cow::Owned);
    }
    if let Some(f) = Embedded::get(&rel.to_string_lossy()) {
        return Some(f.data);
    }
    let dir = disk_dir()?;
    tokio::fs::read(dir.join(rel)).await.ok().map(Cow::Owned)
}

fn file_response(bytes: Cow<'static, [u8]>, path: &Path, cache: &'static str) -> Response {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let mut r = Response::new(Body::from(bytes.into_owned()));
    if let Ok(v) = HeaderValue::from_str(mime.as_ref()) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r
}

pub async fn serve(req: Request) -> Response {
    let path = req.uri().path();
    if path != "/"
        && let Some(rel) = safe_rel(path)
        && !rel.as_os_str().is_empty()
        && let Some(bytes) = load(rel).await
    {
        let cache = if path.starts_with("/assets/") {
            "public, max-age=2592000, immutable"
        } else {
            "no-cache"
        };
        return file_response(bytes, rel, cache);
    }
    match load(Path::new("index.html")).await {
        Some(bytes) => file_response(bytes, Path::new("index.html"), "no-cache, no-store, must-revalidate"),
        None if req.uri().path() == "/" || !req.uri().path().contains('.') => Html(
            "<!doctype html><title>gpt-load</title><p>gpt-load is running. The web UI has not been built: \
             run <code>npm --prefix ui install &amp;&amp; npm --prefix ui run build</code>.</p>",
        )
        .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
