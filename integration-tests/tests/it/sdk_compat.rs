//! The vendors' official Python SDKs against gpt-load: chat, streaming and model lists for the
//! OpenAI, OpenAI Responses, Anthropic and Gemini formats, changing only base URL and key.
//! `scripts/test.sh` installs the SDKs in `.venv` and sets `GPT_LOAD_TEST_PYTHON`.

use std::path::PathBuf;

use serde_json::json;

use crate::proxy::{PROXY_KEY, Setup};

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("GPT_LOAD_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        venv.exists(),
        "the SDK virtualenv is missing: run scripts/test.sh (it installs openai, anthropic, google-genai)"
    );
    venv
}

/// Runs `integration-tests/sdk/{script}` against the server with `key`; it must print `ALL OK`.
async fn run_sdk_script(t: &Setup, script: &str, key: &str) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("sdk")
        .join(script);
    let out = tokio::process::Command::new(python())
        .arg(&script)
        .arg(t.server.url(""))
        .arg(key)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "SDK script failed\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver:\n{}",
        t.server.logs()
    );
    assert!(stdout.contains("ALL OK"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn official_sdks_work_through_the_proxy() {
    let t = Setup::new(&[]).await;
    t.group("oa", "openai", &["sk-oa-1", "sk-oa-2"], json!({}))
        .await;
    t.group("or", "openai-response", &["sk-or-1"], json!({}))
        .await;
    t.group("an", "anthropic", &["ak-1"], json!({})).await;
    t.group("gm", "gemini", &["AIza-1"], json!({})).await;
    run_sdk_script(&t, "compat.py", PROXY_KEY).await;
    // The real keys reached the upstream, the proxy key did not.
    for k in ["sk-oa-1", "sk-or-1", "ak-1", "AIza-1"] {
        assert!(!t.mock.requests_for_key(k).is_empty(), "{k} unused");
    }
    assert!(t.mock.requests_for_key(PROXY_KEY).is_empty());
}

/// The native routes with an access key: the SDKs' own base URLs (`/v1`, the host for Anthropic
/// and Gemini), the model choosing the group.
#[tokio::test(flavor = "multi_thread")]
async fn official_sdks_work_on_the_native_routes_with_an_access_key() {
    let t = Setup::new(&[]).await;
    t.group(
        "oa",
        "openai",
        &["sk-oa-1"],
        json!({"models": ["gpt-4o", "text-embedding-3-small"]}),
    )
    .await;
    t.group(
        "or",
        "openai-response",
        &["sk-or-1"],
        json!({"models": ["gpt-4.1"]}),
    )
    .await;
    t.group(
        "an",
        "anthropic",
        &["ak-1"],
        json!({"models": ["claude-sonnet-4-20250514"]}),
    )
    .await;
    t.group("gm", "gemini", &["AIza-1"], json!({"models": ["gemini-*"]}))
        .await;
    let (status, v) = t
        .server
        .post("/api/access-keys", json!({"name": "sdk"}))
        .await;
    assert_eq!(status, 200, "{v}");
    let key = v["data"]["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("sk-gl-"), "{key}");
    run_sdk_script(&t, "native.py", &key).await;
    for k in ["sk-oa-1", "sk-or-1", "ak-1", "AIza-1"] {
        assert!(!t.mock.requests_for_key(k).is_empty(), "{k} unused");
    }
    assert!(t.mock.requests_for_key(&key).is_empty());
}
