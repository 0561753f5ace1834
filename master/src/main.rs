//! `gpt-load`: load `.env`, parse the command line and configuration, start telemetry, then serve
//! (or run a job command) until SIGINT/SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use gpt_load_common::config::StaticConfig;
use gpt_load_common::env::ProcessEnv;
use gpt_load_master::app::App;
use gpt_load_master::cli::{Cli, Command};

/// mimalloc: the proxy allocates small, short-lived buffers on every request, which glibc's
/// allocator serves with arena locks and consolidation (see `docs/benchmarks.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("gpt-load: {msg}");
    ExitCode::from(2)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn main() -> ExitCode {
    dotenvy::dotenv().ok();
    let cli = Cli::parse();
    let cfg = match StaticConfig::load(&ProcessEnv) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    // Tokio reads TOKIO_WORKER_THREADS itself (and panics on a bad value): check it first.
    if let Ok(v) = std::env::var("TOKIO_WORKER_THREADS")
        && v.parse::<usize>().map_or(true, |n| n == 0)
    {
        return fail(format!(
            "TOKIO_WORKER_THREADS: a positive number of threads (got {v:?})"
        ));
    }
    // Each serving thread gets its own upstream connection pools (see `gpt_load_worker::serve`).
    gpt_load_worker::client::reserve_thread_pools(gpt_load_worker::serve::threads());
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    // The OTLP exporters are built inside the runtime (their gRPC channels live on it) and
    // flushed before it stops.
    let role = if cfg.is_slave && cli.command.is_none() {
        "worker"
    } else {
        "master"
    };
    let mut telemetry = {
        let _rt = rt.enter();
        match gpt_load_common::telemetry::init(&cfg.log, role) {
            Ok(g) => g,
            Err(e) => return fail(e),
        }
    };
    // The roots upstream TLS trusts (webpki, plus SSL_CERT_FILE / SSL_CERT_DIR or the system's):
    // read once, logged, before anything serves.
    if cli.command.is_none() {
        gpt_load_worker::tls::load();
    }
    let code = rt.block_on(async move {
        match cli.command {
            Some(Command::MigrateKeys { from, to }) => {
                match gpt_load_master::migrate_keys::run(&cfg, from.as_deref(), to.as_deref()).await
                {
                    Ok(summary) => {
                        eprintln!("gpt-load: {summary}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(format!("migrate-keys: {e}")),
                }
            }
            Some(Command::Ctl(args)) => match gpt_load_master::ctl::run(&cfg, args).await {
                Ok(out) => {
                    use std::io::Write;
                    let mut stdout = std::io::stdout();
                    let _ = stdout.write_all(out.as_bytes());
                    if !out.ends_with('\n') {
                        let _ = stdout.write_all(b"\n");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(format!("ctl: {e}")),
            },
            None if cfg.is_slave => {
                match gpt_load_worker::node::run(cfg, shutdown_signal()).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => fail(e),
                }
            }
            None => {
                let app = match App::build(cfg).await {
                    Ok(a) => a,
                    Err(e) => return fail(e),
                };
                match app.run(shutdown_signal()).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => fail(e),
                }
            }
        }
    });
    {
        let _rt = rt.enter();
        telemetry.shutdown();
    }
    code
}
