//! The real thing on 127.0.0.1:0: the library's `run` over TCP, and the
//! binary's flags, environment, start-up line and signal handling.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use parallax_session_cache::Config;

/// One request on a fresh connection; returns the raw response (head and
/// body) as sent on the wire.
fn exchange(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn split(response: &str) -> (&str, &str) {
    response.split_once("\r\n\r\n").expect("a complete head")
}

/// A running binary; killed if a test fails before stopping it.
struct Binary {
    child: Child,
    addr: SocketAddr,
    /// Everything it logged, for failure messages.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Binary {
    /// Starts the binary with `args` and `env`, and waits for its
    /// `listening on HOST:PORT` line.
    fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_command(command(args, env))
    }

    /// As [`Binary::start`], for a command built by the caller.
    fn start_command(mut command: Command) -> Self {
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let addr = loop {
            let line = lines
                .next()
                .expect("the binary logs before exiting")
                .unwrap();
            log.lock().unwrap().push(line.clone());
            if let Some((_, rest)) = line.split_once("listening on ") {
                break rest.trim().parse().expect("HOST:PORT");
            }
        };
        // Keep draining stderr so the binary never blocks on a full pipe.
        let kept = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                kept.lock().unwrap().push(line);
            }
        });
        Self { child, addr, log }
    }

    /// SIGTERM, then the exit status and what the binary logged.
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        // The drain thread ends at EOF, once the binary has exited.
        std::thread::sleep(Duration::from_millis(50));
        let log = self.log.lock().unwrap().join("\n");
        (exit, log)
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_parallax-session-cache"));
    command
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for var in [
        "CACHE_LISTEN",
        "CACHE_CAPACITY_BYTES",
        "CACHE_SHARDS",
        "CACHE_DEFAULT_TTL_SECS",
        "CACHE_SWEEP_INTERVAL_MS",
        "CACHE_SHUTDOWN_GRACE_MS",
    ] {
        command.env_remove(var);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_over_tcp_and_stops_on_shutdown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = Config {
        listen: addr.to_string(),
        ..Config::default()
    };
    let server = tokio::spawn(parallax_session_cache::run(listener, config, async {
        let _ = stopped.await;
    }));

    let wire = tokio::task::spawn_blocking(move || {
        let put = exchange(
            addr,
            "PUT /v1/sessions/abc HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n\
             Content-Length: 5\r\nConnection: close\r\n\r\nhello",
        );
        let get = exchange(
            addr,
            "GET /v1/sessions/abc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        let head = exchange(
            addr,
            "HEAD /v1/sessions/abc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        let head_miss = exchange(
            addr,
            "HEAD /v1/sessions/nobody HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        (put, get, head, head_miss)
    })
    .await
    .unwrap();
    let (put, get, head, head_miss) = wire;

    assert!(put.starts_with("HTTP/1.1 204 "), "{put}");
    assert_eq!(split(&put).1, "");

    let (get_head, get_body) = split(&get);
    assert!(get_head.starts_with("HTTP/1.1 200 "), "{get}");
    assert!(get_head
        .to_ascii_lowercase()
        .contains("content-type: text/plain"));
    assert!(get_head.to_ascii_lowercase().contains("content-length: 5"));
    assert_eq!(get_body, "hello");

    let (head_head, head_body) = split(&head);
    assert!(head_head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(head_head.to_ascii_lowercase().contains("content-length: 5"));
    assert_eq!(head_body, "", "HEAD sends no body");

    assert!(head_miss.starts_with("HTTP/1.1 404 "), "{head_miss}");
    assert_eq!(split(&head_miss).1, "", "HEAD 404 sends no body");

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("stops promptly")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn run_refuses_an_invalid_config_naming_the_flag() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = Config {
        default_ttl_secs: 0,
        ..Config::default()
    };
    let err = parallax_session_cache::run(listener, config, async {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--default-ttl-secs"), "{err}");
}

#[test]
fn the_binary_logs_its_address_and_exits_0_on_sigterm() {
    let binary = Binary::start(&["--listen", "127.0.0.1:0"], &[]);
    let health = exchange(
        binary.addr,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(split(&health).1, r#"{"status":"ok"}"#);
    let (status, log) = binary.terminate();
    assert!(status.success(), "{status}; it logged:\n{log}");
    assert!(log.contains("shutdown requested"), "{log}");
}

#[test]
fn a_sigterm_sent_the_moment_it_says_listening_stops_it_gracefully() {
    // The signal handlers must be in place before the `listening on` line:
    // a supervisor may stop the process at once.
    for _ in 0..10 {
        let binary = Binary::start(&["--listen", "127.0.0.1:0"], &[]);
        let (status, log) = binary.terminate();
        assert!(status.success(), "{status}; it logged:\n{log}");
        assert!(log.contains("shutdown requested"), "{log}");
    }
}

#[test]
fn environment_variables_configure_the_binary_and_flags_win() {
    // CACHE_LISTEN is used; CACHE_SHARDS=0 would be refused, but the flag wins.
    let binary = Binary::start(
        &["--shards", "2"],
        &[
            ("CACHE_LISTEN", "127.0.0.1:0"),
            ("CACHE_SHARDS", "0"),
            ("CACHE_CAPACITY_BYTES", "400"),
        ],
    );
    // Two shards of 200 bytes: a 150-byte value makes a 239-byte entry.
    let put = exchange(
        binary.addr,
        &format!(
            "PUT /v1/sessions/k HTTP/1.1\r\nHost: x\r\nContent-Length: 150\r\n\
             Connection: close\r\n\r\n{}",
            "x".repeat(150)
        ),
    );
    assert!(put.starts_with("HTTP/1.1 413 "), "{put}");
    assert!(put.ends_with(
        r#""code":"entry_too_large","message":"entry exceeds the capacity of its shard"}"#
    ));
    let (status, log) = binary.terminate();
    assert!(status.success(), "{status}; it logged:\n{log}");
}

#[test]
fn invalid_values_exit_non_zero_naming_the_flag() {
    for (args, env, flag) in [
        (&["--shards", "0"][..], &[][..], "--shards"),
        (&[], &[("CACHE_SHARDS", "65537")][..], "--shards"),
        (
            &[],
            &[("CACHE_DEFAULT_TTL_SECS", "abc")],
            "--default-ttl-secs",
        ),
        (&["--capacity-bytes", "0"], &[], "--capacity-bytes"),
        (&["--sweep-interval-ms", "0"], &[], "--sweep-interval-ms"),
        (&["--listen", "not-an-address"], &[], "--listen"),
    ] {
        let output = command(args, env).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} {env:?} must fail");
        assert!(stderr.contains(flag), "{args:?} {env:?}: {stderr}");
    }
}

/// The variables of a running process, from `/proc/<pid>/environ`.
fn environ(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap()
        .split(|&b| b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

#[test]
fn the_binary_runs_with_one_malloc_arena_unless_told_otherwise() {
    // Re-executed in place: the same pid, now with MALLOC_ARENA_MAX=1 (see
    // src/malloc.rs), and still answering.
    let mut command = command(&["--listen", "127.0.0.1:0"], &[]);
    command.env_remove("MALLOC_ARENA_MAX");
    let binary = Binary::start_command(command);
    let env = environ(binary.child.id());
    assert!(env.iter().any(|v| v == "MALLOC_ARENA_MAX=1"), "{env:?}");
    let health = exchange(
        binary.addr,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(split(&health).1, r#"{"status":"ok"}"#);
    let (status, log) = binary.terminate();
    assert!(status.success(), "{status}; it logged:\n{log}");

    // An operator's value wins.
    let binary = Binary::start(&["--listen", "127.0.0.1:0"], &[("MALLOC_ARENA_MAX", "4")]);
    let env = environ(binary.child.id());
    assert!(env.iter().any(|v| v == "MALLOC_ARENA_MAX=4"), "{env:?}");
    assert!(!env.iter().any(|v| v == "MALLOC_ARENA_MAX=1"), "{env:?}");
    let (status, log) = binary.terminate();
    assert!(status.success(), "{status}; it logged:\n{log}");
}
