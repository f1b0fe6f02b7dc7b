//! `parallax-session-cache`: parses the config, sets up tracing, binds, and
//! hands over to [`parallax_session_cache::run`].
//!
//! # Allocator
//! The system allocator (glibc malloc) by default, with one arena
//! ([`parallax_session_cache::malloc`]: per-thread arenas fragmented without
//! bound under churn). Measured with
//! `examples/churn.rs` (PUT churn of uniform 64 B–64 KiB values, 256 MiB
//! capacity, several full turnovers a second), steady-state RSS / accounted
//! bytes was 1.13–1.20 with glibc, 1.32–1.34 with jemalloc (1.28–1.30 with
//! `dirty_decay_ms:1000,muzzy_decay_ms:0`) and 1.35–1.37 with mimalloc:
//! their size classes, spaced ~25% apart in this range, waste more than
//! glibc's exact-size chunks lose to fragmentation. `--features jemalloc` or
//! `--features mimalloc` swap them in to measure again.

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;

use parallax_session_cache::Config;

#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    // Before the runtime's threads exist (see the module); the feature
    // builds bring their own allocator and keep glibc's defaults.
    #[cfg(not(any(feature = "jemalloc", feature = "mimalloc")))]
    parallax_session_cache::malloc::limit_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?
        .block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    parallax_common::telemetry::init();
    let config = Config::parse();
    let listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", config.listen))?;
    let shutdown = parallax_common::server::signal();
    tracing::info!("listening on {}", listener.local_addr()?);
    parallax_session_cache::run(listener, config, shutdown).await?;
    Ok(())
}
