//! Building the twins and running them as child processes.
//!
//! Every twin binary takes `--listen HOST:PORT` and logs `listening on
//! HOST:PORT` once bound, so a twin is started on port 0 and its real address
//! read from its log; its stderr then goes on to a log file.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::procstat::{self, Usage};

/// Built binaries of one service.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub go: PathBuf,
    pub rust: PathBuf,
}

/// Builds the Go reference (`go build`) and the Rust twin (`cargo build
/// --release`) of `service` (`ingest`, …).
pub fn build(root: &Path, service: &str) -> anyhow::Result<Binaries> {
    if let Some(prebuilt) = prebuilt(service) {
        return Ok(prebuilt);
    }
    let out = root.join("target/parallax-bin");
    std::fs::create_dir_all(&out)?;
    eprintln!("building {service}: Go reference and Rust twin (release)");
    run_ok(
        Command::new("go")
            .current_dir(root.join("go-reference"))
            .args(["build", "-o"])
            .arg(&out)
            .arg(format!("./cmd/{service}")),
    )?;
    let package = format!("parallax-{service}");
    run_ok(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root)
            .args(["build", "--release", "-q", "-p", &package]),
    )?;
    Ok(Binaries {
        go: out.join(service),
        rust: root.join("target/release").join(&package),
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

/// A running twin; dropping it kills the process.
pub struct Twin {
    pub name: &'static str,
    pub addr: SocketAddr,
    child: Child,
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
        let mut command = match cpus {
            Some(list) => {
                let mut taskset = Command::new("taskset");
                taskset.args(["-c", list]).arg(binary);
                taskset
            }
            None => Command::new(binary),
        };
        let mut child = command
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start the {name} twin ({})", binary.display()))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let mut file = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(file, "{line}");
                if let Some(addr) = listening_addr(&line) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr);
                    }
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => Ok(Self { name, addr, child }),
            Err(_) => {
                let _ = child.kill();
                bail!(
                    "the {name} twin did not log `listening on` within 30 s; see {}",
                    log.display()
                )
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn usage(&self) -> anyhow::Result<Usage> {
        procstat::read(self.child.id())
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
    pub fn stop(mut self, deadline: Duration) -> anyhow::Result<ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if started.elapsed() > deadline {
                bail!(
                    "the {} twin did not exit within {deadline:?} of SIGTERM",
                    self.name
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Twin {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The address in a `listening on HOST:PORT` log line (Go's slog quotes it).
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    let token = rest.split(|c: char| c.is_whitespace() || c == '"').next()?;
    token.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::listening_addr;

    #[test]
    fn finds_the_address_in_rust_and_go_log_lines() {
        let rust = "2026-11-26T23:36:08Z  INFO listening on 127.0.0.1:18080";
        let go = r#"time=2026-11-26T23:36:08Z level=INFO msg="listening on 127.0.0.1:18081""#;
        assert_eq!(listening_addr(rust).unwrap().port(), 18080);
        assert_eq!(listening_addr(go).unwrap().port(), 18081);
        assert!(listening_addr("starting").is_none());
    }
}
