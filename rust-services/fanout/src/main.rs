use anyhow::Context;

use parallax_fanout::{listener, Config};

#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    // Before the runtime starts any thread: parsing edits the environment.
    let config = Config::from_args_and_env();
    tokio::runtime::Runtime::new()
        .context("cannot start the tokio runtime")?
        .block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    parallax_common::telemetry::init();
    config.validate()?;
    let listener = listener::bind(&config.listen, config.reuse_port)
        .with_context(|| format!("cannot listen on {} (--listen)", config.listen))?;
    let grpc_listener = match config.grpc_listen.as_str() {
        "" => None,
        addr => Some(
            tokio::net::TcpListener::bind(addr)
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
    parallax_fanout::run_with_grpc(listener, grpc_listener, config, shutdown).await?;
    Ok(())
}
