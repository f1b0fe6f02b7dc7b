use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;

use parallax_ingest::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    parallax_common::telemetry::init();
    let config = Config::parse();
    let listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", config.listen))?;
    let shutdown = parallax_common::server::signal();
    tracing::info!("listening on {}", listener.local_addr()?);
    parallax_ingest::run(listener, config, shutdown).await?;
    Ok(())
}
