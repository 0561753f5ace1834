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
