//! The proxy without the `parallax` CLI around it, for benchmarking the hop
//! while iterating on it: `cargo build --release -p parallax-proxy --example
//! bench_proxy` builds the proxy library alone, and `scripts/proxy-floor.sh`
//! runs it when `PARALLAX_PROXY_BIN` points at it. It serves exactly as
//! `parallax proxy --config FILE` does (same library entry point, same
//! runtime, the system allocator), so its figures are the CLI's.
//!
//! `PARALLAX_PROXY_RUNTIME=current-thread` serves on a current-thread
//! runtime instead of tokio's multi-threaded default, to compare runtime
//! shapes (`TOKIO_WORKER_THREADS` sizes the default).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let config = match (args.next().as_deref(), args.next()) {
        (Some("--config"), Some(path)) => PathBuf::from(path),
        _ => return Err("usage: bench_proxy --config FILE".into()),
    };
    let config = parallax_proxy::Config::load(&config)?;
    parallax_common::telemetry::init();
    let runtime = match std::env::var("PARALLAX_PROXY_RUNTIME").as_deref() {
        Ok("current-thread") => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        Ok("multi-thread") | Err(_) => tokio::runtime::Runtime::new()?,
        Ok(other) => {
            return Err(format!(
                "PARALLAX_PROXY_RUNTIME={other:?}: use multi-thread or current-thread"
            )
            .into())
        }
    };
    runtime.block_on(async {
        parallax_proxy::run(&config, parallax_common::server::signal()).await
    })?;
    Ok(())
}
