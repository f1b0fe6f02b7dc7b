//! `parallax proxy --config parallax.toml`: the shadowing proxy
//! (`parallax-proxy`). Reads and validates the file, sets up telemetry and
//! serves until SIGTERM/SIGINT; everything else is in the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// The proxy's TOML configuration (see proxy/parallax.example.toml).
    #[arg(long, env = "PARALLAX_PROXY_CONFIG", default_value = "parallax.toml")]
    config: PathBuf,
}

pub fn run(args: &ProxyArgs) -> anyhow::Result<()> {
    let config = parallax_proxy::Config::load(&args.config)?;
    parallax_common::telemetry::init();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(parallax_proxy::run(
        &config,
        parallax_common::server::signal(),
    ))?;
    Ok(())
}
