//! `parallax canary status|rollback|restart`: a running proxy's (or fleet
//! controller's) canary releases, through its admin listener
//! (`GET /admin/canary`, `POST /admin/canary/{service}/rollback|restart`);
//! `parallax canary controller --config FILE` runs the fleet-wide
//! controller (`parallax_proxy::fleet`).

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::Value;

#[derive(Debug, Args)]
pub struct CanaryArgs {
    /// The proxy's admin listener (`admin_listen` in its configuration).
    #[arg(long, env = "PARALLAX_PROXY_ADMIN", default_value = "127.0.0.1:9901")]
    admin: String,
    /// Print the proxy's JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// A file holding the admin listener's token (its `admin_token_file`),
    /// sent as a bearer token.
    #[arg(long, env = "PARALLAX_ADMIN_TOKEN_FILE")]
    token_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Every canaried service: state, weight, step, the window being
    /// counted and the last rollback.
    Status,
    /// Send all of SERVICE's traffic back to the primary now.
    Rollback { service: String },
    /// Start SERVICE's canary again from its first step.
    Restart { service: String },
    /// Run the fleet-wide controller: judge every replica's canary together
    /// from Prometheus and push the weight to each (see
    /// deploy/canary-controller.example.toml).
    Controller {
        /// The controller's TOML configuration.
        #[arg(long)]
        config: std::path::PathBuf,
        /// Validate the configuration, print a summary and exit.
        #[arg(long)]
        check: bool,
    },
}

pub fn run(args: &CanaryArgs) -> anyhow::Result<()> {
    if let Action::Controller { config, check } = &args.action {
        return controller(config, *check);
    }
    let http = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .context("cannot build an HTTP client")?;
    let base = format!("http://{}", args.admin);
    let request = match &args.action {
        Action::Status => http.get(format!("{base}/admin/canary")),
        Action::Rollback { service } => {
            http.post(format!("{base}/admin/canary/{service}/rollback"))
        }
        Action::Restart { service } => http.post(format!("{base}/admin/canary/{service}/restart")),
        Action::Controller { .. } => unreachable!("served above"),
    };
    let request = match &args.token_file {
        Some(path) => {
            let token = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the token file {}", path.display()))?;
            request.bearer_auth(token.trim())
        }
        None => request,
    };
    let response = request
        .send()
        .with_context(|| format!("no proxy admin listener answers at {}", args.admin))?;
    let status = response.status();
    let text = response
        .text()
        .with_context(|| format!("{} broke off its answer", args.admin))?;
    let body: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} did not answer JSON: {text:.200}", args.admin))?;
    if !status.is_success() {
        let message = body["message"].as_str().unwrap_or("no message");
        bail!("the proxy refused ({status}): {message}");
    }
    if args.json {
        println!("{body:#}");
    } else {
        print!("{}", table(&body["services"]));
    }
    Ok(())
}

fn controller(config: &std::path::Path, check: bool) -> anyhow::Result<()> {
    let settings = parallax_proxy::fleet::ControllerConfig::load(config)?;
    if check {
        println!(
            "{}: valid; service {}, {} listed replica(s){}, Prometheus {}, admin on {}",
            config.display(),
            settings.service,
            settings.replicas.len(),
            settings
                .discover_job
                .as_ref()
                .map_or(String::new(), |j| format!(" + job {j:?}'s targets")),
            settings.prometheus,
            settings.listen
        );
        return Ok(());
    }
    parallax_common::telemetry::init();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime
        .block_on(async {
            parallax_proxy::fleet::run(settings, parallax_common::server::signal()).await
        })
        .context("the canary controller stopped")?;
    Ok(())
}

/// One line per service.
fn table(services: &Value) -> String {
    let Some(services) = services.as_object().filter(|s| !s.is_empty()) else {
        return "no service of this proxy has a [services.canary] table\n".into();
    };
    let mut out = format!(
        "{:<16} {:<12} {:>8} {:>6}  {:<34} {:<34} {}\n",
        "service", "state", "weight", "step", "primary (window)", "shadow (window)", "rollback"
    );
    for (name, s) in services {
        let step = match (s["step"].as_u64(), s["steps_percent"].as_array()) {
            (Some(i), Some(steps)) => format!("{}/{}", i + 1, steps.len()),
            _ => "-".into(),
        };
        let rollback = match &s["rollback"] {
            Value::Null => String::new(),
            r => format!(
                "{}: {}",
                r["reason"].as_str().unwrap_or("?"),
                r["detail"].as_str().unwrap_or("")
            ),
        };
        out += &format!(
            "{:<16} {:<12} {:>7}% {:>6}  {:<34} {:<34} {}\n",
            name,
            s["state"].as_str().unwrap_or("?"),
            s["weight_percent"].as_f64().unwrap_or(0.0),
            step,
            arm(&s["window"]["primary"]),
            arm(&s["window"]["shadow"]),
            rollback
        );
    }
    out
}

fn arm(a: &Value) -> String {
    let p99 = a["p99_us"]
        .as_u64()
        .map_or("-".into(), |us| format!("{:.1} ms", us as f64 / 1000.0));
    format!(
        "{} req, {:.2}% failed, p99 {}",
        a["requests"].as_u64().unwrap_or(0),
        a["error_rate"].as_f64().unwrap_or(0.0) * 100.0,
        p99
    )
}
