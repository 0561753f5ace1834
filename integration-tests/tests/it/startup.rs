//! Start-up configuration errors: a value that is set but unusable stops the binary with a
//! non-zero exit and one line naming the variable (never a panic or a backtrace).

use gpt_load_integration_tests::harness::{ADMIN_KEY, run_cli};

#[tokio::test(flavor = "multi_thread")]
async fn bad_values_exit_with_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("PORT", &[("PORT", "eighty")]),
        (
            "MAX_CONCURRENT_REQUESTS",
            &[("MAX_CONCURRENT_REQUESTS", "-3")],
        ),
        ("TOKIO_WORKER_THREADS", &[("TOKIO_WORKER_THREADS", "0")]),
        ("TOKIO_WORKER_THREADS", &[("TOKIO_WORKER_THREADS", "")]),
        (
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ],
        ),
        (
            "OTEL_TRACES_SAMPLER",
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
                ("OTEL_TRACES_SAMPLER", "sometimes"),
            ],
        ),
        (
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://127.0.0.1:4317"),
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/otlp-ca.pem"),
            ],
        ),
        (
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://127.0.0.1:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "/etc/hostname"),
            ],
        ),
        (
            "OTEL_TRACES_EXPORTER",
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
                ("OTEL_TRACES_EXPORTER", "jaeger"),
            ],
        ),
        ("REDIS_DSN", &[("IS_SLAVE", "true")]),
        (
            "TRUSTED_PROXIES",
            &[("TRUSTED_PROXIES", "10.0.0.1,10.0.0.0/33")],
        ),
    ];
    for (var, env) in cases {
        let mut env: Vec<(&str, &str)> = env.to_vec();
        env.push(("AUTH_KEY", ADMIN_KEY));
        env.push(("HOST", "127.0.0.1"));
        let (ok, _, err) = run_cli(dir.path(), &env, &[]).await;
        assert!(!ok, "{var}: started anyway");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{var}: one line expected, got:\n{err}");
        assert!(lines[0].contains(var), "{var} not named in: {}", lines[0]);
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// The binary is the whole product: a copy started from an empty directory serves the web UI
/// it embedded at build time (index and assets), not the "UI has not been built" page. Debug
/// builds embed as release builds do, so this runs on the test build.
#[tokio::test(flavor = "multi_thread")]
async fn a_copied_binary_serves_the_embedded_ui_from_an_empty_directory() {
    use gpt_load_integration_tests::harness::{Server, bin_path};
    let built = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/dist/index.html");
    assert!(
        built.is_file(),
        "build the UI first (npm --prefix ui run build): scripts/test.sh does"
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("gpt-load");
    std::fs::copy(bin_path("gpt-load"), &copy).unwrap();
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let server = Server::start_binary(copy, dir.clone(), &[]).await;

    let index = server.client().get(server.url("/")).send().await.unwrap();
    assert_eq!(index.status(), 200);
    let html = index.text().await.unwrap();
    assert!(
        html.contains("<div id=\"app\">") && !html.contains("has not been built"),
        "{html}"
    );
    // A client-side route gets the same page; the page's own script is served with its type.
    let route = server
        .client()
        .get(server.url("/keys"))
        .send()
        .await
        .unwrap();
    assert_eq!(route.text().await.unwrap(), html);
    let script = html
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .filter(|s| s.starts_with("/assets/"))
        .unwrap_or_else(|| panic!("no /assets/ script in {html}"))
        .to_owned();
    let asset = server
        .client()
        .get(server.url(&script))
        .send()
        .await
        .unwrap();
    assert_eq!(asset.status(), 200, "{script}");
    assert!(
        asset.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript"),
        "{:?}",
        asset.headers()
    );
    // Nothing was read from the working directory: it holds only the database.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["data"], "{names:?}");
}
