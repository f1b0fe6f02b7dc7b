//! Building the twins and running them as child processes.
//!
//! Every twin binary takes `--listen HOST:PORT` and logs `listening on
//! HOST:PORT` once bound, so a twin is started on port 0 and its real address
//! read from its log; its stderr then goes on to a log file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use parallax_harness::child::{ChildProcess, ChildSpec, Readiness};

use crate::procstat::{self, Usage};

/// Built binaries of one service.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub go: PathBuf,
    pub rust: PathBuf,
}

/// The release build a run needs, in one cargo invocation: this CLI and the
/// three Rust twins. The README's main job and the experiment files of the
/// built-in pairs (`experiments/*.toml`) build exactly this set, so features
/// are resolved once and every build after the first is a no-op (a
/// different set could resolve shared dependencies' features differently
/// and rebuild them).
pub const RUST_TWINS: [&str; 4] = [
    "parallax",
    "parallax-ingest",
    "parallax-session-cache",
    "parallax-fanout",
];

/// Builds the Go reference (`go build`) and the Rust twin (`cargo build
/// --release`) of `service` (`ingest`, …). Every twin is built in one go,
/// once per process: one cargo invocation resolves features once, where
/// one invocation per twin rebuilt the dependencies they share whenever
/// their feature sets differed.
pub fn build(root: &Path, service: &str) -> anyhow::Result<Binaries> {
    if let Some(prebuilt) = prebuilt(service) {
        return Ok(prebuilt);
    }
    static BUILT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let out = root.join("target/parallax-bin");
    BUILT
        .get_or_init(|| build_all(root, &out).map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)?;
    let package = format!("parallax-{service}");
    Ok(Binaries {
        go: out.join(service),
        rust: root.join("target/release").join(&package),
    })
}

fn build_all(root: &Path, out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    eprintln!("building the twins: Go references and Rust twins (release)");
    // The Go build (about 80 CPU-seconds with a cold cache) runs beside the
    // cargo build, at a lower priority: cargo's build leaves a core idle
    // for much of its tail (one crate compiling, then linking), which the
    // Go build fills instead of adding its own time after cargo's.
    let mut go = Command::new("nice");
    go.current_dir(root.join("go-reference"))
        .args(["-n", "10", "go", "build", "-o"])
        .arg(format!("{}/", out.display()))
        .arg("./cmd/...");
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo.current_dir(root).args(["build", "--release", "-q"]);
    for package in RUST_TWINS {
        cargo.args(["-p", package]);
    }
    thread::scope(|scope| {
        let go = scope.spawn(|| run_ok(&mut go));
        let cargo = run_ok(&mut cargo);
        let go = go
            .join()
            .unwrap_or_else(|_| bail!("the go build's thread panicked"));
        go.and(cargo)
    })
}

/// Binaries named by `PARALLAX_<SERVICE>_{GO,RUST}_BIN` (both must be set),
/// as `scripts/test.sh` exports them: tests then reuse the debug builds
/// instead of building release ones.
fn prebuilt(service: &str) -> Option<Binaries> {
    let key = match service {
        "session-cache" => "CACHE",
        "ingest" => "INGEST",
        "fanout" => "FANOUT",
        _ => return None,
    };
    let var = |lang| std::env::var_os(format!("PARALLAX_{key}_{lang}_BIN")).map(PathBuf::from);
    Some(Binaries {
        go: var("GO")?,
        rust: var("RUST")?,
    })
}

fn run_ok(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(())
}

/// A running twin (the harness's one child-process type: its own process
/// group, stderr and stdout to the log, killed on drop).
pub struct Twin {
    pub name: &'static str,
    pub addr: SocketAddr,
    child: ChildProcess,
}

impl Twin {
    /// Starts `binary` with `--listen 127.0.0.1:0` and `args`, logging to `log`.
    pub fn spawn(
        name: &'static str,
        binary: &Path,
        args: &[String],
        log: &Path,
    ) -> anyhow::Result<Self> {
        Self::spawn_on(name, binary, args, log, None)
    }

    /// As [`Twin::spawn`], but restricted to `cpus` (a `taskset` list such
    /// as `1` or `0-1`) from its first instruction, so that its runtime sizes
    /// its thread pool (GOMAXPROCS, tokio's workers) to those CPUs.
    pub fn spawn_on(
        name: &'static str,
        binary: &Path,
        args: &[String],
        log: &Path,
        cpus: Option<&str>,
    ) -> anyhow::Result<Self> {
        // taskset execs the binary, so the child's pid is the twin's.
        let mut spec = match cpus {
            Some(list) => {
                let mut spec = ChildSpec::new(format!("the {name} twin"), "taskset", log);
                spec.args = vec!["-c".into(), list.into(), binary.display().to_string()];
                spec
            }
            None => ChildSpec::new(format!("the {name} twin"), binary, log),
        };
        spec.args
            .extend(["--listen".to_owned(), "127.0.0.1:0".to_owned()]);
        spec.args.extend(args.iter().cloned());
        // Started on port 0: its real address is in its `listening on` line.
        spec.ready = Readiness::ListeningLine;
        let child = ChildProcess::spawn(&spec)?;
        let addr = child.addr.context("the twin logged no address")?;
        Ok(Self { name, addr, child })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn usage(&self) -> anyhow::Result<Usage> {
        Ok(procstat::read(self.child.pid())?)
    }

    /// Polls `GET /readyz` until it answers 200.
    pub fn wait_ready(
        &self,
        client: &reqwest::blocking::Client,
        deadline: Duration,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let ready = client
                .get(self.url("/readyz"))
                .send()
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                return Ok(());
            }
            if started.elapsed() > deadline {
                bail!("the {} twin is not ready after {deadline:?}", self.name);
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(self, deadline: Duration) -> anyhow::Result<ExitStatus> {
        match self.child.stop(deadline) {
            Some(status) => Ok(status),
            None => bail!(
                "the {} twin did not exit within {deadline:?} of SIGTERM",
                self.name
            ),
        }
    }
}
