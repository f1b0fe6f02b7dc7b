//! The binary: flags and environment, the start-up line, SIGTERM, and
//! `--reuse-port`.

mod support;

use support::{binary, close_code, next_text, Binary};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test]
async fn serves_on_the_logged_address_and_exits_0_on_sigterm_closing_websockets_with_1001() {
    let server = Binary::start(&["--listen", "127.0.0.1:0"], &[]);
    let client = server.client();
    assert_eq!(
        client.get("/healthz").await,
        (200, r#"{"status":"ok"}"#.into())
    );
    assert_eq!(
        client.get("/readyz").await,
        (200, r#"{"status":"ready"}"#.into())
    );
    let mut ws = client.ws("news").await;
    let (status, _) = client
        .notify(r#"{"id":"n-1","topic":"news","published_at_unix_us":1764000000000000,"body":{"any":"json"}}"#)
        .await;
    assert_eq!(status, 202);
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"id":"n-1","topic":"news","published_at_unix_us":1764000000000000,"body":{"any":"json"}}"#
    );
    let status = tokio::task::spawn_blocking(move || server.terminate());
    assert_eq!(close_code(&mut ws).await, Some(CloseCode::Away));
    drop(ws);
    assert_eq!(status.await.unwrap().code(), Some(0));
}

#[test]
fn a_sigterm_sent_the_moment_it_says_listening_stops_it_with_exit_0() {
    // The handlers are in place before the `listening on` line: a
    // supervisor may stop the process at once.
    for _ in 0..10 {
        let server = Binary::start(&["--listen", "127.0.0.1:0"], &[]);
        assert_eq!(server.terminate().code(), Some(0));
    }
}

#[test]
fn bad_values_exit_non_zero_naming_the_flag() {
    for (args, env, flag) in [
        (&["--queue-capacity", "0"][..], &[][..], "--queue-capacity"),
        (&["--drop-limit", "x"], &[], "--drop-limit"),
        (&["--ping-interval-secs", "0"], &[], "--ping-interval-secs"),
        (&["--listen", "not an address"], &[], "--listen"),
        (&[], &[("FANOUT_QUEUE_CAPACITY", "0")], "--queue-capacity"),
        (&[], &[("FANOUT_REUSE_PORT", "yes")], "--reuse-port"),
        (
            &[],
            &[("FANOUT_SHUTDOWN_GRACE_MS", "-1")],
            "--shutdown-grace-ms",
        ),
    ] {
        let output = binary(args, env).output().unwrap();
        assert!(!output.status.success(), "{args:?} {env:?} must fail");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(flag), "{args:?} {env:?}: {stderr}");
    }
}

#[tokio::test]
async fn flags_win_over_environment_variables() {
    let server = Binary::start(
        &["--listen", "127.0.0.1:0"],
        &[
            ("FANOUT_LISTEN", "127.0.0.1:1"),
            ("FANOUT_QUEUE_CAPACITY", "7"),
        ],
    );
    assert_eq!(server.addr.ip().to_string(), "127.0.0.1");
    assert_ne!(server.addr.port(), 1);
}

#[tokio::test]
async fn two_processes_share_a_port_with_reuse_port() {
    let first = Binary::start(&["--listen", "127.0.0.1:0", "--reuse-port"], &[]);
    let addr = first.addr.to_string();
    let second = Binary::start(&["--listen", &addr], &[("FANOUT_REUSE_PORT", "true")]);
    assert_eq!(second.addr, first.addr);
    for _ in 0..8 {
        assert_eq!(second.client().get("/healthz").await.0, 200);
    }
    // Without the option the port is taken.
    let output = binary(&["--listen", &addr], &[]).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--listen"));
    for server in [first, second] {
        assert_eq!(server.terminate().code(), Some(0));
    }
}

#[tokio::test]
async fn an_empty_environment_variable_counts_as_unset() {
    let server = Binary::start(
        &["--listen", "127.0.0.1:0"],
        &[
            ("FANOUT_QUEUE_CAPACITY", ""),
            ("FANOUT_REUSE_PORT", ""),
            ("FANOUT_KAFKA_BROKERS", ""),
        ],
    );
    // No Kafka path: ready at once.
    assert_eq!(server.client().get("/readyz").await.0, 200);
    assert_eq!(server.terminate().code(), Some(0));
}
