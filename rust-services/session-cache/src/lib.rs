//! Session cache, Rust twin: opaque values under session ids, over HTTP, in
//! a sharded, byte-bounded LRU with per-entry TTLs.
//!
//! It answers exactly like the Go reference (`go-reference/cmd/session-cache`),
//! byte for byte, and evicts the same entries for the same single-threaded
//! sequence of requests; `docs/contract-cache.md` is the contract. Inside, it
//! fixes the two bugs of the article's snippet: the shard of a key is a
//! fixed FNV-1a hash (not a fresh random hasher per lookup), and the cache
//! is bounded — LRU eviction by accounted bytes, TTL expiry on access and by
//! a background sweep.
//!
//! # Layout
//! - [`config`]: flags and env vars, checked at start-up.
//! - [`shard`]: one shard — map, O(1) LRU list, byte accounting, TTL — and
//!   why it is not a cache crate.
//! - [`cache`]: FNV-1a shard selection, one lock per shard, totals.
//! - [`sweep`]: the background expiry sweep and the guard that stops it.
//! - [`validate`]: the session id and `X-Session-TTL` rules.
//! - [`handler`]: routes, the session operations and their errors.
//! - [`metrics`]: cache counters and gauges.
//! - [`malloc`]: one glibc arena, set by re-executing at start-up.
//! - [`faults`]: hidden fault injection for the harness's gate tests (a
//!   delay, extra CPU per request).

pub mod cache;
pub mod config;
pub mod faults;
pub mod handler;
pub mod malloc;
pub mod metrics;
pub mod shard;
pub mod sweep;
pub mod validate;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use cache::Cache;
pub use config::Config;

/// Why the service could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] config::InvalidConfig),
    #[error("serving HTTP failed: {0}")]
    Serve(#[from] std::io::Error),
}

/// Runs the service on an already-bound `listener` until `shutdown`
/// resolves, then drains in-flight requests (at most `--shutdown-grace-ms`)
/// and stops the sweep.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    config.validate()?;
    let cache = Arc::new(Cache::new(config.capacity_bytes, config.shards));
    // Stops the sweep when `run` returns, however it returns.
    let _sweeper = sweep::spawn(cache.clone(), config.sweep_interval());
    let app = handler::App::new(
        cache,
        config.default_ttl(),
        parallax_common::metrics::Metrics::new(),
    );
    let router = faults::apply(handler::router(app), &config);
    parallax_common::server::serve(listener, router, shutdown, config.shutdown_grace()).await?;
    tracing::info!("stopped");
    Ok(())
}
