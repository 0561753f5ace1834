//! Makes cargo rebuild the master when the built UI (`ui/dist`) changes, so the binary always
//! embeds the UI that is on disk, and refuses a release build that would embed no UI at all:
//! a release binary (and so the Docker image) is meant to be the whole product.
//!
//! `GPT_LOAD_UI_FINGERPRINT` (names, sizes and modification times of the files) is read by
//! `src/ui.rs`, which makes a change of the folder a change of the crate's inputs; the embedding
//! itself is `rust-embed`'s.

use std::path::{Path, PathBuf};

/// Set to build a release binary without a UI on purpose (benchmarks, headless deployments).
const ALLOW_NO_UI: &str = "GPT_LOAD_ALLOW_NO_UI";

fn main() {
    let dist = PathBuf::from("../ui/dist");
    println!("cargo:rerun-if-changed=../ui/dist");
    // `sqlx::migrate!` embeds the migration files; a new one must rebuild the binary.
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-env-changed={ALLOW_NO_UI}");
    let mut files = Vec::new();
    collect(&dist, &mut files);
    files.sort();
    let has_index = dist.join("index.html").is_file();
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    if !has_index {
        if release && std::env::var_os(ALLOW_NO_UI).is_none() {
            eprintln!(
                "error: ui/dist/index.html is missing, so this release binary would serve no web UI.\n\
                 Build the UI first (npm --prefix ui install && npm --prefix ui run build),\n\
                 or set {ALLOW_NO_UI}=1 to build a binary without it on purpose."
            );
            std::process::exit(1);
        }
        println!(
            "cargo:warning=ui/dist is not built: this binary embeds no web UI (npm --prefix ui run build)"
        );
    }
    let mut fingerprint = String::new();
    for (path, line) in &files {
        // Each file's own rerun line: cargo's directory check sees only the folder's own time.
        println!("cargo:rerun-if-changed={}", path.display());
        fingerprint.push_str(line);
        fingerprint.push(';');
    }
    println!(
        "cargo:rustc-env=GPT_LOAD_UI_FINGERPRINT={:016x}",
        fnv1a(fingerprint.as_bytes())
    );
}

/// Every file under `dir`, with a line naming its path, size and modification time.
fn collect(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect(&path, out);
        } else {
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            let line = format!("{}:{}:{modified}", path.display(), meta.len());
            out.push((path, line));
        }
    }
}

/// A stable 64-bit hash (std's hasher is randomly seeded per process).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
