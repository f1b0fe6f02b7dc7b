//! The proxy without the `parallax` CLI around it, for benchmarking the hop
//! while iterating on it: `cargo build --release -p parallax-proxy --example
//! bench_proxy` builds the proxy library alone, and `scripts/proxy-floor.sh`
//! runs it when `PARALLAX_PROXY_BIN` points at it. It serves exactly as
//! `parallax proxy --config FILE` does (same library entry point, same
//! runtime, the system allocator), so its figures are the CLI's.
//!
//! `PARALLAX_PROXY_RUNTIME=current-thread` serves on a current-thread
//! runtime instead of tokio's multi-threaded default, as `parallax proxy
//! --runtime` does (`TOKIO_WORKER_THREADS` sizes the default).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let config = match (args.next().as_deref(), args.next()) {
        (Some("--config"), Some(path)) => PathBuf::from(path),
        _ => return Err("usage: bench_proxy --config FILE".into()),
    };
    let config = parallax_proxy::Config::load(&config)?;
    parallax_common::telemetry::init();
    let shape: parallax_proxy::RuntimeShape = match std::env::var("PARALLAX_PROXY_RUNTIME") {
        Ok(shape) => shape
            .parse()
            .map_err(|e| format!("PARALLAX_PROXY_RUNTIME: {e}"))?,
        Err(_) => parallax_proxy::RuntimeShape::default(),
    };
    let runtime = shape.build()?;
    runtime.block_on(async {
        parallax_proxy::run(&config, parallax_common::server::signal()).await
    })?;
    Ok(())
}
