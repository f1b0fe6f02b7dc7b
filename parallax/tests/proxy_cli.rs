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
    let path = config_file(
        "good",
        &format!("admin_listen = \"127.0.0.1:0\"\n{SERVICE}"),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_parallax"))
        .args(["proxy", "--config"])
        .arg(&path)
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in stderr.by_ref().map_while(Result::ok) {
        let done = line.contains("admin listening on");
        seen.push(line);
        if done {
            break;
        }
    }
    // Keep reading, so the proxy's shutdown logs have somewhere to go.
    std::thread::spawn(move || stderr.for_each(drop));
    let _ = std::fs::remove_file(&path);
    assert!(
        seen.iter()
            .any(|l| l.contains("service svc listening on 127.0.0.1:")),
        "{seen:?}"
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
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
