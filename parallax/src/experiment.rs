//! `parallax run EXPERIMENT.toml…`: experiments on services of your own,
//! run by `parallax_harness::runner` (the file format is
//! `parallax_harness::experiment`, its guide `docs/experiments.md`).
//!
//! This module is the command line around the runner: it reads each file,
//! maps the flags onto [`RunOptions`], and writes one `results.json`,
//! `report.html` and the side-by-side table for all of them. It needs no
//! checkout of this repository: only the files and the services they name.

use std::path::Path;

use anyhow::{bail, Context};
use parallax_harness::experiment::{Experiment, ModeName};
use parallax_harness::runner::{self, RunOptions};
use parallax_report::RunResults;

use crate::run::RunArgs;

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    interrupt_handler()?;
    let mut experiments = load(&args.experiments)?;
    overrides(&mut experiments, args)?;
    if args.check {
        for experiment in &experiments {
            check(experiment)?;
        }
        return Ok(());
    }
    let results = run_all(&experiments, args, &args.out)?;
    write(&results, &args.out)
}

/// One Ctrl-C handler for the whole process (the ctrlc crate takes one):
/// every child is in its own process group, so a Ctrl-C reaches this
/// process only; it stops the load and the readiness waits, and the runner
/// unwinds, stopping every child it started.
pub fn interrupt_handler() -> anyhow::Result<()> {
    ctrlc::set_handler(|| {
        eprintln!("\ninterrupted: stopping the load and the backends");
        parallax_loadgen::open::interrupt();
        parallax_harness::child::interrupt();
    })
    .context("cannot install the Ctrl-C handler")
}

/// Reads and checks every file; names must differ.
pub fn load(paths: &[std::path::PathBuf]) -> anyhow::Result<Vec<Experiment>> {
    let experiments = paths
        .iter()
        .map(|path| Experiment::load(path).map_err(anyhow::Error::from))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for (i, x) in experiments.iter().enumerate() {
        if let Some(other) = experiments[..i].iter().find(|o| o.name() == x.name()) {
            bail!(
                "{} and {} are both named {:?}; give one another `name` (scenario names and output directories must differ)",
                other.origin.display(),
                x.origin.display(),
                x.name()
            );
        }
    }
    Ok(experiments)
}

/// The flags that change a file rather than a run: `--clients` replaces
/// `traffic.websocket.clients`.
pub fn overrides(experiments: &mut [Experiment], args: &RunArgs) -> anyhow::Result<()> {
    for x in experiments {
        match (&mut x.traffic.websocket, args.clients) {
            (Some(ws), Some(clients)) => {
                ws.clients = clients;
                ws.shadow_clients = Some(ws.shadow_clients().min(clients));
            }
            (None, Some(_)) if args.experiments.len() == 1 => bail!(
                "--clients: {} has no [traffic.websocket] sessions",
                x.origin.display()
            ),
            _ => {}
        }
    }
    Ok(())
}

/// Runs each experiment in turn with the command line's overrides; every
/// experiment's logs go to `out/<name>/`.
pub fn run_all(
    experiments: &[Experiment],
    args: &RunArgs,
    out: &Path,
) -> anyhow::Result<RunResults> {
    args.verdict.check()?;
    // --aa --direct: the baseline against itself, each alone in turn. A
    // capacity search or ladder is direct (each backend alone) too.
    let mode = match (args.aa, args.direct || args.capacity()) {
        (true, _) => Some(ModeName::Aa),
        (false, true) => Some(ModeName::Direct),
        (false, false) => None,
    };
    if let Some(d) = args.duration_secs.filter(|d| *d < 1.0) {
        bail!("--duration-secs {d}: must be at least 1");
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let run_mode = runner::report_mode(mode.unwrap_or(experiments[0].load.mode));
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut results = RunResults::new(command, run_mode);
    for experiment in experiments {
        let this_mode = runner::mode(
            experiment,
            &RunOptions {
                mode,
                ..RunOptions::default()
            },
        );
        if runner::report_mode(this_mode) != run_mode {
            bail!(
                "{}: load.mode {:?} differs from the first experiment's; one results file holds one mode (give --direct or --aa to run all alike)",
                experiment.origin.display(),
                this_mode
            );
        }
        // `..default()`: the runner's other options (capacity search,
        // interleaving, cgroups) keep their defaults here.
        let mut options = RunOptions {
            mode,
            duration_secs: args.duration_secs,
            warmup_secs: args.warmup_secs,
            rate: args.fixed_rate(),
            candidate_args: args
                .candidate_flags
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            out: out.join(experiment.name()),
            proxy_exe: crate::workspace::self_exe()?,
            ..RunOptions::default()
        };
        options.aa_direct = args.aa && args.direct;
        args.verdict
            .apply(args.rate, experiment.load.rate, &mut options);
        let scenarios = runner::run(experiment, &options)
            .with_context(|| format!("experiment {}", experiment.origin.display()))?;
        if experiments.len() > 1 {
            // Each table as its experiment ends; all of them again at the end.
            for s in &scenarios {
                println!("{}", parallax_report::table::render_scenario(s));
            }
        }
        results.scenarios.extend(scenarios);
    }
    args.verdict.attach_noise(&mut results)?;
    Ok(results)
}

/// results.json, report.html and the table.
pub fn write(results: &RunResults, out: &Path) -> anyhow::Result<()> {
    let json = out.join("results.json");
    results.save(&json)?;
    let html = out.join("report.html");
    std::fs::write(&html, parallax_report::html::render(results))?;
    println!("{}", parallax_report::table::render(results));
    println!("results: {}\nreport:  {}", json.display(), html.display());
    println!("judge it: parallax gate {}", json.display());
    Ok(())
}

/// `--check`: what an experiment would run, without running it.
fn check(experiment: &Experiment) -> anyhow::Result<()> {
    use parallax_harness::experiment::Side;
    use parallax_harness::traffic::TemplateWorkload;
    let name = experiment.name();
    println!("{}: ok ({name})", experiment.origin.display());
    for side in [Side::Baseline, Side::Candidate, Side::Secondary] {
        let Some(b) = experiment.backend(side) else {
            continue;
        };
        let what = match &b.url {
            Some(url) => format!("already running at {url}"),
            None => {
                let mut w = format!("runs {:?}", b.command);
                if !b.build.is_empty() {
                    w = format!("builds with {:?}, then {w}", b.build);
                }
                w
            }
        };
        println!("  {} ({}): {what}", side.field(), b.label(side));
    }
    let mode = match experiment.load.mode {
        ModeName::Shadow => "shadow, through parallax proxy",
        ModeName::Direct => "direct, A B B A",
        ModeName::Aa => "A/A",
    };
    for step in experiment.steps() {
        println!(
            "  load: {mode}, {} requests/s for {} s after {} s warm-up",
            step.rate, step.duration_secs, experiment.load.warmup_secs
        );
    }
    let routes: Vec<&str> = experiment
        .routes
        .iter()
        .map(|r| r.template.as_str())
        .collect();
    let workload = TemplateWorkload::new(&name, &experiment.traffic, &experiment.dir(), &routes)
        .map_err(|e| anyhow::anyhow!("{}: {}", e.field, e.reason))?;
    println!("  one request of each template (its first slot; route):");
    let mut shown = vec![false; experiment.traffic.requests.len()];
    for n in 0..100_000 {
        if shown.iter().all(|s| *s) {
            break;
        }
        let r = workload
            .try_render(n)
            .map_err(|e| anyhow::anyhow!("{}: slot {n}: {e}", experiment.origin.display()))?;
        if std::mem::replace(&mut shown[r.template], true) {
            continue;
        }
        let t = &experiment.traffic.requests[r.template];
        println!(
            "    {} (slot {n}): {} {} -> route {}",
            t.label(),
            t.method,
            r.path,
            workload.route_of(&r.path)
        );
        for (h, v) in &r.headers {
            println!("       {h}: {v}");
        }
        if let (Some(body), Some(p)) = (&r.body, &t.protobuf) {
            println!("       body: {} bytes of {}", body.len(), p.message);
        } else if let Some(body) = &r.body {
            let text = String::from_utf8_lossy(body);
            let short: String = text.chars().take(160).collect();
            let more = if text.chars().count() > 160 {
                "…"
            } else {
                ""
            };
            println!("       body: {short}{more}");
        }
    }
    if let Some(ws) = &experiment.traffic.websocket {
        println!(
            "  websocket: {} sessions per backend on {} ({} through the proxy in shadow mode), frames paired by {}; each request above is a publish expected to reach every session",
            ws.clients,
            ws.path,
            ws.shadow_clients(),
            ws.match_by
        );
    }
    if let Some(k) = &experiment.side_effects.kafka {
        println!(
            "  kafka: {} and {} joined on {} ({})",
            k.baseline_topic,
            k.candidate_topic,
            k.join,
            k.brokers()
        );
    }
    Ok(())
}
