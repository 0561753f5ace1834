//! `mock-upstream`: the mock vendor API ([`gpt_load_integration_tests::mock_upstream`])
//! as a standalone server, for benchmarks and manual SDK checks.
//!
//! Prints `listening on 127.0.0.1:PORT` as its first stdout line, then serves until
//! Ctrl-C / SIGTERM. Recording is off unless `--record` is given (nothing can read the
//! log from outside, and it would grow without bound under load).
//!
//! With `--tls CERT_PATH` it speaks TLS with a fresh self-signed certificate for `localhost`
//! and `127.0.0.1`, whose PEM it writes to `CERT_PATH` before listening, so that clients can
//! trust it (gpt-load through `SSL_CERT_FILE`, nginx through `proxy_ssl_trusted_certificate`).
//! It offers the ALPN protocols `--alpn` lists (`h2,http/1.1` unless told otherwise).

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use gpt_load_integration_tests::mock_upstream::{Behavior, MockUpstream};
use gpt_load_integration_tests::tls::TestCert;

const USAGE: &str = "usage: mock-upstream [--port PORT] [--threads N] [--delay-ms MS] [--record]
                     [--tls CERT_PATH [--alpn LIST]]
  --port PORT     port on 127.0.0.1 (default 0: any free port)
  --threads N     tokio worker threads (default: one per core)
  --delay-ms MS   answer every request after MS milliseconds (default 0)
  --record        keep a log of requests (default off)
  --tls PATH      speak TLS with a new self-signed certificate (localhost, 127.0.0.1),
                  written to PATH as PEM before listening
  --alpn LIST     ALPN protocols offered over TLS, comma-separated (default h2,http/1.1;
                  http/1.1 alone for an HTTP/1.1-only upstream)";

/// What `--alpn` offers unless given.
const DEFAULT_ALPN: &str = "h2,http/1.1";

#[derive(Debug, Default)]
struct Args {
    port: u16,
    threads: Option<usize>,
    delay_ms: u64,
    record: bool,
    tls_cert: Option<std::path::PathBuf>,
    alpn: Option<String>,
    help: bool,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    fn value<T: std::str::FromStr>(name: &str, v: Option<String>) -> Result<T, String> {
        let v = v.ok_or_else(|| format!("{name} needs a value"))?;
        v.parse()
            .map_err(|_| format!("invalid value for {name}: {v}"))
    }
    let mut out = Args::default();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (arg, None),
        };
        match name.as_str() {
            "--port" => out.port = value(&name, inline.or_else(|| args.next()))?,
            "--threads" => out.threads = Some(value(&name, inline.or_else(|| args.next()))?),
            "--delay-ms" => out.delay_ms = value(&name, inline.or_else(|| args.next()))?,
            "--record" => out.record = true,
            "--tls" => out.tls_cert = Some(value(&name, inline.or_else(|| args.next()))?),
            "--alpn" => out.alpn = Some(value(&name, inline.or_else(|| args.next()))?),
            "-h" | "--help" => out.help = true,
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    if out.alpn.is_some() && out.tls_cert.is_none() {
        return Err("--alpn needs --tls".into());
    }
    Ok(out)
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("mock-upstream: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.help {
        eprintln!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = match runtime.enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("mock-upstream: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let started = match &args.tls_cert {
        None => MockUpstream::start_on(addr).await,
        Some(path) => match tls_config(path, args.alpn.as_deref().unwrap_or(DEFAULT_ALPN)) {
            Ok(tls) => MockUpstream::start_tls_on(addr, tls).await,
            Err(msg) => {
                eprintln!("mock-upstream: {msg}");
                return ExitCode::FAILURE;
            }
        },
    };
    let mock = match started {
        Ok(mock) => mock,
        Err(err) => {
            eprintln!("mock-upstream: cannot bind {addr}: {err}");
            return ExitCode::FAILURE;
        }
    };
    mock.set_recording(args.record);
    if args.delay_ms > 0 {
        mock.set_behavior(None, Behavior::Delay(Duration::from_millis(args.delay_ms)));
    }
    {
        let mut stdout = std::io::stdout().lock();
        if writeln!(stdout, "listening on {}", mock.addr())
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return ExitCode::FAILURE;
        }
    }
    shutdown_signal().await;
    ExitCode::SUCCESS
}

/// A TLS server configuration with a new self-signed certificate, whose PEM is written to
/// `cert_path`, offering the comma-separated ALPN protocols `alpn`.
fn tls_config(
    cert_path: &std::path::Path,
    alpn: &str,
) -> Result<std::sync::Arc<tokio_rustls::rustls::ServerConfig>, String> {
    let cert = TestCert::new()?;
    std::fs::write(cert_path, &cert.cert_pem)
        .map_err(|e| format!("cannot write {}: {e}", cert_path.display()))?;
    let protocols: Vec<&[u8]> = alpn
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::as_bytes)
        .collect();
    cert.server_config(&protocols)
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
