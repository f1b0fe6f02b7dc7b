//! `parallax capture info` and `parallax replay` as a user runs them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

fn file(name: &str, text: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("plx-capture-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const GOR: &str = "1 a 1700000000000000000 0\nPOST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}\n🐵🙈🙉\n2 a 1700000000001000000 1000000\nHTTP/1.1 202 Accepted\r\n\r\n\n🐵🙈🙉\n1 b 1700000000200000000 0\nGET /v1/sessions/12345 HTTP/1.1\r\nHost: x\r\n\r\n\n🐵🙈🙉\n1 c 1700000000400000000 0\nGET /v1/sessions/777 HTTP/1.1\r\nHost: x\r\n\r\n\n🐵🙈🙉\n";

/// A tiny HTTP/1.1 server on a thread: answers 202 to POST, 200 otherwise,
/// keeps what it saw.
fn server() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut len = 0;
                    loop {
                        let mut h = String::new();
                        reader.read_line(&mut h).unwrap();
                        if h == "\r\n" || h.is_empty() {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; len];
                    reader.read_exact(&mut body).unwrap();
                    let status = if line.starts_with("POST") {
                        "202 Accepted"
                    } else {
                        "200 OK"
                    };
                    log.lock().unwrap().push(line.trim().to_owned());
                    write!(writer, "HTTP/1.1 {status}\r\nContent-Length: 2\r\n\r\nok").unwrap();
                }
            });
        }
    });
    (addr, seen)
}

#[test]
fn capture_info_summarises_a_gor_file() {
    let gor = file("info.gor", GOR);
    let out = Command::new(env!("CARGO_BIN_EXE_parallax"))
        .args(["capture", "info"])
        .arg(&gor)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("format:      gor"), "{stdout}");
    assert!(stdout.contains("3 requests"), "{stdout}");
    assert!(stdout.contains("2  GET /v1/sessions/{id}"), "{stdout}");
    assert!(stdout.contains("202: 1"), "{stdout}");
}

#[test]
fn replay_sends_a_capture_to_two_targets_and_writes_results() {
    let gor = file("replay.gor", GOR);
    let results = file("results.json", "");
    let (a, seen_a) = server();
    let (b, seen_b) = server();
    let out = Command::new(env!("CARGO_BIN_EXE_parallax"))
        .arg("replay")
        .arg(&gor)
        .args(["--target", &format!("go=http://{a}")])
        .args(["--target", &format!("rust=http://{b}")])
        .args(["--speed", "4", "--quiet", "--results"])
        .arg(&results)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("same as recorded 1"), "{stdout}");
    for seen in [seen_a, seen_b] {
        let seen = seen.lock().unwrap();
        assert_eq!(
            *seen,
            [
                "POST /v1/events HTTP/1.1",
                "GET /v1/sessions/12345 HTTP/1.1",
                "GET /v1/sessions/777 HTTP/1.1"
            ]
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&results).unwrap()).unwrap();
    assert_eq!(json["schema"], "parallax.results/v2");
    let backends = &json["scenarios"][0]["backends"];
    assert_eq!(backends[0]["name"], "go");
    assert_eq!(backends[0]["role"], "baseline");
    assert_eq!(backends[1]["role"], "candidate");
    assert_eq!(backends[1]["requests"], 3);
    // The gate reads it.
    let gate = Command::new(env!("CARGO_BIN_EXE_parallax"))
        .arg("gate")
        .arg(&results)
        .args(["--max-p99-ratio", "1000", "--max-rss-ratio", "off"])
        .output()
        .unwrap();
    assert!(
        gate.status.code().is_some_and(|c| c < 2),
        "{}{}",
        String::from_utf8_lossy(&gate.stdout),
        String::from_utf8_lossy(&gate.stderr)
    );
}
