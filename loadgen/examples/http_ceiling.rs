//! How many requests per second one driver core can push, with the
//! dedicated connections `parallax-loadgen` uses and with hyper-util's
//! pooled `Client` for comparison.
//!
//! Start a trivial server on one core and drive it, closed-loop (as fast as
//! answers come back), from the other:
//!
//! ```text
//! cargo build --release -p parallax-loadgen --example http_ceiling
//! taskset -c 1 target/release/examples/http_ceiling serve 127.0.0.1:18090 &
//! taskset -c 0 target/release/examples/http_ceiling drive 127.0.0.1:18090 dedicated 64 10
//! taskset -c 0 target/release/examples/http_ceiling drive 127.0.0.1:18090 pooled 64 10
//! ```
//!
//! Both sides run on a current-thread runtime. The figure that matters is
//! requests per driver CPU-second: it is the driver's ceiling on one core
//! whatever the server manages.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use parallax_loadgen::http::Connection;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["serve", addr] => runtime.block_on(serve(addr.parse()?)),
        ["drive", addr, mode, connections, secs] => runtime.block_on(drive(
            addr.parse()?,
            mode,
            connections.parse()?,
            Duration::from_secs(secs.parse()?),
        )),
        _ => bail!("usage: http_ceiling serve ADDR | drive ADDR dedicated|pooled CONNECTIONS SECS"),
    }
}

/// Answers everything with 1 KiB, like a cache hit.
async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let body = Bytes::from(vec![b'v'; 1024]);
    eprintln!("serving on {addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                let body = body.clone();
                async move { Ok::<_, hyper::Error>(Response::new(Full::new(body))) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn drive(
    addr: SocketAddr,
    mode: &str,
    connections: usize,
    run_for: Duration,
) -> anyhow::Result<()> {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let cpu_before = cpu_seconds()?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    let pooled = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(connections)
        .build_http::<Full<Bytes>>();
    let url: http::Uri = format!("http://{addr}/v1/sessions/s-1").parse()?;
    for _ in 0..connections {
        let (done, failed, stop) = (done.clone(), failed.clone(), stop.clone());
        let (pooled, url) = (pooled.clone(), url.clone());
        let dedicated = mode == "dedicated";
        tasks.push(tokio::spawn(async move {
            let mut connection = Connection::new(addr, Duration::from_secs(10));
            while !stop.load(Ordering::Relaxed) {
                let ok = if dedicated {
                    connection
                        .send(Method::GET, "/v1/sessions/s-1", Bytes::new())
                        .await
                        .is_ok()
                } else {
                    match pooled.get(url.clone()).await {
                        Ok(response) => response.into_body().collect().await.is_ok(),
                        Err(_) => false,
                    }
                };
                let counter = if ok { &done } else { &failed };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(run_for).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await?;
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds()? - cpu_before;
    let done = done.load(Ordering::Relaxed);
    println!(
        "{mode:>9} x{connections:<4} {:>9.0} req/s  driver CPU {:>4.0}%  {:>9.0} req per driver CPU-second  ({} failed)",
        done as f64 / wall,
        cpu / wall * 100.0,
        done as f64 / cpu,
        failed.load(Ordering::Relaxed)
    );
    Ok(())
}

/// This process's user + system CPU time, from `/proc`.
fn cpu_seconds() -> anyhow::Result<f64> {
    Ok(parallax_process::procstat::read(std::process::id())?.cpu_seconds)
}
