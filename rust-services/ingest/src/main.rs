use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;

use parallax_ingest::Config;

// The allocator, for Rust and (through its `malloc`) librdkafka alike; see
// the features in Cargo.toml.
#[cfg(all(feature = "jemalloc", feature = "mimalloc"))]
compile_error!("one allocator: --no-default-features --features mimalloc");

#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    parallax_common::telemetry::init();
    let config = Config::parse();
    let listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", config.listen))?;
    let grpc_listener = match config.grpc_listen.as_str() {
        "" => None,
        addr => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (--grpc-listen)"))?,
        ),
    };
    let shutdown = parallax_common::server::signal();
    if let Some(grpc_listener) = &grpc_listener {
        // Before `listening on`, the line that says the service is ready.
        tracing::info!("serving gRPC on {}", grpc_listener.local_addr()?);
    }
    tracing::info!("listening on {}", listener.local_addr()?);
    parallax_ingest::run_with_grpc(listener, grpc_listener, config, shutdown).await?;
    Ok(())
}
