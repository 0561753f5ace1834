//! A small open-loop load generator for the benchmark (wrk measures throughput; this measures
//! latency at a fixed rate, corrected for coordinated omission, and time to first byte).
//!
//! ```text
//! loadgen rate URL RATE SECONDS [--header 'k: v']... [--body FILE]   # p50/p90/p99/max at RATE req/s
//! loadgen ttfb URL COUNT [--header 'k: v']... [--body FILE]          # time to first body byte
//! ```
//! Prints one JSON object on stdout, latencies in microseconds.

#![expect(clippy::print_stdout, reason = "a command-line tool reports on stdout")]

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

struct Args {
    mode: String,
    url: String,
    n: f64,
    secs: f64,
    headers: Vec<(String, String)>,
    body: Bytes,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mode = it.next().ok_or("mode: rate or ttfb")?;
    let url = it.next().ok_or("url")?;
    let n: f64 = it
        .next()
        .ok_or("rate/count")?
        .parse()
        .map_err(|_| "number")?;
    let secs: f64 = if mode == "rate" {
        it.next().ok_or("seconds")?.parse().map_err(|_| "seconds")?
    } else {
        0.0
    };
    let mut headers = Vec::new();
    let mut body = Bytes::new();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--header" => {
                let h = it.next().ok_or("header value")?;
                let (k, v) = h.split_once(':').ok_or("header k: v")?;
                headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
            "--body" => {
                body = Bytes::from(
                    std::fs::read(it.next().ok_or("body file")?).map_err(|e| e.to_string())?,
                )
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        mode,
        url,
        n,
        secs,
        headers,
        body,
    })
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Waits until `at` to within a few microseconds. Tokio's timers fire on a 1 ms wheel, up to a
/// millisecond late; counted from the scheduled time (as coordinated-omission correction does),
/// that lateness would be reported as latency and swamp the sub-millisecond differences the
/// benchmark compares. So: sleep until shortly before, then spin, yielding so that requests in
/// flight (and the I/O driver) keep running. Meant for light rates: at 50 req/s it spins a tenth
/// of a core between sends, none while a request is in flight.
async fn send_at(at: Instant) {
    const SPIN: Duration = Duration::from_millis(2);
    if let Some(early) = at.checked_sub(SPIN)
        && early > Instant::now()
    {
        tokio::time::sleep_until(early.into()).await;
    }
    while Instant::now() < at {
        tokio::task::yield_now().await;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(2);
        }
    };
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let make = |args: &Args| {
        let mut b = http::Request::builder()
            .method(if args.body.is_empty() { "GET" } else { "POST" })
            .uri(&args.url);
        for (k, v) in &args.headers {
            b = b.header(k, v);
        }
        b.body(Full::new(args.body.clone()))
    };
    let mut lat: Vec<u64> = Vec::new();
    let mut errors = 0u64;
    match args.mode.as_str() {
        "rate" => {
            let total = (args.n * args.secs) as usize;
            let interval = Duration::from_secs_f64(1.0 / args.n);
            let start = Instant::now() + Duration::from_millis(100);
            let mut tasks = Vec::with_capacity(total);
            for i in 0..total {
                let scheduled = start + interval * i as u32;
                send_at(scheduled).await;
                let Ok(req) = make(&args) else { continue };
                let client = client.clone();
                tasks.push(tokio::spawn(async move {
                    let ok = match client.request(req).await {
                        Ok(resp) => {
                            resp.status().is_success() && resp.into_body().collect().await.is_ok()
                        }
                        Err(_) => false,
                    };
                    (scheduled.elapsed().as_micros() as u64, ok)
                }));
            }
            for t in tasks {
                match t.await {
                    Ok((us, true)) => lat.push(us),
                    _ => errors += 1,
                }
            }
        }
        "ttfb" => {
            for _ in 0..args.n as usize {
                let Ok(req) = make(&args) else { continue };
                let t0 = Instant::now();
                match client.request(req).await {
                    Ok(resp) => {
                        let mut body = resp.into_body();
                        let mut first = None;
                        while let Some(f) = body.frame().await {
                            match f {
                                Ok(f)
                                    if f.data_ref().is_some_and(|d| !d.is_empty())
                                        && first.is_none() =>
                                {
                                    first = Some(t0.elapsed().as_micros() as u64);
                                }
                                Ok(_) => {}
                                Err(_) => break,
                            }
                        }
                        match first {
                            Some(us) => lat.push(us),
                            None => errors += 1,
                        }
                    }
                    Err(_) => errors += 1,
                }
            }
        }
        other => {
            eprintln!("loadgen: unknown mode {other}");
            std::process::exit(2);
        }
    }
    lat.sort_unstable();
    println!(
        "{{\"count\":{},\"errors\":{errors},\"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"max_us\":{}}}",
        lat.len(),
        pct(&lat, 0.5),
        pct(&lat, 0.9),
        pct(&lat, 0.99),
        lat.last().copied().unwrap_or(0)
    );
}
