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
