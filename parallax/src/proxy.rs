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
    /// Bind every service's listener with SO_REUSEPORT (as `reuse_port =
    /// true` in each service does), so several proxy processes share the
    /// ports: one process may hold only so many descriptors, and a proxied
    /// WebSocket costs three.
    #[arg(long)]
    reuse_port: bool,
    /// The async runtime: `multi-thread` (one worker per CPU) or
    /// `current-thread` (one thread; run one process per core with
    /// `--reuse-port`, which served more mirrored requests per core in
    /// docs/benchmarks.md).
    #[arg(long, env = "PARALLAX_PROXY_RUNTIME", default_value = "multi-thread")]
    runtime: parallax_proxy::RuntimeShape,
    /// Validate the configuration, print a summary and exit.
    #[arg(long)]
    check: bool,
}

pub fn run(args: &ProxyArgs) -> anyhow::Result<()> {
    let mut config = parallax_proxy::Config::load(&args.config)?;
    if args.reuse_port {
        for service in &mut config.services {
            service.reuse_port = true;
        }
    }
    if args.check {
        let settings = config
            .validate()
            .with_context(|| format!("{} is not valid", args.config.display()))?;
        println!(
            "{}: valid; admin on {}, {} service(s): {}",
            args.config.display(),
            settings.admin_listen,
            settings.services.len(),
            config
                .services
                .iter()
                .map(|s| {
                    let canary = s.canary.as_ref().map_or(String::new(), |c| {
                        let steps: Vec<String> =
                            c.weights_percent.iter().map(|w| format!("{w}%")).collect();
                        format!(", canary {}", steps.join(" -> "))
                    });
                    format!(
                        "{} {} -> {} (shadow {}{canary})",
                        s.name, s.listen, s.primary, s.shadow
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(());
    }
    parallax_common::telemetry::init();
    let runtime = args
        .runtime
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        parallax_proxy::run(&config, parallax_common::server::signal()).await
    })?;
    Ok(())
}
