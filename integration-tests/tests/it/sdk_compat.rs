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

#[tokio::test(flavor = "multi_thread")]
async fn official_sdks_work_through_the_proxy() {
    let t = Setup::new(&[]).await;
    t.group("oa", "openai", &["sk-oa-1", "sk-oa-2"], json!({}))
        .await;
    t.group("or", "openai-response", &["sk-or-1"], json!({}))
        .await;
    t.group("an", "anthropic", &["ak-1"], json!({})).await;
    t.group("gm", "gemini", &["AIza-1"], json!({})).await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sdk/compat.py");
    let out = tokio::process::Command::new(python())
        .arg(&script)
        .arg(t.server.url(""))
        .arg(PROXY_KEY)
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
    // The real keys reached the upstream, the proxy key did not.
    for k in ["sk-oa-1", "sk-or-1", "ak-1", "AIza-1"] {
        assert!(!t.mock.requests_for_key(k).is_empty(), "{k} unused");
    }
    assert!(t.mock.requests_for_key(PROXY_KEY).is_empty());
}
