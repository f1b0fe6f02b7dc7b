//! `parallax proxy`: the thin CLI in front of `parallax-proxy`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn config_file(name: &str, text: &str) -> std::path::PathBuf {
    let path =
        std::env::temp_dir().join(format!("parallax-cli-{}-{name}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

const SERVICE: &str = "[[services]]\nname = \"svc\"\nlisten = \"127.0.0.1:0\"\nprimary = \"127.0.0.1:1\"\nshadow = \"127.0.0.1:2\"\n";

#[test]
fn a_bad_config_exits_non_zero_naming_the_field() {
    let path = config_file("bad", &format!("{SERVICE}mirror_percent = 150\n"));
    let output = Command::new(env!("CARGO_BIN_EXE_parallax"))
        .args(["proxy", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("services[0].mirror_percent: 150 is not within 0-100"),
        "{stderr}"
    );
}

#[test]
fn check_validates_the_documented_example_without_serving() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../proxy/parallax.example.toml"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_parallax"))
        .args(["proxy", "--check", "--config", example])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("valid") && stdout.contains("3 service(s)"),
        "{stdout}"
    );
    assert!(stdout.contains("canary 1% -> 5% -> 25% -> 50%"), "{stdout}");
}

#[test]
fn check_refuses_a_bad_config_naming_the_field() {
    let path = config_file(
        "check-bad",
        &format!("{SERVICE}shadow_timeout_ms = 0\nmirror_percent = -1\n"),
    );
    let output = Command::new(env!("CARGO_BIN_EXE_parallax"))
        .args(["proxy", "--check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("services[0]."), "{stderr}");
}

#[test]
fn the_proxy_serves_until_sigterm_and_exits_cleanly() {
    let mut proxy = RunningProxy::start(
        "good",
        &format!("admin_listen = \"127.0.0.1:0\"\n{SERVICE}"),
    );
    assert!(
        proxy
            .seen
            .iter()
            .any(|l| l.contains("service svc listening on 127.0.0.1:")),
        "{:?}",
        proxy.seen
    );
    let status = Command::new("kill")
        .args(["-TERM", &proxy.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = proxy.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `parallax proxy` child, stopped on drop.
struct RunningProxy {
    child: std::process::Child,
    admin: String,
    /// Its log lines up to "admin listening on".
    seen: Vec<String>,
}

impl RunningProxy {
    fn start(name: &str, toml: &str) -> Self {
        let path = config_file(name, toml);
        let mut child = Command::new(env!("CARGO_BIN_EXE_parallax"))
            .args(["proxy", "--config"])
            .arg(&path)
            .env("NO_COLOR", "1")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        let mut admin = None;
        for line in stderr.by_ref().map_while(Result::ok) {
            admin = line
                .split("admin listening on ")
                .nth(1)
                .map(|a| a.trim().to_owned());
            seen.push(line);
            if admin.is_some() {
                break;
            }
        }
        // Keep reading, so the proxy's later logs have somewhere to go.
        std::thread::spawn(move || stderr.for_each(drop));
        let _ = std::fs::remove_file(&path);
        let admin = admin.unwrap_or_else(|| panic!("no admin address announced: {seen:?}"));
        Self { child, admin, seen }
    }

    fn canary(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_parallax"))
            .args(["canary", "--admin", &self.admin])
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for RunningProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn canary_shows_rolls_back_and_restarts_a_running_proxys_canary() {
    let proxy = RunningProxy::start(
        "canary",
        &format!("admin_listen = \"127.0.0.1:0\"\n{SERVICE}[services.canary]\nweights_percent = [2, 20]\n"),
    );
    let text = |o: &std::process::Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let status = text(&proxy.canary(&["status"]));
    let line = status.lines().find(|l| l.starts_with("svc")).unwrap();
    assert!(
        line.contains("stepping") && line.contains("2%") && line.contains("1/2"),
        "{status}"
    );

    let rolled = text(&proxy.canary(&["rollback", "svc"]));
    assert!(
        rolled.contains("rolled_back") && rolled.contains("manual"),
        "{rolled}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&text(&proxy.canary(&["--json", "status"]))).unwrap();
    assert_eq!(json["services"]["svc"]["weight_percent"], 0.0);

    let restarted = text(&proxy.canary(&["restart", "svc"]));
    assert!(
        restarted.contains("stepping") && restarted.contains("2%"),
        "{restarted}"
    );

    let unknown = proxy.canary(&["rollback", "nope"]);
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("no service called \"nope\""), "{stderr}");
}

#[test]
fn canary_without_a_proxy_says_where_it_looked() {
    let output = Command::new(env!("CARGO_BIN_EXE_parallax"))
        .args(["canary", "--admin", "127.0.0.1:1", "status"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no proxy admin listener answers at 127.0.0.1:1"),
        "{stderr}"
    );
}

// ------------------------------------------------------------ fleet canary

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP/1.1 upstream answering `{}` after `delay_ms` (changeable
/// while it runs), one request per connection.
fn slow_upstream(delay_ms: std::sync::Arc<std::sync::atomic::AtomicU64>) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let delay = std::sync::Arc::clone(&delay_ms);
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                std::thread::sleep(Duration::from_millis(
                    delay.load(std::sync::atomic::Ordering::Relaxed),
                ));
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}");
            });
        }
    });
    port
}

/// Sends GETs to `port` at about `per_sec` until `stop`, a new connection
/// each (so `SO_REUSEPORT` spreads them over the replicas).
fn steady_load(port: u16, per_sec: u64, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::io::{Read, Write};
    std::thread::spawn(move || {
        let gap = Duration::from_micros(1_000_000 / per_sec);
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let started = std::time::Instant::now();
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let _ =
                    s.write_all(b"GET /v1/items HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
                let _ = s.read_to_end(&mut Vec::new());
            }
            std::thread::sleep(gap.saturating_sub(started.elapsed()));
        }
    });
}

fn admin_get(admin: &str, path: &str) -> Option<serde_json::Value> {
    let body = reqwest::blocking::Client::new()
        .get(format!("http://{admin}{path}"))
        .timeout(Duration::from_secs(2))
        .send()
        .ok()?
        .text()
        .ok()?;
    serde_json::from_str(&body).ok()
}

/// Polls `check` every 200 ms for up to `secs`.
fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match check() {
            Ok(()) => return,
            Err(e) if std::time::Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// A running child process, killed on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Three `parallax proxy` replicas sharing one port (`--reuse-port`),
/// Debian's Prometheus scraping them, and `parallax canary controller`
/// judging them together: the fleet steps as one; a replica restarted
/// mid-step rejoins at the fleet's weight; killing the controller leaves
/// every replica at weight 0 once its lease runs out; a regressed shadow
/// is rolled back on every replica.
#[test]
fn a_fleet_controller_judges_three_replicas_from_prometheus() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    if std::process::Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs Debian's prometheus (scripts/deps.sh)"
        );
        eprintln!("skipped: no prometheus binary (apt-get install prometheus)");
        return;
    }
    let shadow_delay = Arc::new(AtomicU64::new(0));
    let primary = slow_upstream(Arc::new(AtomicU64::new(0)));
    let shadow = slow_upstream(Arc::clone(&shadow_delay));
    let listen = free_port();
    let admins: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let replica_config = |admin: &str| {
        format!(
            "admin_listen = \"{admin}\"\n[[services]]\nname = \"svc\"\nlisten = \"127.0.0.1:{listen}\"\nprimary = \"127.0.0.1:{primary}\"\nshadow = \"127.0.0.1:{shadow}\"\n[services.canary]\nweights_percent = [10, 50]\ncontroller_lease_secs = 4\n"
        )
    };
    let start_replica = |i: usize| {
        let path = config_file(&format!("fleet-{i}"), &replica_config(&admins[i]));
        let child = Command::new(env!("CARGO_BIN_EXE_parallax"))
            .args(["proxy", "--reuse-port", "--config"])
            .arg(&path)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let admin = admins[i].clone();
        eventually(20, "replica up", || {
            admin_get(&admin, "/healthz")
                .map(drop)
                .ok_or_else(|| "not yet".into())
        });
        Child(child)
    };
    let mut replicas: Vec<Option<Child>> = (0..3).map(|i| Some(start_replica(i))).collect();

    let dir = std::env::temp_dir().join(format!("parallax-fleet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let targets: Vec<String> = admins.iter().map(|a| format!("\"{a}\"")).collect();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: parallax\n    static_configs:\n      - targets: [{}]\n", targets.join(", ")),
    )
    .unwrap();
    let prometheus_addr = format!("127.0.0.1:{}", free_port());
    let _prometheus = Child(
        Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={prometheus_addr}"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    eventually(20, "prometheus ready", || {
        reqwest::blocking::get(format!("http://{prometheus_addr}/-/ready"))
            .ok()
            .filter(|r| r.status().is_success())
            .map(drop)
            .ok_or_else(|| "not yet".into())
    });

    let controller_admin = format!("127.0.0.1:{}", free_port());
    let controller_config = config_file(
        "fleet-controller",
        &format!(
            "prometheus = \"http://{prometheus_addr}\"\nlisten = \"{controller_admin}\"\nservice = \"svc\"\ndiscover_job = \"parallax\"\ninterval_secs = 0.5\nlease_secs = 4\n[canary]\nweights_percent = [10, 50]\nstep_secs = 600\nwindow_secs = 3\nmin_requests = 20\nmax_p99_ratio = 1.5\np99_slack_ms = 5\n"
        ),
    );
    let start_controller = || {
        let child = Command::new(env!("CARGO_BIN_EXE_parallax"))
            .args(["canary", "controller", "--config"])
            .arg(&controller_config)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Child(child)
    };
    let weights = || -> Vec<Option<f64>> {
        admins
            .iter()
            .map(|a| {
                admin_get(a, "/admin/canary")
                    .and_then(|v| v["services"]["svc"]["weight_percent"].as_f64())
            })
            .collect()
    };
    let stop = Arc::new(AtomicBool::new(false));
    steady_load(listen, 150, Arc::clone(&stop));

    // The fleet takes the controller's first step, every replica alike.
    let controller = start_controller();
    eventually(30, "every replica at 10 %", || {
        let w = weights();
        (w == [Some(10.0); 3]).then_some(()).ok_or(format!("{w:?}"))
    });
    let status = Command::new(env!("CARGO_BIN_EXE_parallax"))
        .args(["canary", "--admin", &controller_admin, "--json", "status"])
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        status["services"]["svc"]["fleet"]["replicas"]
            .as_array()
            .unwrap()
            .len(),
        3,
        "{status}"
    );

    // A replica restarted mid-step rejoins at the fleet's weight.
    drop(replicas[1].take());
    replicas[1] = Some(start_replica(1));
    eventually(30, "the restarted replica back at 10 %", || {
        let w = weights();
        (w == [Some(10.0); 3]).then_some(()).ok_or(format!("{w:?}"))
    });

    // Without its controller, every replica falls back to the primary.
    drop(controller);
    eventually(15, "every replica at 0 % after the lease", || {
        let w = weights();
        (w == [Some(0.0); 3]).then_some(()).ok_or(format!("{w:?}"))
    });
    let lost = admin_get(&admins[0], "/admin/canary").unwrap();
    assert_eq!(
        lost["services"]["svc"]["controller"]["lost"], true,
        "{lost}"
    );

    // A regressed shadow (30 ms per answer) is rolled back fleet-wide.
    shadow_delay.store(30, Ordering::Relaxed);
    let _controller = start_controller();
    eventually(60, "rolled back for latency on every replica", || {
        let states: Vec<(String, String)> = admins
            .iter()
            .map(|a| {
                let v = admin_get(a, "/admin/canary").unwrap_or_default();
                let s = &v["services"]["svc"];
                (
                    s["state"].as_str().unwrap_or("?").to_owned(),
                    s["rollback"]["reason"].as_str().unwrap_or("-").to_owned(),
                )
            })
            .collect();
        let done = states
            .iter()
            .all(|(s, r)| s == "rolled_back" && r == "latency");
        done.then_some(()).ok_or(format!("{states:?}"))
    });
    assert_eq!(weights(), [Some(0.0); 3]);
    stop.store(true, Ordering::Relaxed);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_documented_controller_config_checks_and_a_bad_one_names_the_field() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/canary-controller.example.toml"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_parallax"))
        .args(["canary", "controller", "--check", "--config", example])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bad = config_file(
        "bad-controller",
        "service = \"svc\"\nreplicas = [\"127.0.0.1:1\"]\nlease_secs = 1\n",
    );
    let output = Command::new(env!("CARGO_BIN_EXE_parallax"))
        .args(["canary", "controller", "--check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&bad);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("lease_secs: 1 must be at least 3 intervals"),
        "{stderr}"
    );
}

// ------------------------------------------------------ distributed load

/// Two `parallax load http --worker I/2` processes at the run's total rate,
/// merged by `parallax load merge`, send what one process sends alone and
/// hold the total rate.
#[test]
fn two_load_workers_merged_match_one_process_at_the_same_rate() {
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;
    let port = slow_upstream(Arc::new(AtomicU64::new(0)));
    let dir = std::env::temp_dir().join(format!("parallax-workers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let load = |out: &str, worker: &str| {
        Command::new(env!("CARGO_BIN_EXE_parallax"))
            .args([
                "load",
                "http",
                "--path",
                "/items/{{n}}",
                "--value",
                "n={ kind = \"sequence\" }",
            ])
            .args(["--target", &format!("http://127.0.0.1:{port}")])
            .args([
                "--rate",
                "150",
                "--duration-secs",
                "3",
                "--warmup-secs",
                "0.5",
                "--users",
                "32",
            ])
            // This test is about splitting and merging, not this shared
            // machine's timing: lateness is reported, not judged.
            .args(["--max-late-ratio", "1"])
            .args(["--worker", worker, "--out"])
            .arg(dir.join(out))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let report = |out: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(out).join("load.json")).unwrap())
            .unwrap()
    };
    let single = load("single", "0/1").wait_with_output().unwrap();
    assert!(
        single.status.success(),
        "{}",
        String::from_utf8_lossy(&single.stderr)
    );
    let workers: Vec<_> = ["0/2", "1/2"]
        .iter()
        .enumerate()
        .map(|(i, w)| load(&format!("w{i}"), w))
        .collect();
    for w in workers {
        let out = w.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let merged_path = dir.join("merged.json");
    let merged = Command::new(env!("CARGO_BIN_EXE_parallax"))
        .args(["load", "merge"])
        .arg(dir.join("w0/load.json"))
        .arg(dir.join("w1/load.json"))
        .arg("--out")
        .arg(&merged_path)
        .args(["--max-late-ratio", "1"])
        .output()
        .unwrap();
    assert!(
        merged.status.success(),
        "{}",
        String::from_utf8_lossy(&merged.stderr)
    );
    let merged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&merged_path).unwrap()).unwrap();
    let single = report("single");
    let (w0, w1) = (report("w0"), report("w1"));
    assert_eq!(w0["target_rate_per_sec"], 75.0, "each worker's share");
    let n = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap();
    // The same slots, split: exactly the single run's count.
    assert_eq!(
        n(&w0, "requests") + n(&w1, "requests"),
        n(&single, "requests")
    );
    assert_eq!(n(&merged, "requests"), n(&single, "requests"));
    assert_eq!(n(&merged, "target_rate_per_sec"), 150.0);
    assert!(n(&merged, "achieved_rate_per_sec") > 140.0, "{merged}");
    assert_eq!(merged["held"], true);
    // Percentiles from the merged histogram, within this machine's noise.
    let p50 = |v: &serde_json::Value| v["latency"]["p50_us"].as_f64().unwrap().max(1.0);
    let ratio = p50(&merged) / p50(&single);
    assert!(
        (0.25..4.0).contains(&ratio),
        "p50 merged {} vs single {}",
        p50(&merged),
        p50(&single)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
