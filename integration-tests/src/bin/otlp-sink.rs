//! `otlp-sink`: an OTLP/gRPC receiver that accepts traces and metrics and throws them away, for
//! the benchmark's telemetry-on run.
//!
//! ```text
//! otlp-sink [PORT]
//! ```
//! Prints `listening on 127.0.0.1:PORT`, then, every second, `spans N` (spans received so far).

#![expect(clippy::print_stdout, reason = "a command-line tool reports on stdout")]

use std::io::Write as _;
use std::process::ExitCode;

use gpt_load_integration_tests::otlp::Receiver;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let port: u16 = match std::env::args().nth(1).map(|p| p.parse()) {
        None => 0,
        Some(Ok(p)) => p,
        Some(Err(_)) => {
            eprintln!("usage: otlp-sink [PORT]");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("otlp-sink: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Ok(addr) = listener.local_addr() {
        println!("listening on {addr}");
    }
    let recv = Receiver::serve(listener, false);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
            _ = tick.tick() => {
                println!("spans {}", recv.span_count());
                let _ = std::io::stdout().flush();
            }
        }
    }
}
