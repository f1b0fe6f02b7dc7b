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
                    // One write: several small ones would meet Nagle and
                    // delayed ACKs (40 ms a request).
                    let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\n\r\nok");
                    writer.write_all(answer.as_bytes()).unwrap();
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
        // Three requests: one 10 ms late on a loaded machine is a third of
        // them and an exit 1 for the schedule, which is not this test's
        // subject (what is sent, to both targets, and the results file).
        .args(["--max-late-percent", "100"])
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

/// One answer read off a keep-alive connection: its status code.
fn read_answer(reader: &mut BufReader<std::net::TcpStream>) -> std::io::Result<u16> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut len = 0;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if h == "\r\n" {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    Ok(status)
}

/// `parallax_record_records_total` of the proxy whose admin listens at
/// `admin`: records it has written (flushed) to the capture.
fn records_written(admin: &str) -> u64 {
    let Ok(mut s) = std::net::TcpStream::connect(admin) else {
        return 0;
    };
    let _ = write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    );
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines()
        .filter(|l| l.starts_with("parallax_record_records_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The crash the capture format is built for, on a real process: a
/// recording `parallax proxy` SIGKILLed while clients keep it busy leaves
/// segments that read back — through `CaptureReader` (by way of `Source`)
/// and `parallax capture info` — to their last complete record: every
/// record the proxy counted as written before the kill is there, whole,
/// and the most a reader says of the end is that it is truncated.
#[test]
fn a_recording_proxy_killed_under_load_reads_back_to_its_last_complete_record() {
    use parallax_capture::format::Record;
    use parallax_capture::reader::Tail;
    use parallax_capture::writer::existing_segments;
    use std::process::Stdio;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    let (upstream, _) = server();
    let d = std::env::temp_dir().join(format!("plx-capture-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let capture = d.join("killed.plxcap");
    let config = file(
        "killed.toml",
        &format!(
            "admin_listen = \"127.0.0.1:0\"\n[[services]]\nname = \"rec\"\nlisten = \"127.0.0.1:0\"\nprimary = \"{upstream}\"\nshadow = \"{upstream}\"\nmirror_percent = 0\n[services.record]\npath = \"{}\"\nflush_interval_ms = 20\n",
            capture.display()
        ),
    );
    /// Killed on drop, should an assertion fail first.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut proxy = Killed(
        Command::new(env!("CARGO_BIN_EXE_parallax"))
            .args(["proxy", "--config"])
            .arg(&config)
            .env("NO_COLOR", "1")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(proxy.0.stderr.take().unwrap()).lines();
    let (mut listen, mut admin) = (None, None);
    for line in lines.by_ref().map_while(Result::ok) {
        if let Some(a) = line.split("service rec listening on ").nth(1) {
            listen = a.split_whitespace().next().map(str::to_owned);
        }
        if let Some(a) = line.split("admin listening on ").nth(1) {
            admin = Some(a.trim().to_owned());
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    let (listen, admin) = (
        listen.expect("service address"),
        admin.expect("admin address"),
    );

    // Four keep-alive clients, each POSTing JSON naming its own request.
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (listen, stop) = (listen.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut sent = 0u64;
                let Ok(stream) = std::net::TcpStream::connect(&listen) else {
                    return sent;
                };
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                while !stop.load(Ordering::Relaxed) {
                    let body = format!(
                        "{{\"client\":{c},\"n\":{sent},\"pad\":\"{}\"}}",
                        "x".repeat(200 + (sent % 100) as usize)
                    );
                    let request = format!(
                        "POST /v1/events/{c}-{sent} HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if writer.write_all(request.as_bytes()).is_err() || read_answer(&mut reader).is_err() {
                        break;
                    }
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    // Killed once it has written a few frames, while requests keep coming.
    let deadline = Instant::now() + Duration::from_secs(60);
    while records_written(&admin) < 2000 {
        assert!(Instant::now() < deadline, "the proxy recorded too little");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(37));
    let written = records_written(&admin);
    proxy.0.kill().unwrap(); // SIGKILL
    proxy.0.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    let sent: u64 = clients.into_iter().map(|c| c.join().unwrap()).sum();

    let segments: Vec<PathBuf> = existing_segments(&capture)
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert!(!segments.is_empty(), "no segment in {}", d.display());
    let mut source = parallax_capture::Source::open(&segments).unwrap();
    let mut requests = 0u64;
    while let Some(record) = source
        .next_record()
        .expect("records up to the kill read without an error")
    {
        let Record::Request(r) = record else { continue };
        // Whole: the body is the JSON its target names.
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| {
            panic!(
                "record {requests}: {e}: {:?}",
                String::from_utf8_lossy(&r.body)
            )
        });
        let id = format!("/v1/events/{}-{}", body["client"], body["n"]);
        assert_eq!(r.target, id, "record {requests}");
        assert_eq!((r.method.as_str(), r.status), ("POST", Some(202)));
        requests += 1;
    }
    for (path, tail) in source.tails() {
        assert!(
            matches!(tail, Tail::Complete | Tail::Truncated { .. }),
            "{}: {tail:?}",
            path.display()
        );
    }
    assert!(
        requests >= written && requests <= sent + 4,
        "{requests} records read, {written} written before the kill, {sent} sent"
    );
    let info = Command::new(env!("CARGO_BIN_EXE_parallax"))
        .args(["capture", "info"])
        .args(&segments)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&info.stdout);
    assert!(
        info.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&info.stderr)
    );
    assert!(
        stdout.contains(&format!(" {requests} requests")),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&d);
}
